"""The training batch passed to every task."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Batch:
    """One training batch of aligned crops.

    ``pixels``: ``[B, 3, h, w]`` float32 in ``[0, 1]`` (``None`` when the data config has
    ``with_pixels: false``).
    ``latents``: ``[B, 32, h/8, w/8]`` float32, the frozen TAEF2 encoder's output for the same
    region (``None`` when ``with_latents: false``). ``latents[..., y, x]`` covers
    ``pixels[..., 8y:8y+8, 8x:8x+8]``.
    """

    pixels: Tensor | None = None
    latents: Tensor | None = None

    @property
    def size(self) -> int:
        """Number of samples B."""
        for t in (self.pixels, self.latents):
            if t is not None:
                return int(t.shape[0])
        return 0

    def __len__(self) -> int:
        return self.size

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """A copy with every tensor moved to ``device``."""
        return Batch(
            pixels=None if self.pixels is None else self.pixels.to(device, non_blocking=non_blocking),
            latents=None if self.latents is None else self.latents.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> "Batch":
        """Page-locked copy (called by ``DataLoader(pin_memory=True)``)."""
        return Batch(
            pixels=None if self.pixels is None else self.pixels.pin_memory(),
            latents=None if self.latents is None else self.latents.pin_memory(),
        )
