"""``mrt baselines``: rate-distortion sweeps of classical codecs (VVC, HEVC, AVIF, ...)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mrt.eval.baselines import Baseline

DEFAULT_CODECS = "vvc,hevc,avif,jpeg2000,webp,jpeg"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``baselines`` subcommand."""
    from mrt.eval.cli_support import DEFAULT_RESULTS, add_metric_args  # noqa: PLC0415

    p = subparsers.add_parser(
        "baselines",
        help="run classical codecs over a quality grid",
        description="Encode every image with classical codecs over a quality grid, decode, measure, "
                    "and write <codec>.json (+ .csv) in the results schema. Reruns are incremental "
                    "(cache of bitstreams and metrics).",
    )
    p.add_argument("dirs", nargs="*", metavar="DIR", help="image folders or files")
    p.add_argument("--codecs", default=DEFAULT_CODECS,
                   help="comma-separated: vvc,hevc,heic,avif,jpeg2000,webp,jpeg (default: %(default)s)")
    p.add_argument("--qualities", action="append", default=None, metavar="[CODEC=]Q,Q,...",
                   help="quality grid: 'Q,Q,..' for every codec or 'codec=Q,Q,..' (repeatable); "
                        "default: each codec's own grid")
    p.add_argument("-o", "--out", type=Path, default=DEFAULT_RESULTS,
                   help="results folder (default: %(default)s)")
    p.add_argument("--cache", type=Path, default=Path("cache/baselines"),
                   help="bitstream/metric cache (default: %(default)s)")
    p.add_argument("--heavy-max-bpp", type=float, default=0.12,
                   help="compute DISTS and FID/KID only for rate points with mean bpp at most this "
                        "(slow on CPU; 0 = never, -1 = always; default: %(default)s)")
    p.add_argument("--fid-qualities", action="append", default=None, metavar="[CODEC=]Q,Q,...",
                   help="compute FID/KID only at these settings (same syntax as --qualities; "
                        "default: every point within --heavy-max-bpp)")
    p.add_argument("--list", action="store_true", help="list codecs, availability and versions; exit")
    add_metric_args(p)


def _grids(specs: list[str] | None, codecs: list[str]) -> dict[str, list[float] | None]:
    from mrt.eval.cli_support import UsageError, parse_floats  # noqa: PLC0415

    out: dict[str, list[float] | None] = {c: None for c in codecs}
    for spec in specs or []:
        if "=" in spec:
            name, vals = spec.split("=", 1)
            name = name.strip().lower()
            if name not in out:
                raise UsageError(f"--qualities names codec {name!r}, which is not in --codecs")
            out[name] = parse_floats(vals)
        else:
            for c in out:
                out[c] = parse_floats(spec)
    return out


def _print_list(baselines: list[Baseline]) -> int:
    """``--list``: name, version or why unavailable, fixed settings and grid of each codec."""
    for b in baselines:
        av = b.availability()
        ver = b.encoder_version() if av.ok else f"unavailable: {av.reason}"
        print(f"{b.name:9s} {ver}  [{b.settings_id()}] grid {list(b.default_qualities)}")
    return 0


def _sweep_all(args: argparse.Namespace, baselines: list[Baseline]) -> int:
    """Sweep every available codec and write its JSON + CSV; 1 when none could run."""
    # the metric suite and the results schema pull in torch: imported only when sweeping
    from mrt.eval.baselines import BaselineError  # noqa: PLC0415
    from mrt.eval.cache import BaselineCache  # noqa: PLC0415
    from mrt.eval.cli_support import dataset_meta, make_suite, set_threads  # noqa: PLC0415
    from mrt.eval.images import load_images  # noqa: PLC0415
    from mrt.eval.schema import write_csv  # noqa: PLC0415
    from mrt.eval.sweep import run_baseline  # noqa: PLC0415

    set_threads(args.threads)
    grids = _grids(args.qualities, [b.name for b in baselines])
    fid_grids = _grids(args.fid_qualities, [b.name for b in baselines])
    images = load_images(args.dirs, limit=args.limit)
    meta = dataset_meta(args.dirs, images)
    suite = make_suite(args)
    for k, v in suite.describe().items():
        print(f"metric {k}: {v}", file=sys.stderr)
    cache = BaselineCache(args.cache)
    ran = 0
    for b in baselines:
        av = b.availability()
        if not av.ok:
            print(f"skip {b.name}: unavailable ({av.reason})", file=sys.stderr)
            continue
        try:
            heavy = None if args.heavy_max_bpp < 0 else args.heavy_max_bpp
            rs = run_baseline(b, images, suite, cache, qualities=grids[b.name],
                              dataset=meta["dataset"], heavy_max_bpp=heavy,
                              fid_qualities=(fid_grids[b.name] or []) if args.fid_qualities else None)
        except BaselineError as exc:
            print(f"skip {b.name}: {exc}", file=sys.stderr)
            continue
        rs.meta.update(meta)
        rs.write_json(Path(args.out) / f"{b.name}.json")
        write_csv(rs.records, Path(args.out) / f"{b.name}.csv")
        print(f"wrote {Path(args.out) / (b.name + '.json')}", file=sys.stderr)
        ran += 1
    if ran == 0:
        print("no baseline could run", file=sys.stderr)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the sweeps (or ``--list``); unavailable codecs are skipped with their reason."""
    from mrt.eval.baselines import get_baseline  # noqa: PLC0415
    from mrt.eval.cli_support import UsageError  # noqa: PLC0415

    baselines = [get_baseline(c) for c in args.codecs.split(",") if c.strip()]
    if args.list:
        return _print_list(baselines)
    if not args.dirs:
        raise UsageError("give at least one image folder or file (DIR)")
    return _sweep_all(args, baselines)
