"""Resizing RGB images for coding at a reduced scale (format version 3, ``mrt.bitstream.scale``).

Pillow's Lanczos filter (a 3-lobe windowed sinc, evaluated in fixed point for 8-bit images):
the encoder uses it to make the coded copy, the decoder to restore the stored size, and the
scale policy to judge what a scale would lose. It is deterministic for a given Pillow version.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_rgb(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [height, width, 3] (Lanczos; the same array when the size is unchanged)."""
    if img.shape[:2] == (height, width):
        return img
    out = Image.fromarray(np.ascontiguousarray(img)).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(out)


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of the same shape (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def roundtrip_psnr(img: np.ndarray, height: int, width: int) -> float:
    """PSNR of ``img`` against itself resized to ``height`` x ``width`` and back: what the scale alone loses."""
    small = resize_rgb(img, height, width)
    return psnr_uint8(img, resize_rgb(small, img.shape[0], img.shape[1]))
