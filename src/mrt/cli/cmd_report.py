"""``mrt report``: regenerate docs/results/ (tables, BD-rates, figures) from results JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``report`` subcommand."""
    from mrt.eval.cli_support import DEFAULT_RESULTS  # noqa: PLC0415

    p = subparsers.add_parser(
        "report",
        help="write the results report (markdown, RD curves, visual comparison)",
        description="Read every results JSON in --results and write README.md and figures/ into -o.",
    )
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                   help="folder with results JSON files (default: %(default)s)")
    p.add_argument("-o", "--out", type=Path, default=Path("docs/results"),
                   help="report folder (default: %(default)s)")
    p.add_argument("--anchor", default="vvc", help="BD-rate anchor (default: %(default)s)")
    p.add_argument("--visual", type=Path, nargs="+", default=None, metavar="IMAGE",
                   help="images for the visual comparison (default: kodim23, kodim04 and kodim15 from "
                        "the results' source folder)")
    p.add_argument("--visual-bpp", default="0.01,0.02",
                   help="target bpps of the visual comparison, one figure per image and target "
                        "(default: %(default)s)")
    p.add_argument("--crop", default=None, metavar="X,Y,W,H",
                   help="crop box of the visual comparison (default: centre 512x320)")
    p.add_argument("--no-visual", action="store_true", help="skip the visual comparison")
    p.add_argument("--visual-cache", type=Path, default=Path("cache/visual"),
                   help="keeps the bpp-matched bitstreams between runs (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Generate the report."""
    from mrt.eval.cli_support import UsageError, parse_floats  # noqa: PLC0415
    from mrt.eval.report import generate_report  # noqa: PLC0415

    crop = None
    if args.crop:
        vals = [int(v) for v in parse_floats(args.crop)]
        if len(vals) != 4:
            raise UsageError(f"--crop needs X,Y,W,H, got {args.crop!r}")
        crop = (vals[0], vals[1], vals[2], vals[3])
    cmd = f"mrt report --results {args.results} -o {args.out}"
    if args.anchor != "vvc":
        cmd += f" --anchor {args.anchor}"
    if args.visual is not None:
        cmd += " --visual " + " ".join(map(str, args.visual))
    if args.crop:
        cmd += f" --crop {args.crop}"
    if args.no_visual:
        cmd += " --no-visual"
    out = generate_report(args.results, args.out, anchor=args.anchor, visual_images=args.visual or (),
                          visual_bpps=parse_floats(args.visual_bpp), crop=crop,
                          visuals=not args.no_visual, command=cmd.strip(),
                          visual_cache=args.visual_cache)
    for n in out.notes:
        print(f"note: {n}", file=sys.stderr)
    print(f"wrote {out.markdown} and {len(out.figures) + len(out.visuals)} figures", file=sys.stderr)
    return 0
