"""The token search (``mrt.refine``): seconds per step and peak memory, per objective and size.

For each image size and objective, one ``Codec.encode`` with ``RefineSettings(steps=N)`` of the
shipped default model (the search's own clock, ``RefineResult.seconds``, over the N steps plus the
encoder pass), the plain encode beside it, and the process's peak resident memory after each
(``ru_maxrss``, so it only grows: sizes run from small to large). Images: a Kodak image when
``--kodak`` is given (768x512), else a synthetic one; 1920x1080 is a resize of it (the crop path
starts above 1 Mpx).

    .venv/bin/python benchmarks/bench_refine.py --kodak ../shared/data/kodak --threads 2 \\
        --out docs/benchmarks_refine.md
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mrt.codec import Codec
from mrt.io import atomic_write_text, load_image
from mrt.refine import RefineSettings

OBJECTIVES = [("20 MSE + LPIPS-alex (default)", {}), ("MSE alone (--refine-lpips 0)", {"w_lpips": 0.0})]


def _image(kodak: Path | None) -> np.ndarray:
    if kodak is not None:
        return load_image(kodak / "kodim23.png")
    y, x = np.mgrid[0:512, 0:768].astype(np.float32)
    img = np.stack([127 + 100 * np.sin(x / 9 + y / 23), 127 + 100 * np.cos(y / 13), 255 * ((x // 32 + y // 32) % 2)], -1)
    return img.clip(0, 255).astype(np.uint8)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", type=Path)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="768x512,1920x1080")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks_refine.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = _image(args.kodak)
    codec = Codec.load()
    rows = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        img = base if (h, w) == base.shape[:2] else np.asarray(Image.fromarray(base).resize((w, h), Image.BICUBIC))
        codec.set_refine(None)
        t0 = time.perf_counter()
        plain = codec.encode(img, scale=1)
        plain_s = time.perf_counter() - t0
        for label, kw in OBJECTIVES:
            codec.set_refine(RefineSettings(steps=args.steps, **kw))  # type: ignore[arg-type]
            rep = codec.encode(img, scale=1)
            r = rep.refined
            assert r is not None
            rows.append(f"| {w}x{h} | {label} | {args.steps} | {r.seconds / args.steps:.2f} | {plain_s:.2f} | "
                        f"{len(plain.data)} -> {len(rep.data)} | {r.initial_loss:.4f} -> {r.chosen_loss:.4f} | "
                        f"{_peak_mb():.0f} |")
            print(rows[-1], flush=True)
    text = "\n".join([
        "# Token search speed and memory (`benchmarks/bench_refine.py`)",
        "",
        f"Model `{codec.name}`, {args.threads} threads, {platform.machine()}, torch {torch.__version__}; "
        f"image: {'kodim23' if args.kodak else 'synthetic'} (resized for other sizes), coded at its own size.",
        "s/step includes the encoder pass, shared by the steps. Peak RSS is the process's so far. Above 1 Mpx",
        "the search renders one 512-px crop a step (its losses are of different crops: step 0's and the",
        "kept last step's are not comparable there).",
        "",
        "| size | objective | steps | s / step | plain encode s | bytes plain -> searched | loss step 0 -> kept | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
        *rows, "",
    ])
    atomic_write_text(args.out, text, force=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
