"""Synthetic cache items for tests and benchmarks: random smooth images and fake latents.

No TAEF2 and no ``../shared``: the pixels are smooth random colours, and the latents carry the
8x8 pixel means in channels 0-2 (so that crop alignment can be checked) and smooth noise elsewhere.
Importable from the tests (``from _synthetic import synthetic_items``) and, with ``tests/`` on
``sys.path``, from the benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mrt.data.cache import ALIGN, CacheItem, save_npy, write_manifest
from mrt.models.taef2 import LATENT_CHANNELS


def synthetic_items(n: int, h: int, w: int, seed: int = 0, flips: bool = False) -> list[CacheItem]:
    """``n`` random smooth images with matching fake latents, for tests (no TAEF2, no files).

    Pixels: uint8 ``[h, w, 3]`` (bilinear upsampled random colour grid plus a gradient).
    Latents: float16 ``[32, h/8, w/8]``; channels 0-2 are the 8x8 average of the pixels in
    ``[0, 1]`` (so alignment can be checked), channels 3-31 smooth random values.
    With ``flips``, ``latent_flip`` stands in for the encoding of the mirrored image: channels 0-2
    are the 8x8 means of the mirrored pixels, channels 3-31 *other* random values (so a test can
    tell it from a mirrored ``latent``).
    """
    if h <= 0 or w <= 0 or h % ALIGN or w % ALIGN:
        raise ValueError(f"synthetic image size must be positive multiples of {ALIGN}, got {h}x{w}")
    gen = torch.Generator().manual_seed(seed)
    items: list[CacheItem] = []
    for i in range(n):
        grid = torch.rand(1, 3, h // 16 + 1, w // 16 + 1, generator=gen)
        img = torch.nn.functional.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)  # [1,3,h,w]
        ramp = torch.linspace(0, 0.3, w).view(1, 1, 1, w) * torch.rand(1, 3, 1, 1, generator=gen)
        img = (0.7 * img + ramp).clamp(0, 1)
        pix = (img[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()  # [h, w, 3]
        mean = torch.nn.functional.avg_pool2d(torch.from_numpy(pix).permute(2, 0, 1)[None].float() / 255, 8)[0]
        noise = torch.nn.functional.interpolate(
            torch.randn(1, LATENT_CHANNELS - 3, h // 32 + 1, w // 32 + 1, generator=gen),
            size=(h // 8, w // 8),
            mode="bilinear",
            align_corners=False,
        )[0]
        lat = torch.cat([mean, noise]).to(torch.float16).numpy()  # [32, h/8, w/8]
        lat_flip = None
        if flips:
            other = torch.randn(LATENT_CHANNELS - 3, h // 8, w // 8, generator=gen)
            lat_flip = torch.cat([mean.flip(-1), other]).to(torch.float16).numpy()  # [32, h/8, w/8]
        items.append(CacheItem(key=f"synthetic-{seed}-{i}", pixels=pix, latent=lat, latent_flip=lat_flip))
    return items


def write_cache(items: Sequence[CacheItem], cache_dir: str | Path, latent_hash: str | None = "synthetic") -> Path:
    """Store ``items`` in the on-disk cache format of :mod:`mrt.data.cache` (readable by ``load_cache``).

    ``latent_hash`` stands in for the TAEF2 encoder hash (``None``: a pixel-only cache).
    """
    cache_dir = Path(cache_dir)
    (cache_dir / "items").mkdir(parents=True, exist_ok=True)
    entries = []
    for it in items:
        save_npy(cache_dir / "items" / f"{it.key}.pix.npy", np.ascontiguousarray(it.pixels))
        if it.latent is not None and latent_hash is not None:
            save_npy(cache_dir / "items" / f"{it.key}.lat.npy", np.ascontiguousarray(it.latent))
            if it.latent_flip is not None:
                save_npy(cache_dir / "items" / f"{it.key}.latflip.npy", np.ascontiguousarray(it.latent_flip))
        entries.append({"key": it.key, "source": f"<synthetic:{it.key}>"})
    manifest = {"version": 1, "taef2_encoder_sha256": latent_hash, "align": ALIGN, "max_side": None, "items": entries}
    write_manifest(cache_dir, manifest)
    return cache_dir
