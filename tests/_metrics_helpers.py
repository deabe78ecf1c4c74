"""Test helpers for the metrics: the fixed synthetic pair recorded in docs/metrics.md and an
independent numpy-only LPIPS-alex forward (no torch ops)."""

from __future__ import annotations

import math

import numpy as np
import torch

from mrt.metrics.lpips import LPIPS, LPIPS_SCALE, LPIPS_SHIFT


def synthetic_pair(h: int = 192, w: int = 192) -> tuple[torch.Tensor, torch.Tensor]:
    """``x``: smooth colour waves plus a checkerboard; ``y``: x darkened 10 %, with a
    horizontal 3-tap blur and 8-bit rounding. Formula-defined (no RNG), float32 [1,3,h,w]."""
    i = torch.arange(h, dtype=torch.float64).view(h, 1)
    j = torch.arange(w, dtype=torch.float64).view(1, w)
    chans = []
    for c in range(3):
        v = 0.5 + 0.25 * torch.sin(2 * math.pi * (i / 37.0 + c / 3.0)) * torch.cos(2 * math.pi * j / 23.0)
        v = v + 0.15 * (((i // 8) + (j // 8) + c) % 2 - 0.5)
        chans.append(v)
    x = torch.stack(chans).clamp(0, 1)[None]  # [1, 3, h, w]
    xb = (torch.roll(x, 1, 3) + x + torch.roll(x, -1, 3)) / 3
    y = torch.round(0.9 * xb * 255) / 255
    return x.float(), y.float()


def _np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, pad: int) -> np.ndarray:
    """x [C, H, W], w [O, C, k, k] -> [O, H', W'] by explicit im2col."""
    c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    cols = np.empty((c * k * k, ho * wo))
    idx = 0
    for ci in range(c):
        for dy in range(k):
            for dx in range(k):
                cols[idx] = xp[ci, dy : dy + stride * ho : stride, dx : dx + stride * wo : stride].reshape(-1)
                idx += 1
    out = w.reshape(o, -1) @ cols
    if b is not None:
        out += b[:, None]
    return out.reshape(o, ho, wo)


def _np_maxpool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    c, h, w = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    out = np.full((c, ho, wo), -np.inf)
    for dy in range(k):
        for dx in range(k):
            out = np.maximum(out, x[:, dy : dy + s * ho : s, dx : dx + s * wo : s])
    return out


def np_lpips_alex(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """LPIPS v0.1 (alex) of one pair of [3, H, W] images in [0, 1], numpy float64 only."""
    shift = np.array(LPIPS_SHIFT)[:, None, None]
    scale = np.array(LPIPS_SCALE)[:, None, None]
    convs = [(11, 4, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1)]

    def taps(img: np.ndarray) -> list[np.ndarray]:
        h = (2 * img - 1 - shift) / scale
        out = []
        for i, (_, s, p) in enumerate(convs):
            if i in (1, 2):
                h = _np_maxpool(h, 3, 2)
            h = np.maximum(_np_conv(h, params[f"features.{i}.weight"], params[f"features.{i}.bias"], s, p), 0)
            out.append(h)
        return out

    total = 0.0
    for i, (fx, fy) in enumerate(zip(taps(x), taps(y))):
        nx = fx / (np.sqrt((fx**2).sum(0, keepdims=True)) + 1e-10)
        ny = fy / (np.sqrt((fy**2).sum(0, keepdims=True)) + 1e-10)
        d = (nx - ny) ** 2  # [C, h, w]
        wl = params[f"lin.{i}.weight"].reshape(-1)  # [C]
        total += float((wl[:, None, None] * d).sum(0).mean())
    return total


def lpips_params(m: LPIPS) -> dict[str, np.ndarray]:
    out = {k.removeprefix("backbone."): v.detach().double().numpy() for k, v in m.named_parameters()}
    return out


