"""Random aligned training crops from the pixel/latent cache, as a deterministic, resumable stream.

Every sample is addressed by a *global sample index* ``g`` (a non-negative integer). Everything
random about sample ``g`` (which image, where the crop lies, whether it is flipped) is a pure
function of ``(seed, g)``, so:

- the stream is reproducible and needs no RNG state: resuming at optimizer step ``s`` simply
  asks for the indices of step ``s`` again;
- ranks never share samples: at step ``s`` rank ``r`` of ``W`` reads
  ``g = (s * W + r) * B + j`` for ``j < B`` (:func:`step_indices`);
- images are visited in epochs without replacement: epoch ``e = g // N`` is a fresh
  permutation of the ``N`` images, seeded by ``(seed, e)``;
- DataLoader workers (``num_workers > 0``) only prefetch; they do not change the stream.

Alignment: with latents, the pixel crop starts at a multiple of 8, ``(8y, 8x)``, and the latent
crop at ``(y, x)``; crop sizes are multiples of 16 (so the latent crop is even, for 2x2 latent
patches). The cached latent is the TAEF2 encoding of the *whole* image; its crop is therefore not
bit-identical to encoding the pixel crop alone (the encoder sees context across the crop border).
Without latents, pixel crops may start at any pixel.

Horizontal flips. Pixels are simply mirrored. Latents must not be: TAEF2's encoder is far from
flip-equivariant (decoding a mirrored latent loses 8-9 dB against the mirrored image, measured
on Kodak), so with ``latent_flip="exact"`` (default) a flipped sample takes its latent crop from
the encoding of the mirrored image (``CacheItem.latent_flip``, built with
``build_cache(flip_latents=True)``) at the mirrored position, and items without it (or narrower
than the crop) are never flipped. ``latent_flip="mirror"`` mirrors the cached latent instead (a
crude approximation, kept for experiments). Without latents every item may flip.

Images smaller than the crop are, by default (``small="pad"``), mirror-padded at the bottom and
right with numpy's ``symmetric`` mode (edge row repeated). Because the cached size and the crop
are multiples of 16, the padding is a whole number of 8x8 blocks and mirrors pixel blocks and
latent cells consistently. ``small="skip"`` drops such images instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mrt.data.batch import Batch
from mrt.data.cache import ALIGN
from mrt.errors import ConfigError, MRTError
from mrt.models.taef2 import LATENT_CHANNELS, LATENT_STRIDE

__all__ = [
    "CropParams",
    "CropSample",
    "StepBatchSampler",
    "TrainingCrops",
    "collate_crops",
    "make_loader",
    "step_indices",
]

_EPOCH_STREAM = 0x0E90C4  # distinct SeedSequence words for the permutation and per-sample streams
_SAMPLE_STREAM = 0x5A3F1E


class CacheItemLike(Protocol):
    """What :class:`TrainingCrops` reads from an item (``mrt.data.cache.CacheItem`` fits)."""

    key: str
    pixels: np.ndarray  # uint8 [H, W, 3], H and W multiples of 16
    latent: np.ndarray | None  # float16 [32, H/8, W/8]
    # optional attribute ``latent_flip``: float16 [32, H/8, W/8], encoding of the mirrored image


@dataclass(frozen=True)
class CropParams:
    """Where sample ``g`` comes from.

    ``item`` indexes the dataset's item list; ``py, px`` is the top-left pixel of the crop in the
    (possibly padded) image; with latents, ``py`` and ``px`` are multiples of 8 and the latent crop
    starts at ``(py // 8, px // 8)``. ``flip``: the pixel crop is mirrored after cropping (and the
    latent comes from the mirrored image's encoding at ``(py // 8, (W - px - crop) // 8)`` in
    ``latent_flip="exact"`` mode).
    """

    item: int
    py: int
    px: int
    flip: bool


@dataclass
class CropSample:
    """One sample before collation: ``pixels [3, c, c]`` float in [0, 1], ``latents [32, c/8, c/8]``."""

    pixels: torch.Tensor | None
    latents: torch.Tensor | None


def step_indices(step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """Global sample indices read by ``rank`` at optimizer step ``step``."""
    first = (step * world_size + rank) * batch_size
    return list(range(first, first + batch_size))


class TrainingCrops(Dataset[CropSample]):
    """Map-style dataset of random aligned crops, addressed by global sample index (any int >= 0).

    ``len()`` is the number of usable images (one epoch); indices beyond it are valid and select
    later epochs. Use with :class:`StepBatchSampler` and :func:`collate_crops`
    (or :func:`make_loader`).
    """

    def __init__(
        self,
        items: Sequence[CacheItemLike],
        crop: int,
        with_pixels: bool = True,
        with_latents: bool = True,
        seed: int = 0,
        small: str = "pad",
        flip: bool = True,
        latent_flip: str = "exact",
    ) -> None:
        if crop <= 0 or crop % ALIGN:
            raise ConfigError(f"crop must be a positive multiple of {ALIGN}, got {crop}")
        if not (with_pixels or with_latents):
            raise ConfigError("at least one of with_pixels / with_latents must be true")
        if small not in ("pad", "skip"):
            raise ConfigError(f"small must be 'pad' or 'skip', got {small!r}")
        if latent_flip not in ("exact", "mirror"):
            raise ConfigError(f"latent_flip must be 'exact' or 'mirror', got {latent_flip!r}")
        self.crop = crop
        self.with_pixels = with_pixels
        self.with_latents = with_latents
        self.seed = int(seed)
        self.small = small
        self.flip = flip
        self.latent_flip = latent_flip
        kept: list[CacheItemLike] = []
        for it in items:
            h, w = int(it.pixels.shape[0]), int(it.pixels.shape[1])
            if h % ALIGN or w % ALIGN or it.pixels.ndim != 3 or it.pixels.shape[2] != 3:
                raise MRTError(f"cache item {it.key}: pixels {tuple(it.pixels.shape)} are not [H16, W16, 3]")
            if with_latents:
                if it.latent is None:
                    raise MRTError(f"cache item {it.key} has no latent (cache built without TAEF2)")
                want = (LATENT_CHANNELS, h // LATENT_STRIDE, w // LATENT_STRIDE)
                if tuple(it.latent.shape) != want:
                    raise MRTError(f"cache item {it.key}: latent {tuple(it.latent.shape)} != {want}")
                lf = getattr(it, "latent_flip", None)
                if lf is not None and tuple(lf.shape) != want:
                    raise MRTError(f"cache item {it.key}: latent_flip {tuple(lf.shape)} != {want}")
            if small == "skip" and (h < crop or w < crop):
                continue
            kept.append(it)
        if not kept:
            raise MRTError(f"no training image is at least {crop}x{crop} (of {len(items)}); lower data.crop")
        self.items: list[CacheItemLike] = kept
        self._can_flip = [self._flippable(it) for it in kept]
        self._perm_epoch = -1
        self._perm: np.ndarray = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.items)

    def _flippable(self, it: CacheItemLike) -> bool:
        if not self.flip:
            return False
        if not self.with_latents or self.latent_flip == "mirror":
            return True
        return getattr(it, "latent_flip", None) is not None and int(it.pixels.shape[1]) >= self.crop

    @property
    def n_flippable(self) -> int:
        """How many items may be flipped (see the module notes on latent flips)."""
        return sum(self._can_flip)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, _EPOCH_STREAM, epoch])))
            self._perm = rng.permutation(len(self.items))
            self._perm_epoch = epoch
        return self._perm

    def params(self, index: int) -> CropParams:
        """The (deterministic) crop parameters of global sample ``index``."""
        if index < 0:
            raise IndexError(index)
        n = len(self.items)
        item = int(self._permutation(index // n)[index % n])
        h, w = (max(int(s), self.crop) for s in self.items[item].pixels.shape[:2])
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, _SAMPLE_STREAM, index])))
        step = LATENT_STRIDE if self.with_latents else 1
        py = int(rng.integers(0, (h - self.crop) // step + 1)) * step
        px = int(rng.integers(0, (w - self.crop) // step + 1)) * step
        coin = bool(rng.integers(0, 2))  # always drawn, so flip settings do not shift the stream
        return CropParams(item=item, py=py, px=px, flip=coin and self._can_flip[item])

    def __getitem__(self, index: int) -> CropSample:
        p = self.params(int(index))
        it = self.items[p.item]
        c = self.crop
        pixels = latents = None
        if self.with_pixels:
            arr = _pad_to(it.pixels, c, axes=(0, 1))[p.py : p.py + c, p.px : p.px + c]  # [c, c, 3] uint8
            if p.flip:
                arr = arr[:, ::-1]
            pixels = torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).float().div_(255.0)  # [3, c, c]
        if self.with_latents:
            assert it.latent is not None
            cl, ly, lx = c // LATENT_STRIDE, p.py // LATENT_STRIDE, p.px // LATENT_STRIDE
            source = it.latent
            if p.flip and self.latent_flip == "exact":
                source = it.latent_flip  # type: ignore[attr-defined]
                lx = (int(it.pixels.shape[1]) - p.px - c) // LATENT_STRIDE  # mirrored column
            lat = _pad_to(source, cl, axes=(1, 2))[:, ly : ly + cl, lx : lx + cl]  # [32, c/8, c/8] fp16
            if p.flip and self.latent_flip == "mirror":
                lat = lat[:, :, ::-1]
            latents = torch.from_numpy(np.ascontiguousarray(lat, dtype=np.float32))
        return CropSample(pixels=pixels, latents=latents)


def _pad_to(arr: np.ndarray, size: int, axes: tuple[int, int]) -> np.ndarray:
    """Mirror-pad (numpy 'symmetric') the two spatial ``axes`` at the end up to ``size``; no copy if big enough."""
    need = [max(0, size - arr.shape[a]) for a in axes]
    if not any(need):
        return arr
    widths = [(0, 0)] * arr.ndim
    for a, n in zip(axes, need):
        widths[a] = (0, n)
    return np.pad(np.asarray(arr), widths, mode="symmetric")


def collate_crops(samples: Sequence[CropSample]) -> Batch:
    """Stack samples into a :class:`Batch`."""
    pixels = torch.stack([s.pixels for s in samples]) if samples[0].pixels is not None else None  # type: ignore[misc]
    latents = torch.stack([s.latents for s in samples]) if samples[0].latents is not None else None  # type: ignore[misc]
    return Batch(pixels=pixels, latents=latents)


class StepBatchSampler(Sampler[list[int]]):
    """Yields the global sample indices of steps ``start_step .. end_step-1`` for one rank."""

    def __init__(self, batch_size: int, start_step: int, end_step: int, rank: int = 0, world_size: int = 1) -> None:
        self.batch_size = batch_size
        self.start_step = start_step
        self.end_step = end_step
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def __iter__(self) -> Iterator[list[int]]:
        for s in range(self.start_step, self.end_step):
            yield step_indices(s, self.batch_size, self.rank, self.world_size)


def make_loader(
    dataset: TrainingCrops,
    batch_size: int,
    start_step: int,
    end_step: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    pin_memory: bool = False,
    seed: int = 0,
) -> DataLoader[Any]:
    """A DataLoader yielding one :class:`Batch` per optimizer step, ``start_step`` first.

    It gets its own ``torch.Generator`` (seeded with ``seed``), so creating its iterator does not
    draw from the global torch RNG (which would break bit-exact resumption of random tasks).
    """
    sampler = StepBatchSampler(batch_size, start_step, end_step, rank, world_size)
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        kwargs.update(prefetch_factor=2, persistent_workers=False)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_crops,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )
