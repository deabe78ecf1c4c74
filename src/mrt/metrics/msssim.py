"""MS-SSIM (Wang, Simoncelli, Bovik 2003), computed per RGB channel and averaged.

Definition followed (the authors' ``msssim.m`` / ``ssim_index.m``):

* 11x11 Gaussian window, sigma 1.5 (normalised), *valid* filtering (no padding);
  ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` with ``L`` the data range (1, or 255 for uint8);
* 5 scales with exponents ``[0.0448, 0.2856, 0.3001, 0.2363, 0.1333]``: the spatial mean of
  the contrast-structure map ``cs`` at scales 1..4 and of the full SSIM map at scale 5,
  ``MS-SSIM = prod_j cs_j^w_j * ssim_5^w_5``;
* between scales a 2x2 box filter with symmetric extension at the bottom/right edge, then
  keep every second pixel (identical to 2x2 average pooling for even sizes; an odd size keeps
  its last row/column, averaged with its mirror, i.e. unchanged);
* computed per channel of the RGB image then averaged over the 3 channels (common practice in
  learned image compression; the original works on grayscale);
* negative ``cs``/``ssim`` means (possible only for anti-correlated images) are clamped to 0
  before the power, as in the widely used PyTorch ports, so the result is real and in [0, 1].

Small images: scale ``j`` needs its smaller side to be >= 11 pixels for valid filtering. When
the image is too small for 5 scales (smaller side < 161 px: ceil(side / 16) must reach 11),
the number of scales is reduced to the largest that fits and the exponents of the kept scales
are rescaled to the total of the full set (1.0001) (the last kept scale then uses the full SSIM). Below 11 px the
window is shrunk to the largest odd size that fits (same sigma, renormalised). These rules are
an extension: published MS-SSIM values are for images of at least 161 px.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mrt.metrics.psnr import _prepare

__all__ = ["MS_SSIM_WEIGHTS", "ms_ssim", "ms_ssim_per_image", "scales_for_size", "ssim_per_image"]

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN = 11
_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03


def _gaussian(size: int, sigma: float, dtype: torch.dtype) -> Tensor:
    """1-D normalised Gaussian of odd ``size``."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def _filter_valid(x: Tensor, g: Tensor) -> Tensor:
    """Separable valid filtering of ``[N, 1, H, W]`` by the 1-D window ``g`` in both axes."""
    k = g.numel()
    x = F.conv2d(x, g.view(1, 1, k, 1))
    return F.conv2d(x, g.view(1, 1, 1, k))


def _ssim_cs(x: Tensor, y: Tensor, g: Tensor, c1: float, c2: float) -> tuple[Tensor, Tensor]:
    """Spatial means of the SSIM and cs maps for ``[N, 1, H, W]`` inputs -> ``([N], [N])``."""
    stack = torch.cat([x, y, x * x, y * y, x * y], 0)  # [5N, 1, H, W]
    mu_x, mu_y, exx, eyy, exy = _filter_valid(stack, g).chunk(5, 0)
    vx = exx - mu_x**2
    vy = eyy - mu_y**2
    cov = exy - mu_x * mu_y
    cs = (2 * cov + c2) / (vx + vy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (lum * cs).mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def _downsample(x: Tensor) -> Tensor:
    """2x2 box filter (symmetric extension at bottom/right for odd sizes), keep every 2nd pixel."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


def scales_for_size(h: int, w: int, max_scales: int = 5) -> int:
    """Number of scales used for an ``h x w`` image (see module docstring), at least 1."""
    n = 1
    while n < max_scales:
        hs, ws = h, w
        for _ in range(n):  # size at scale n (0-based)
            hs, ws = (hs + 1) // 2, (ws + 1) // 2
        if min(hs, ws) < _WIN:
            break
        n += 1
    return n


def ms_ssim_per_image(
    x: Tensor | np.ndarray,
    y: Tensor | np.ndarray,
    data_range: float | None = None,
    quantize: bool = False,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
) -> Tensor:
    """MS-SSIM of each image pair, ``[B]`` float64 in [0, 1] (1 for identical images).

    Args:
        x, y: ``[B,3,H,W]`` (or one ``[3,H,W]`` / ``(H,W,3)`` image), float in [0, 1] or uint8.
        data_range: ``L`` in the constants; default 1.0 for float, 255 for uint8 input.
        quantize: round float inputs to 8 bits first.
        weights: per-scale exponents (default the 5 of Wang et al.).
    """
    xt, yt, peak = _prepare(x, y, data_range, quantize)
    b, c, h, w = xt.shape
    n_scales = scales_for_size(h, w, len(weights))
    wts = torch.tensor(weights[:n_scales], dtype=torch.float64)
    if n_scales < len(weights):  # fewer scales: rescale the kept exponents to the full total
        wts = wts * (sum(weights) / float(wts.sum()))
    win = min(_WIN, min(h, w) if min(h, w) % 2 else min(h, w) - 1)
    g = _gaussian(max(win, 1), _SIGMA, xt.dtype)
    c1, c2 = (_K1 * peak) ** 2, (_K2 * peak) ** 2
    xs = xt.reshape(b * c, 1, h, w)  # channels folded into the batch: [B*3, 1, H, W]
    ys = yt.reshape(b * c, 1, h, w)
    vals = []
    for j in range(n_scales):
        ssim_j, cs_j = _ssim_cs(xs, ys, g, c1, c2)
        vals.append((ssim_j if j == n_scales - 1 else cs_j).clamp_min(0.0))
        if j < n_scales - 1:
            xs, ys = _downsample(xs), _downsample(ys)
    stacked = torch.stack(vals, 1)  # [B*3, n_scales]
    per_channel = torch.prod(stacked ** wts.to(stacked.dtype), dim=1)  # [B*3]
    return per_channel.reshape(b, c).mean(1)


def ssim_per_image(
    x: Tensor | np.ndarray, y: Tensor | np.ndarray, data_range: float | None = None, quantize: bool = False
) -> Tensor:
    """Single-scale SSIM (same window/constants, valid filtering, RGB mean), ``[B]``."""
    return ms_ssim_per_image(x, y, data_range, quantize, weights=(1.0,))


def ms_ssim(
    x: Tensor | np.ndarray, y: Tensor | np.ndarray, data_range: float | None = None, quantize: bool = False
) -> float:
    """Mean over the batch of ``ms_ssim_per_image``."""
    v = float(ms_ssim_per_image(x, y, data_range, quantize).mean())
    return v if math.isfinite(v) else float("nan")
