"""``mrt eval``: evaluate MRT models on image folders through real compressed files."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``eval`` subcommand."""
    from mrt.eval.cli_support import DEFAULT_RESULTS, add_metric_args  # noqa: PLC0415

    p = subparsers.add_parser(
        "eval",
        help="evaluate MRT models (rate from file bytes, quality metrics, timings)",
        description="Compress and decompress every image with each model through real files; "
                    "write <name>.json (results schema) and <name>.csv (one row per image).",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="image folders or files")
    p.add_argument("--model", action="append", default=None, metavar="NAME|PATH",
                   help="model name or .mrtm path (repeatable; default: the shipped default model)")
    p.add_argument("-o", "--out", type=Path, default=DEFAULT_RESULTS,
                   help="results folder, or a .json path (default: %(default)s)")
    p.add_argument("--name", default="mrt", help="result-set name (default: %(default)s)")
    p.add_argument("--description", default="", help="free text stored in the JSON")
    p.add_argument("--bitstreams", type=Path, default=Path("cache/eval"),
                   help="folder that keeps the compressed files (default: %(default)s)")
    p.add_argument("--reuse-bitstreams", action="store_true",
                   help="decode the files a previous run of the same --name and setting left in --bitstreams "
                   "instead of encoding again (no encode time is recorded for them)")
    p.add_argument("--feature-cache", type=Path, default=Path("cache/baselines/features"), metavar="DIR",
                   help="where the original images' FID features are kept, computed once per image "
                   "(default: %(default)s, shared with mrt baselines' default cache)")
    p.add_argument("--no-feature-cache", action="store_true",
                   help="compute the originals' FID features again (kept in memory for this run only)")
    add_metric_args(p)
    from mrt.cli._common import add_refine_options  # noqa: PLC0415

    add_refine_options(p)


def run(args: argparse.Namespace) -> int:
    """Evaluate and write JSON + CSV."""
    from mrt.eval.cache import FeatureStore  # noqa: PLC0415
    from mrt.eval.cli_support import dataset_meta, make_suite, set_threads  # noqa: PLC0415
    from mrt.eval.evaluate import evaluate_models  # noqa: PLC0415
    from mrt.eval.images import load_images  # noqa: PLC0415
    from mrt.eval.schema import write_csv  # noqa: PLC0415
    from mrt.metrics.registry import metric_names  # noqa: PLC0415

    set_threads(args.threads)
    images = load_images(args.dirs, limit=args.limit)
    meta = dataset_meta(args.dirs, images)
    suite = make_suite(args)
    for k, v in suite.describe().items():
        print(f"metric {k}: {v}", file=sys.stderr)
    broot = Path(args.bitstreams) / args.name
    from mrt.cli._common import refine_settings  # noqa: PLC0415

    refine = refine_settings(args)

    def load(spec: str | None) -> Any:
        from mrt.codec import Codec  # noqa: PLC0415

        codec = Codec.load(spec)
        codec.set_refine(refine)
        return codec

    rs = evaluate_models(args.model or [None], images, suite, name=args.name,
                         description=args.description, bitstream_root=broot,
                         dataset=meta["dataset"], loader=None if refine is None else load,
                         reuse=args.reuse_bitstreams,
                         features=FeatureStore(None if args.no_feature_cache else args.feature_cache))
    if refine is not None:
        rs.meta["refine"] = dataclasses.asdict(refine)
    rs.meta.update(meta)
    # relative to the working folder when inside it (bitstreams kept in the repository stay
    # findable from a clone's root), else absolute
    root = broot.resolve()
    rs.meta["bitstream_root"] = str(root.relative_to(Path.cwd()) if root.is_relative_to(Path.cwd()) else root)
    out = Path(args.out)
    json_path = out if out.suffix == ".json" else out / f"{args.name}.json"
    rs.write_json(json_path)
    write_csv(rs.records, json_path.with_suffix(".csv"))
    for p in rs.sorted_points():
        print(f"{args.name} {p.setting}: {p.bpp:.4f} bpp"
              + "".join(f", {k} {v:.4f}" for k in metric_names(rd=True) if (v := p.get(k)) is not None))
    print(f"wrote {json_path}", file=sys.stderr)
    return 0
