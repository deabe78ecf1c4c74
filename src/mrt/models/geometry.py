"""Where an image's pixels, its TAEF2 latent and its windows line up: the one place that knows.

An ``H x W`` image is edge-padded to whole ``window x window`` windows (``rows x cols`` of them, in
raster order); the TAEF2 latent has one cell per ``LATENT_STRIDE x LATENT_STRIDE`` pixels, so a
window is ``window / LATENT_STRIDE`` cells on a side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mrt.models.taef2 import LATENT_STRIDE


@dataclass(frozen=True)
class Geometry:
    """Image size and its window grid (``height``/``width``: the real image, before padding)."""

    height: int
    width: int
    window: int

    @classmethod
    def of_latent(cls, latent_hw: tuple[int, int], window: int) -> "Geometry":
        """The geometry of a latent whose sides (in cells) are whole windows (training crops)."""
        h, w = latent_hw
        cells = window_cells(window)
        if h % cells or w % cells:
            raise ValueError(f"latent {h}x{w} is not made of whole {cells}-cell windows")
        return cls(h * LATENT_STRIDE, w * LATENT_STRIDE, window)

    @property
    def rows(self) -> int:
        return math.ceil(self.height / self.window)

    @property
    def cols(self) -> int:
        return math.ceil(self.width / self.window)

    @property
    def n_windows(self) -> int:
        return self.rows * self.cols

    @property
    def padded_height(self) -> int:
        return self.rows * self.window

    @property
    def padded_width(self) -> int:
        return self.cols * self.window

    @property
    def pixels(self) -> int:
        """Pixels of the image (the denominator of bits per pixel)."""
        return self.height * self.width


def window_cells(window: int) -> int:
    """Latent cells per window side."""
    return window // LATENT_STRIDE
