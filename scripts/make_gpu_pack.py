"""Pack training data for a leased GPU machine, whose carried files are limited (64 MiB in all).

Writes PACK/train/*.jpg (cached training images, downscaled to at most --max-side on the long
side, multiples of 16, JPEG --quality 4:2:0, a random subset that fits --budget-mb), PACK/taef2/
(the two TAEF2 weight files) and PACK/mrtcache/metrics/lpips_alex.safetensors (for stage 2).
``scripts/train_gpu.sh`` consumes it. Reads the decoded images of an existing cache
(``mrt train ... --build-only``), so it needs no access to the original files.

    .venv/bin/python scripts/make_gpu_pack.py --cache cache/train_v1 --out gpu_pack
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("cache/train_v1"))
    ap.add_argument("--out", type=Path, default=Path("gpu_pack"))
    ap.add_argument("--taef2", type=Path, default=Path("../shared/pretrained/taef2"))
    ap.add_argument("--budget-mb", type=float, default=30.5, help="size limit of the images (MB)")
    ap.add_argument("--max-side", type=int, default=640)
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from mrt.metrics.weights import weight_path

    items = sorted((args.cache / "items").glob("*.pix.npy"))
    if not items:
        print(f"error: no cached images in {args.cache}/items", file=sys.stderr)
        return 2
    random.Random(args.seed).shuffle(items)
    train = args.out / "train"
    train.mkdir(parents=True, exist_ok=True)
    total, n = 0, 0
    for path in items:
        im = Image.fromarray(np.load(path))
        if max(im.size) > args.max_side:
            s = args.max_side / max(im.size)
            size = (round(im.size[0] * s) // 16 * 16, round(im.size[1] * s) // 16 * 16)
            im = im.resize(size, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=args.quality, subsampling=2)
        if total + buf.tell() > args.budget_mb * 1e6:
            continue
        (train / path.name.replace(".pix.npy", ".jpg")).write_bytes(buf.getvalue())
        total += buf.tell()
        n += 1
    (args.out / "taef2").mkdir(exist_ok=True)
    for name in ("taef2_encoder.pth", "taef2_decoder.pth"):
        shutil.copy2(args.taef2 / name, args.out / "taef2" / name)
    metrics = args.out / "mrtcache" / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    shutil.copy2(weight_path("lpips_alex"), metrics / "lpips_alex.safetensors")
    print(f"{n} of {len(items)} images, {total / 1e6:.1f} MB, in {train}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
