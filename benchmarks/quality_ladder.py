"""The quality ladder on Kodak -> docs/results/ladder.md (issue 11; rungs in mrt.eval.ladder).

    .venv/bin/python benchmarks/quality_ladder.py                       # the default family (mrt-s2), all of Kodak
    .venv/bin/python benchmarks/quality_ladder.py --family mrt-s       # -> docs/results/ladder_mrt-s.md
    .venv/bin/python benchmarks/quality_ladder.py --limit 4 --out /tmp/ladder.md
    .venv/bin/python benchmarks/quality_ladder.py --stage0 runs/stage0   # adds the stage-0 rungs

Per-image scores are cached in ``--cache`` (JSON), so an interrupted run resumes and the
markdown is regenerated from the cache in seconds.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mrt.catalog import DEFAULT_FAMILY
from mrt.codec import Codec, list_models
from mrt.eval.images import load_images
from mrt.eval.ladder import LadderInputs, render_ladder, run_ladder
from mrt.eval.suite import MetricSuite
from mrt.io import atomic_write_text

METRICS = ("psnr", "ms_ssim", "lpips", "dists")


def _coder(codec: Codec) -> Callable[[np.ndarray], tuple[bytes, np.ndarray]]:
    """Compress and decompress with one rate variant: (file bytes, decoded image)."""

    def code(img: np.ndarray) -> tuple[bytes, np.ndarray]:
        data = codec.compress(img)
        return data, codec.decompress(data)

    return code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/kodak")
    ap.add_argument("--family", default=DEFAULT_FAMILY,
                    help="model family; its variants give the file rungs (default: the shipped default)")
    ap.add_argument("--taef2", default="../shared/pretrained/taef2", help="TAEF2 weights folder ('' to skip)")
    ap.add_argument("--stage0", default="", help="stage-0 checkpoint or run folder (adds the stage-0 rungs)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None, help="per-image scores (default: runs/ladder/FAMILY.json)")
    ap.add_argument("--out", type=Path, default=None,
                    help="markdown table (default: docs/results/ladder.md for the default family, else ladder_FAMILY.md)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.cache is None:
        args.cache = Path("runs/ladder") / f"{args.family}.json"
    if args.out is None:
        stem = "ladder" if args.family == DEFAULT_FAMILY else f"ladder_{args.family}"
        args.out = Path("docs/results") / f"{stem}.md"

    variants = [m for m in list_models() if Path(m.path).stem == args.family]
    if not variants:
        print(f"no model family {args.family!r} installed", file=sys.stderr)
        return 2
    codecs = {m.n_tokens: Codec.load(m.name) for m in variants}
    model = codecs[max(codecs)].model  # the full-K variant: same weights, all tokens available
    inputs = LadderInputs(ks=sorted(codecs), coders={k: _coder(c) for k, c in codecs.items()})
    if args.taef2:
        from mrt.models.taef2 import load_taef2

        inputs.taef2_decoder = load_taef2(args.taef2)[1]
    if args.stage0:
        from mrt.models.generator import TargetAutoencoder
        from mrt.train.checkpoint import export_weights, load_checkpoint
        from mrt.train.config import TrainConfig

        cfg = TrainConfig.from_dict(load_checkpoint(args.stage0)["config"])
        stage0 = TargetAutoencoder(cfg.model.target)
        stage0.load_state_dict(export_weights(args.stage0, prefix="target."), strict=True)
        inputs.stage0 = stage0.eval()

    images = load_images([args.data], limit=args.limit)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    table = run_ladder(model, images, inputs, MetricSuite(METRICS, fid=False), cache=args.cache)
    header = (
        f"# Quality ladder: where the quality goes ({args.family}, {Path(args.data).name}, {len(images)} images)\n\n"
        "Each rung adds one stage of the codec to the path (`mrt.eval.ladder`); regenerate with\n"
        f"`.venv/bin/python benchmarks/quality_ladder.py --family {args.family}` (cache: `{args.cache}`). Measured on "
        f"{platform.machine()} with {args.threads} threads in {time.time() - t0:.0f} s."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, render_ladder(table, METRICS, header), force=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
