"""Decoded-image and TAEF2-latent cache for training.

Two CPU cores should spend their time on the model, not on JPEG decoding or on the frozen
TAEF2 encoder, so every training image is decoded and encoded once:

    cache_dir/
      manifest.json           # source list, TAEF2 hash, crop rule, one entry per image
      items/<key>.pix.npy     # uint8 [H16, W16, 3]   (image cropped to multiples of 16)
      items/<key>.lat.npy     # float16 [32, H16/8, W16/8]   (frozen TAEF2 encoder output)
      items/<key>.latflip.npy # optional: float16 [32, H16/8, W16/8], TAEF2 latent of the
                              # horizontally mirrored image (build_cache(flip_latents=True))

The build is resumable: items already on disk are skipped. Files are written atomically.

Why ``latflip``: TAEF2's encoder is far from flip-equivariant. Mirroring a cached latent and
decoding it loses about 8-9 dB against the mirrored image (Kodak kodim01: 27.2 dB round trip,
19.4 dB with a mirrored latent; kodim23: 33.4 vs 24.6 dB), so exact horizontal-flip
augmentation of latent crops needs the encoding of the mirrored image.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrt.errors import MRTError
from mrt.io import atomic_write, atomic_write_text

# The formats of a training pool: a deliberate subset of ``mrt.io.IMAGE_SUFFIXES`` (the codec's
# inputs), decoded here by Pillow alone; widening it would change which files a cache holds.
TRAIN_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
ALIGN = 16


def list_images(root: str | Path) -> list[Path]:
    """All images under ``root`` (recursive), sorted for reproducibility."""
    root = Path(root)
    if not root.is_dir():
        raise MRTError(f"image folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TRAIN_SUFFIXES)


def _item_key(path: Path) -> str:
    st = path.stat()
    digest = hashlib.sha256(f"{path.resolve()}|{st.st_size}".encode()).hexdigest()[:16]
    return f"{path.stem}-{digest}"


def save_npy(path: Path, arr: np.ndarray) -> None:
    """Write one cache array (``.npy``) atomically, replacing an older copy."""
    with atomic_write(path, force=True) as f:
        np.save(f, arr)


def write_manifest(cache_dir: Path, manifest: dict[str, Any]) -> None:
    """Write (or replace) ``cache_dir/manifest.json`` atomically: the last step of a build."""
    atomic_write_text(cache_dir / "manifest.json", json.dumps(manifest, indent=1), force=True)


@dataclass(frozen=True)
class CacheItem:
    """One cached image: memory-mapped pixels (uint8 HxWx3) and, if built, its TAEF2 latent."""

    key: str
    pixels: np.ndarray
    latent: np.ndarray | None
    latent_flip: np.ndarray | None = None  # TAEF2 latent of the mirrored image (flipped coordinates)


def build_cache(
    sources: list[Path],
    cache_dir: str | Path,
    taef2_dir: str | Path | None,
    max_side: int = 1024,
    progress: bool = True,
    flip_latents: bool = False,
    device: str | torch.device = "cpu",
) -> Path:
    """Decode (and encode with TAEF2, when ``taef2_dir`` is given) every source image once.

    Images whose longer side exceeds ``max_side`` are downscaled (Lanczos) first, then cropped
    to multiples of 16 (top-left anchored). With ``flip_latents`` (and TAEF2) the mirrored image
    is encoded too (``<key>.latflip.npy``; doubles the encoding time), for exact flip augmentation.
    ``device``: where the TAEF2 encoder runs (a GPU builds the latents of a few thousand images in
    seconds; the stored float16 latents do not depend on it beyond rounding).
    """
    from PIL import Image, ImageOps

    cache_dir = Path(cache_dir)
    (cache_dir / "items").mkdir(parents=True, exist_ok=True)
    encoder = None
    taef2_hash = None
    if taef2_dir is not None:
        from mrt.models.taef2 import TAEF2_SHA256, load_taef2

        encoder, _ = load_taef2(taef2_dir)
        encoder = encoder.to(device)
        taef2_hash = TAEF2_SHA256["taef2_encoder.pth"]
    entries = []
    n_flipped = 0
    iterator = sources
    if progress:
        from tqdm import tqdm

        iterator = tqdm(sources, desc="cache", unit="img")
    for src in iterator:
        key = _item_key(src)
        pix_path = cache_dir / "items" / f"{key}.pix.npy"
        lat_path = cache_dir / "items" / f"{key}.lat.npy"
        if not pix_path.exists():
            with Image.open(src) as im:
                img = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
            h, w = img.shape[:2]
            if max(h, w) > max_side:
                scale = max_side / max(h, w)
                img = np.asarray(
                    Image.fromarray(img).resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
                )
            h16, w16 = (img.shape[0] // ALIGN) * ALIGN, (img.shape[1] // ALIGN) * ALIGN
            if h16 == 0 or w16 == 0:
                continue
            save_npy(pix_path, np.ascontiguousarray(img[:h16, :w16]))
        flip_path = cache_dir / "items" / f"{key}.latflip.npy"
        todo = [] if encoder is None else [(lat_path, False), (flip_path, True)][: 2 if flip_latents else 1]
        todo = [(path, flip) for path, flip in todo if not path.exists()]
        if todo:
            assert encoder is not None
            pix = np.load(pix_path)
            x = torch.from_numpy(pix.copy()).to(device).permute(2, 0, 1)[None].float() / 255.0  # [1,3,H,W]
            for path, flip in todo:
                with torch.inference_mode():
                    lat = encoder(x.flip(-1) if flip else x)[0].cpu().numpy().astype(np.float16)  # [32, H/8, W/8]
                save_npy(path, lat)
        if flip_path.exists():
            n_flipped += 1
        entries.append({"key": key, "source": str(src)})
    manifest = {
        "version": 1,
        "taef2_encoder_sha256": taef2_hash,
        "align": ALIGN,
        "max_side": max_side,
        "flipped_latents": n_flipped,
        "items": entries,
    }
    write_manifest(cache_dir, manifest)
    return cache_dir


def load_cache(cache_dir: str | Path, need_latents: bool) -> list[CacheItem]:
    """Memory-map every cached item listed in the manifest (with ``latent_flip`` where built)."""
    cache_dir = Path(cache_dir)
    manifest_path = cache_dir / "manifest.json"
    if not manifest_path.is_file():
        raise MRTError(f"no training cache at {cache_dir} (build it with `mrt train --build-cache` or build_cache())")
    manifest = json.loads(manifest_path.read_text())
    if need_latents and manifest.get("taef2_encoder_sha256") is None:
        raise MRTError(f"cache {cache_dir} has no TAEF2 latents; rebuild it with the TAEF2 weights")
    items = []
    for entry in manifest["items"]:
        key = entry["key"]
        pixels = np.load(cache_dir / "items" / f"{key}.pix.npy", mmap_mode="r")
        latent = np.load(cache_dir / "items" / f"{key}.lat.npy", mmap_mode="r") if need_latents else None
        flip_path = cache_dir / "items" / f"{key}.latflip.npy"
        latent_flip = np.load(flip_path, mmap_mode="r") if need_latents and flip_path.exists() else None
        items.append(CacheItem(key=key, pixels=pixels, latent=latent, latent_flip=latent_flip))
    return items
