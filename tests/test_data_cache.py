"""The cache builder with the real TAEF2 encoder (needs ../shared/pretrained/taef2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mrt.data.cache import build_cache, list_images, load_cache
from mrt.data.crops import TrainingCrops

TAEF2 = Path(__file__).resolve().parents[1] / ".." / "shared" / "pretrained" / "taef2"


@pytest.mark.data
def test_build_cache_with_mirrored_latents(tmp_path: Path) -> None:
    if not (TAEF2 / "taef2_encoder.pth").is_file():
        pytest.skip(f"TAEF2 weights not found at {TAEF2}")
    from mrt.models.taef2 import load_taef2

    src = tmp_path / "img"
    src.mkdir()
    yy, xx = np.mgrid[0:72, 0:100]
    img = np.stack([xx * 2.5, yy * 3.0, (xx + yy) % 64 * 4], -1).astype(np.uint8)  # asymmetric
    Image.fromarray(img).save(src / "a.png")
    cache = build_cache(list_images(src), tmp_path / "cache", TAEF2, progress=False, flip_latents=True)
    (item,) = load_cache(cache, need_latents=True)
    assert item.pixels.shape == (64, 96, 3)
    assert item.latent is not None and item.latent_flip is not None
    enc, _ = load_taef2(TAEF2)
    x = torch.from_numpy(np.array(item.pixels)).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        ref = enc(x.flip(-1))[0]
    assert torch.allclose(torch.from_numpy(np.array(item.latent_flip, dtype=np.float32)), ref, atol=2e-2)
    ds = TrainingCrops([item], crop=32, seed=0)
    assert ds.n_flippable == 1
