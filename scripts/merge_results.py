"""Merge result sets written by parallel ``mrt eval`` runs (one per rate point or group of
points) into one, e.g. a model family's file for ``mrt report``:

    .venv/bin/python scripts/merge_results.py runs/eval/mrt-s2-a.json runs/eval/mrt-s2-b.json \
        -o docs/results/json/mrt-s2.json --name mrt-s2 --description "..."

Writes the JSON and the per-image CSV beside it (``mrt.eval.schema.merge_results``).
``--later-wins`` lets a later part replace an earlier part's rate point (a rerun with FID);
``--rename soup-=mrt-s2-`` renames the settings of a model evaluated under a working name and
released under another (same model ids: they do not depend on the name).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mrt.eval.schema import ResultSet, merge_results, rename_settings, write_csv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="+", type=Path, help="results JSON files")
    ap.add_argument("-o", "--out", type=Path, required=True, help="merged results JSON")
    ap.add_argument("--name", required=True, help="name of the merged result set")
    ap.add_argument("--description", default="")
    ap.add_argument("--later-wins", action="store_true", help="a setting in several parts comes from the last one")
    ap.add_argument("--rename", default=None, metavar="OLD=NEW", help="replace the setting prefix OLD by NEW")
    args = ap.parse_args()
    parts = [ResultSet.read_json(p) for p in args.parts]
    if args.rename:
        old, sep, new = args.rename.partition("=")
        if not sep or not old:
            ap.error("--rename takes OLD=NEW")
        parts = [rename_settings(rs, old, new) for rs in parts]
    merged = merge_results(parts, args.name, args.description, later_wins=args.later_wins)
    merged.write_json(args.out)
    write_csv(merged.records, args.out.with_suffix(".csv"))
    for p in merged.sorted_points():
        print(f"{args.name} {p.setting}: {p.bpp:.4f} bpp, PSNR {p.psnr}, LPIPS {p.lpips}, DISTS {p.dists}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
