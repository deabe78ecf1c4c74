#!/usr/bin/env bash
# Create .venv (if missing) and install mrt with its test dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch is pinned to the CPU build (2.13.0); pip takes it from the local wheel cache when present.
.venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
