#!/usr/bin/env python
"""Side-by-side crops of the same images coded by two or more model files (e.g. two releases).

Each model is given as ``LABEL=SPEC`` where SPEC is what ``--model`` takes (a name, or
``file.mrtm#variant`` for a model file outside the search path, such as an earlier release from
``git show REV:src/mrt/weights/mrt-s2.mrtm``). Every image is really compressed and decompressed;
each panel's label carries its file's bpp. One PNG (or JPEG, ``--jpeg Q``) per image::

    python scripts/compare_releases.py ../shared/data/kodak/kodim23.png \
        --model "second release k16=/tmp/old.mrtm#mrt-s2-k16" --model "third release k16=mrt-s2-k16" \
        -o docs/results/figures/releases
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from mrt.codec import Codec
from mrt.errors import MRTError
from mrt.eval.baselines import bpp_of
from mrt.eval.plots import Panel, plot_visual
from mrt.io import load_image


def _parse_model(text: str) -> tuple[str, str]:
    label, sep, spec = text.partition("=")
    if not sep or not label or not spec:
        raise argparse.ArgumentTypeError(f"expected LABEL=SPEC, got {text!r}")
    return label, spec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--model", action="append", type=_parse_model, required=True, metavar="LABEL=SPEC")
    ap.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    ap.add_argument("--crop", default=None, help="X,Y,W,H (default: centre 512x320)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--jpeg", type=int, default=None, metavar="QUALITY",
                    help="write JPEG of this quality instead of PNG (a tenth of the size)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    crop = tuple(int(v) for v in args.crop.split(",")) if args.crop else None
    try:
        codecs = [(label, Codec.load(spec)) for label, spec in args.model]
        for path in args.images:
            pixels = load_image(path)
            panels = [Panel("original", pixels)]
            for label, codec in codecs:
                data = codec.compress(pixels)
                bpp = bpp_of(len(data), pixels.shape[0], pixels.shape[1])
                panels.append(Panel(f"{label}\n{bpp:.4f} bpp", codec.decompress(data)))
            suffix = ".png" if args.jpeg is None else ".jpg"
            out = plot_visual(panels, args.out / f"{path.stem}{suffix}", crop=crop,  # type: ignore[arg-type]
                              title=path.name, jpeg_quality=args.jpeg)
            print(out)
    except (MRTError, OSError) as exc:
        print(f"compare_releases: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
