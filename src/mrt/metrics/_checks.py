"""Input validation and conversion shared by the metrics."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["as_batch", "check_pair"]


def check_pair(x: Tensor, y: Tensor, min_size: int = 1) -> None:
    """Require two float image batches ``[B, 3, H, W]`` of one shape, at least ``min_size`` px."""
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"{name} must have shape [B, 3, H, W], got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a float tensor in [0, 1], got {t.dtype}")
    if x.shape != y.shape:
        raise ValueError(f"x and y shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if min(x.shape[-2:]) < min_size:
        raise ValueError(f"images must be at least {min_size} x {min_size} pixels, got {tuple(x.shape[-2:])}")


def as_batch(img: Tensor | np.ndarray) -> tuple[Tensor, bool]:
    """Convert an image or batch to a ``[B, 3, H, W]`` tensor; report whether it was 8-bit.

    Accepts torch tensors ``[B,3,H,W]`` / ``[3,H,W]`` (float in [0, 1] or uint8) and numpy
    arrays in the same layouts or channels-last ``(H, W, 3)`` / ``(B, H, W, 3)`` (uint8 or float).
    """
    if isinstance(img, np.ndarray):
        arr = img
        if arr.ndim == 3 and arr.shape[-1] == 3 and arr.shape[0] != 3:
            arr = arr.transpose(2, 0, 1)  # (H, W, 3) -> (3, H, W)
        elif arr.ndim == 4 and arr.shape[-1] == 3 and arr.shape[1] != 3:
            arr = arr.transpose(0, 3, 1, 2)  # (B, H, W, 3) -> (B, 3, H, W)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    elif isinstance(img, Tensor):
        t = img
    else:
        raise TypeError(f"expected a torch.Tensor or numpy array, got {type(img).__name__}")
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(f"expected an RGB image [B, 3, H, W] / [3, H, W] / (H, W, 3), got {tuple(t.shape)}")
    is_u8 = t.dtype == torch.uint8
    if not is_u8 and not t.is_floating_point():
        raise TypeError(f"expected uint8 or float images, got {t.dtype}")
    return t, is_u8
