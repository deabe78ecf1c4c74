#!/usr/bin/env bash
# Install, then compress and decompress one image with the shipped default model.
# Usage: bash scripts/demo.sh [IMAGE]   (default: Kodak kodim23 from ../shared, else a generated photo-like image)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
IMG=${1:-../shared/data/kodak/kodim23.png}
OUT=${DEMO_OUT:-demo_out}
mkdir -p "$OUT"
if [ ! -f "$IMG" ]; then
  IMG="$OUT/generated.png"
  .venv/bin/python - "$IMG" <<'PY'
import sys
import numpy as np
from PIL import Image
y, x = np.mgrid[0:512, 0:768] / 64.0
img = np.stack([128 + 90 * np.sin(x + np.cos(y)), 128 + 90 * np.cos(y * 1.3), 128 + 60 * np.sin(x * y / 9)], -1)
Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(sys.argv[1])
PY
fi
.venv/bin/mrt models
.venv/bin/mrt compress "$IMG" -o "$OUT/image.mrt" --force
.venv/bin/mrt info "$OUT/image.mrt"
.venv/bin/mrt decompress "$OUT/image.mrt" -o "$OUT/image.png" --force
echo "demo: $IMG -> $OUT/image.mrt -> $OUT/image.png"
