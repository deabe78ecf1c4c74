"""Aligned random crops, the deterministic per-step stream, synthetic items and the cache format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _synthetic import synthetic_items, write_cache

from mrt.data.batch import Batch
from mrt.data.cache import CacheItem, load_cache
from mrt.data.crops import TrainingCrops, collate_crops, make_loader, step_indices
from mrt.errors import ConfigError, MRTError


def test_synthetic_items_shapes() -> None:
    items = synthetic_items(3, 64, 96, seed=1)
    assert len(items) == 3
    assert items[0].pixels.shape == (64, 96, 3) and items[0].pixels.dtype == np.uint8
    assert items[0].latent is not None
    assert items[0].latent.shape == (32, 8, 12) and items[0].latent.dtype == np.float16
    assert not np.array_equal(items[0].pixels, items[1].pixels)
    assert np.array_equal(synthetic_items(1, 32, 32, seed=5)[0].pixels, synthetic_items(1, 32, 32, seed=5)[0].pixels)
    with pytest.raises(ValueError):
        synthetic_items(1, 30, 32)


def test_crop_alignment_matches_cache_regions() -> None:
    items = synthetic_items(4, 80, 112, seed=2)
    ds = TrainingCrops(items, crop=48, with_pixels=True, with_latents=True, seed=3)
    assert ds.n_flippable == 0  # no encodings of mirrored images: latent samples are never flipped
    for g in range(40):
        p = ds.params(g)
        s = ds[g]
        assert p.py % 8 == 0 and p.px % 8 == 0 and not p.flip
        assert s.pixels is not None and s.latents is not None
        assert s.pixels.shape == (3, 48, 48) and s.pixels.dtype == torch.float32
        assert s.latents.shape == (32, 6, 6) and s.latents.dtype == torch.float32
        it = ds.items[p.item]
        pix = it.pixels[p.py : p.py + 48, p.px : p.px + 48]
        lat = it.latent[:, p.py // 8 : p.py // 8 + 6, p.px // 8 : p.px // 8 + 6]
        assert torch.equal(s.pixels, torch.from_numpy(pix.copy()).permute(2, 0, 1).float() / 255)
        assert torch.equal(s.latents, torch.from_numpy(lat.astype(np.float32)))
        # synthetic latents carry the 8x8 pixel means in channels 0-2: the crop regions correspond
        assert torch.allclose(F.avg_pool2d(s.pixels[None], 8)[0], s.latents[:3], atol=2e-3)


def test_exact_flips_use_the_mirrored_image_encoding() -> None:
    items = synthetic_items(3, 64, 112, seed=4, flips=True)
    ds = TrainingCrops(items, crop=48, seed=1)
    assert ds.n_flippable == 3
    flips = set()
    for g in range(30):
        p, s = ds.params(g), ds[g]
        flips.add(p.flip)
        assert s.pixels is not None and s.latents is not None
        it = ds.items[p.item]
        pix = it.pixels[p.py : p.py + 48, p.px : p.px + 48]
        ly = p.py // 8
        if p.flip:
            pix = pix[:, ::-1]
            lx = (112 - p.px - 48) // 8
            lat = it.latent_flip[:, ly : ly + 6, lx : lx + 6]
        else:
            lat = it.latent[:, ly : ly + 6, p.px // 8 : p.px // 8 + 6]
        assert torch.equal(s.pixels, torch.from_numpy(pix.copy()).permute(2, 0, 1).float() / 255)
        assert torch.equal(s.latents, torch.from_numpy(lat.astype(np.float32)))
        assert torch.allclose(F.avg_pool2d(s.pixels[None], 8)[0], s.latents[:3], atol=2e-3)
    assert flips == {True, False}
    # "mirror" mode mirrors the cached latent instead (approximation), same pixels
    mirror = TrainingCrops(items, crop=48, seed=1, latent_flip="mirror")
    g = next(g for g in range(30) if ds.params(g).flip)
    p, s, m = ds.params(g), ds[g], mirror[g]
    assert torch.equal(s.pixels, m.pixels)
    lat = items[p.item].latent[:, p.py // 8 : p.py // 8 + 6, p.px // 8 : p.px // 8 + 6][:, :, ::-1]
    assert torch.equal(m.latents, torch.from_numpy(lat.astype(np.float32)))
    assert not torch.equal(m.latents[3:], s.latents[3:])
    # flip settings never shift the stream of images and offsets
    off = TrainingCrops(items, crop=48, seed=1, flip=False)
    assert [(off.params(g).item, off.params(g).py, off.params(g).px) for g in range(30)] == [
        (ds.params(g).item, ds.params(g).py, ds.params(g).px) for g in range(30)
    ]
    assert not any(off.params(g).flip for g in range(30))


def test_pixels_only_any_offset_and_latents_only() -> None:
    items = synthetic_items(2, 64, 64, seed=0)
    ds = TrainingCrops(items, crop=32, with_pixels=True, with_latents=False, seed=0, flip=False)
    offsets = {(ds.params(g).py % 8, ds.params(g).px % 8) for g in range(60)}
    assert len(offsets) > 1  # not restricted to the 8-pixel grid
    s = ds[0]
    assert s.latents is None and s.pixels is not None
    assert TrainingCrops(items, crop=32, with_latents=False).n_flippable == 2  # pixels alone flip freely
    ds2 = TrainingCrops(items, crop=32, with_pixels=False, with_latents=True, seed=0)
    b = collate_crops([ds2[0], ds2[1]])
    assert b.pixels is None and b.latents is not None and b.latents.shape == (2, 32, 4, 4) and b.size == 2


def test_stream_is_deterministic_epoch_based_and_rank_disjoint() -> None:
    items = synthetic_items(5, 32, 48, seed=0)
    a = TrainingCrops(items, crop=32, seed=7)
    b = TrainingCrops(items, crop=32, seed=7)
    c = TrainingCrops(items, crop=32, seed=8)
    assert [a.params(g) for g in range(20)] == [b.params(g) for g in range(20)]
    assert [a.params(g) for g in range(20)] != [c.params(g) for g in range(20)]
    for e in range(3):  # every epoch visits every image once
        assert sorted(a.params(g).item for g in range(5 * e, 5 * e + 5)) == list(range(5))
    r0 = {g for s in range(4) for g in step_indices(s, 3, rank=0, world_size=2)}
    r1 = {g for s in range(4) for g in step_indices(s, 3, rank=1, world_size=2)}
    assert not r0 & r1 and r0 | r1 == set(range(24))


def test_small_images_padded_or_skipped() -> None:
    big = synthetic_items(1, 64, 64, seed=0)[0]
    small = synthetic_items(1, 32, 48, seed=1)[0]
    ds = TrainingCrops([big, small], crop=64, seed=0)
    for g in range(6):
        p, s = ds.params(g), ds[g]
        assert s.pixels is not None and s.pixels.shape == (3, 64, 64)
        assert s.latents is not None and s.latents.shape == (32, 8, 8)
        if ds.items[p.item] is small:
            assert (p.py, p.px) == (0, 0)
            pix = s.pixels.flip(-1) if p.flip else s.pixels
            lat = s.latents.flip(-1) if p.flip else s.latents
            ref = torch.from_numpy(small.pixels.copy()).permute(2, 0, 1).float() / 255
            assert torch.equal(pix[:, :32, :48], ref)
            assert torch.equal(pix[:, 32:, :48], ref.flip(1))  # mirrored rows below the image
            assert torch.allclose(F.avg_pool2d(pix[None], 8)[0], lat[:3], atol=2e-3)  # still aligned
    skip = TrainingCrops([big, small], crop=64, seed=0, small="skip")
    assert len(skip) == 1
    with pytest.raises(MRTError):
        TrainingCrops([small], crop=64, small="skip")


def test_bad_arguments() -> None:
    items = synthetic_items(1, 32, 32)
    with pytest.raises(ConfigError):
        TrainingCrops(items, crop=24)
    with pytest.raises(ConfigError):
        TrainingCrops(items, crop=32, with_pixels=False, with_latents=False)
    with pytest.raises(ConfigError):
        TrainingCrops(items, crop=32, latent_flip="approx")
    no_lat = [CacheItem(key="x", pixels=items[0].pixels, latent=None)]
    with pytest.raises(MRTError):
        TrainingCrops(no_lat, crop=32, with_latents=True)
    TrainingCrops(no_lat, crop=32, with_latents=False)


def test_loader_workers_do_not_change_the_stream() -> None:
    items = synthetic_items(3, 48, 48, seed=4)
    ds = TrainingCrops(items, crop=32, seed=1)
    plain = list(make_loader(ds, batch_size=2, start_step=3, end_step=6, rank=1, world_size=2))
    workers = list(make_loader(ds, batch_size=2, start_step=3, end_step=6, rank=1, world_size=2, num_workers=2))
    assert len(plain) == len(workers) == 3
    for x, y in zip(plain, workers):
        assert isinstance(x, Batch)
        assert torch.equal(x.pixels, y.pixels) and torch.equal(x.latents, y.latents)
    direct = collate_crops([ds[g] for g in step_indices(3, 2, rank=1, world_size=2)])
    assert torch.equal(plain[0].pixels, direct.pixels)


def test_batch_to_and_size() -> None:
    b = Batch(pixels=torch.zeros(2, 3, 16, 16), latents=None)
    assert b.size == 2 and len(b) == 2
    c = b.to("cpu")
    assert c.pixels is not None and c.latents is None
    assert Batch().size == 0


def test_write_cache_roundtrip(tmp_path) -> None:
    items = synthetic_items(2, 32, 48, seed=3, flips=True)
    write_cache(items, tmp_path / "c")
    back = load_cache(tmp_path / "c", need_latents=True)
    assert [b.key for b in back] == [i.key for i in items]
    assert np.array_equal(back[1].pixels, items[1].pixels)
    assert np.array_equal(back[1].latent, items[1].latent)
    assert np.array_equal(back[1].latent_flip, items[1].latent_flip)
    assert load_cache(tmp_path / "c", need_latents=False)[0].latent_flip is None
    write_cache(items, tmp_path / "p", latent_hash=None)
    with pytest.raises(MRTError):
        load_cache(tmp_path / "p", need_latents=True)
