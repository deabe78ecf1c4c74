"""Average the (EMA) weights of training checkpoints that share a start ("model soup") into one
weights-only checkpoint that ``mrt release`` and ``run.init_from`` accept:

    .venv/bin/python scripts/average_checkpoints.py runs/a/checkpoints/step_00000700.pt \\
        runs/b/checkpoints/step_00000600.pt -o runs/soup.pt [--weights 0.5,0.5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mrt.errors import MRTError
from mrt.train.checkpoint import average_checkpoints


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="+", help="checkpoint files or run folders (their newest checkpoint)")
    ap.add_argument("-o", "--out", type=Path, required=True, help="output checkpoint (.pt)")
    ap.add_argument("--weights", default=None, help="comma-separated weights summing to 1 (default: equal)")
    ap.add_argument("--raw", action="store_true", help="average the raw weights instead of the EMA averages")
    args = ap.parse_args()
    weights = [float(x) for x in args.weights.split(",")] if args.weights else None
    try:
        out = average_checkpoints(args.sources, args.out, weights, use_ema=not args.raw)
    except MRTError as exc:
        print(f"error: {exc}")
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
