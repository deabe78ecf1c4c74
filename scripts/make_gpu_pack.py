"""Pack training data for a leased GPU machine, where the working tree and the carried files
together are limited to 64 MiB and nothing can be fetched.

Writes PACK/train/*.jpg (cached training images, downscaled to at most --max-side on the long
side, multiples of 16, JPEG --quality 4:2:0, a random subset that fits the image budget) and
PACK/taef2/ (the two TAEF2 weight files), and the loss weights of the recipe:

- ``--recipe light`` (default; the shipped ``mrt-s2`` family, ``configs/stage2_light.yaml``):
  PACK/loss_pack.safetensors, the compact LPIPS-alex + DISTS + EfficientNet-Lite1 weights of
  ``mrt.train.loss_pack`` (29 MB), read through ``task_args.loss_pack``;
- ``--recipe mrt-s`` (the previous family, ``configs/stage1.yaml`` + ``configs/stage2.yaml``):
  PACK/mrtcache/metrics/lpips_alex.safetensors.

The image budget (``--budget-mb auto``) is what is left of the 64 MiB after the working tree that
travels (tracked and untracked-not-ignored files, less those ``scripts/gpu_stash.list`` names:
move them aside with ``bash scripts/gpu_stash.sh away`` before the device call) and the rest of
the pack, minus a 1 MiB margin. ``scripts/train_gpu.sh`` consumes the pack. Reads the decoded
images of an existing cache (``mrt train ... --build-only``), so it needs no access to the
original files.

    .venv/bin/python scripts/make_gpu_pack.py --cache cache/train_v1 --out gpu_pack
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

DEVICE_LIMIT = 64 * 2**20  # bytes that may travel to the leased machine, working tree included
MARGIN = 2**20
ROOT = Path(__file__).resolve().parent.parent
STASH_LIST = ROOT / "scripts" / "gpu_stash.list"
PACK_ENTRIES = {"train", "taef2", "loss_pack.safetensors", "mrtcache"}


def stashed_paths() -> list[str]:
    """Paths (relative to the repository root) that ``scripts/gpu_stash.sh away`` moves aside."""
    lines = STASH_LIST.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def travelling_bytes(exclude: list[str]) -> int:
    """Bytes of the working tree that travel to the device (tracked + untracked-not-ignored files
    that exist), less the paths in ``exclude`` and anything below them."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode()
    total = 0
    for rel in filter(None, out.split("\0")):
        if any(rel == e or rel.startswith(e.rstrip("/") + "/") for e in exclude):
            continue
        path = ROOT / rel
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def write_loss_pack_file(dest: Path) -> None:
    """The light recipe's loss weights (LPIPS-alex, DISTS, EfficientNet-Lite1) as one compact pack."""
    from mrt.io.files import sha256_file
    from mrt.metrics import DISTS, LPIPS
    from mrt.metrics.weights import weight_path
    from mrt.models.feature_discriminator import FeatureDiscriminator, lite1_weights_path
    from mrt.train.loss_pack import write_loss_pack

    sources = {p.name: sha256_file(p) for p in
               (weight_path("lpips_alex"), weight_path("lpips_vgg"), weight_path("dists"), lite1_weights_path())}
    write_loss_pack(dest, lpips=LPIPS("alex"), dists=DISTS(), lite1=FeatureDiscriminator().backbone,
                    sources=sources, force=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("cache/train_v1"))
    ap.add_argument("--out", type=Path, default=Path("gpu_pack"))
    ap.add_argument("--recipe", choices=("light", "mrt-s"), default="light")
    ap.add_argument("--taef2", type=Path, default=Path("../shared/pretrained/taef2"))
    ap.add_argument("--budget-mb", default="auto", help="size limit of the images (MB), or auto (what fits)")
    ap.add_argument("--max-side", type=int, default=640)
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--force", action="store_true", help="replace an existing pack in --out")
    args = ap.parse_args()

    from mrt.metrics.weights import weight_path

    items = sorted((args.cache / "items").glob("*.pix.npy"))
    if not items:
        print(f"error: no cached images in {args.cache}/items", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        foreign = sorted(p.name for p in args.out.iterdir() if p.name not in PACK_ENTRIES)
        if foreign or not args.force:
            why = f"it holds {', '.join(foreign[:3])}, which no pack has" if foreign else "use --force to replace it"
            print(f"error: {args.out} is not empty ({why})", file=sys.stderr)
            return 2
        shutil.rmtree(args.out)  # a stale pack would travel whole
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "taef2").mkdir()
    for name in ("taef2_encoder.pth", "taef2_decoder.pth"):
        shutil.copy2(args.taef2 / name, args.out / "taef2" / name)
    if args.recipe == "light":
        write_loss_pack_file(args.out / "loss_pack.safetensors")
    else:
        metrics = args.out / "mrtcache" / "metrics"
        metrics.mkdir(parents=True)
        shutil.copy2(weight_path("lpips_alex"), metrics / "lpips_alex.safetensors")
    weights = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    if args.budget_mb == "auto":
        tree = travelling_bytes(stashed_paths() + [str(args.out)])
        budget = DEVICE_LIMIT - MARGIN - tree - weights
        print(f"working tree that travels (after gpu_stash.sh away): {tree / 2**20:.1f} MiB; "
              f"pack weights {weights / 2**20:.1f} MiB; images get {budget / 2**20:.1f} MiB")
        if budget <= 0:
            print("error: nothing is left for images under the 64 MiB limit", file=sys.stderr)
            return 2
    else:
        budget = int(float(args.budget_mb) * 1e6)

    random.Random(args.seed).shuffle(items)
    train = args.out / "train"
    train.mkdir()
    total, n = 0, 0
    for path in items:
        im = Image.fromarray(np.load(path))
        if max(im.size) > args.max_side:
            s = args.max_side / max(im.size)
            size = (round(im.size[0] * s) // 16 * 16, round(im.size[1] * s) // 16 * 16)
            im = im.resize(size, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=args.quality, subsampling=2)
        if total + buf.tell() > budget:
            continue
        (train / path.name.replace(".pix.npy", ".jpg")).write_bytes(buf.getvalue())
        total += buf.tell()
        n += 1
    print(f"{n} of {len(items)} images, {total / 1e6:.1f} MB, in {train}; pack {(total + weights) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
