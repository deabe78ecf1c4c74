"""PSNR per image: ``10 log10(data_range^2 / MSE)``, MSE over all RGB channels and pixels."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from mrt.metrics._checks import as_batch

__all__ = ["psnr", "psnr_per_image", "quantize_8bit"]


def quantize_8bit(x: Tensor) -> Tensor:
    """Round float images in [0, 1] to the 8-bit grid (clamped), still as floats in [0, 1]."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def _prepare(
    x: Tensor | np.ndarray, y: Tensor | np.ndarray, data_range: float | None, quantize: bool
) -> tuple[Tensor, Tensor, float]:
    """Both inputs as float64 ``[B,3,H,W]`` plus the data range to use."""
    xt, x8 = as_batch(x)
    yt, y8 = as_batch(y)
    if xt.shape != yt.shape:
        raise ValueError(f"x and y shapes differ: {tuple(xt.shape)} vs {tuple(yt.shape)}")
    if x8 != y8:
        raise TypeError("x and y must both be uint8 or both be float")
    if x8:  # exact 8-bit values, range 255 unless told otherwise
        return xt.double(), yt.double(), 255.0 if data_range is None else float(data_range)
    xt, yt = xt.detach().double(), yt.detach().double()
    if quantize:
        xt, yt = quantize_8bit(xt), quantize_8bit(yt)
    return xt, yt, 1.0 if data_range is None else float(data_range)


def psnr_per_image(
    x: Tensor | np.ndarray, y: Tensor | np.ndarray, data_range: float | None = None, quantize: bool = False
) -> Tensor:
    """PSNR in dB of each image pair, ``[B]`` float64 (``inf`` for identical images).

    Args:
        x, y: ``[B,3,H,W]`` (or one ``[3,H,W]`` / ``(H,W,3)`` image) float in [0, 1] or uint8.
        data_range: peak value; default 1.0 for float input and 255 for uint8 input.
        quantize: round float inputs to 8 bits first (what a saved PNG would hold).
    """
    xt, yt, peak = _prepare(x, y, data_range, quantize)
    mse = ((xt - yt) ** 2).mean(dim=(1, 2, 3))  # [B]
    return 10.0 * torch.log10(peak**2 / mse)  # mse == 0 -> inf (torch division, no warning)


def psnr(
    x: Tensor | np.ndarray, y: Tensor | np.ndarray, data_range: float | None = None, quantize: bool = False
) -> float:
    """Mean over the batch of the per-image PSNR in dB (see ``psnr_per_image``)."""
    v = psnr_per_image(x, y, data_range, quantize)
    m = float(v.mean())
    return math.inf if math.isinf(m) and m > 0 else m
