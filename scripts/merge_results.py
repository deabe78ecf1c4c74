"""Merge result sets written by parallel ``mrt eval`` runs (one per rate point or group of
points) into one, e.g. a model family's file for ``mrt report``:

    .venv/bin/python scripts/merge_results.py runs/eval/mrt-s2-a.json runs/eval/mrt-s2-b.json \
        -o docs/results/json/mrt-s2.json --name mrt-s2 --description "..."

Writes the JSON and the per-image CSV beside it (``mrt.eval.schema.merge_results``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mrt.eval.schema import ResultSet, merge_results, write_csv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="+", type=Path, help="results JSON files")
    ap.add_argument("-o", "--out", type=Path, required=True, help="merged results JSON")
    ap.add_argument("--name", required=True, help="name of the merged result set")
    ap.add_argument("--description", default="")
    args = ap.parse_args()
    merged = merge_results([ResultSet.read_json(p) for p in args.parts], args.name, args.description)
    merged.write_json(args.out)
    write_csv(merged.records, args.out.with_suffix(".csv"))
    for p in merged.sorted_points():
        print(f"{args.name} {p.setting}: {p.bpp:.4f} bpp, PSNR {p.psnr}, LPIPS {p.lpips}, DISTS {p.dists}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
