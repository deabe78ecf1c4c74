"""Stand-in PSNR and MS-SSIM for evaluation runs made before ``mrt.metrics`` is available.

Same definitions as the usual references, written here from the published formulas:

* PSNR over all RGB values of images in [0, 1]: ``10 log10(1 / MSE)``.
* MS-SSIM (Wang, Simoncelli, Bovik 2003): 11-tap Gaussian window (sigma 1.5), ``K1=0.01``,
  ``K2=0.03``, data range 1, 5 scales with weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333),
  2x2 average pooling between scales, contrast-structure terms of scales 1-4 and the full SSIM
  of scale 5 (negative terms clipped at 0), per channel, then the mean over RGB.

Results are recorded with the implementation name so that a later pass can recompute them with
``mrt.metrics`` when that differs.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MS_SSIM_MIN_SIDE", "ms_ssim_np", "psnr_np"]

_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN = 11
_SIGMA = 1.5
#: smallest image side for which the 5-scale MS-SSIM is defined with an 11-tap window
MS_SSIM_MIN_SIDE = (_WIN - 1) * 2 ** (len(_WEIGHTS) - 1) + 1


def psnr_np(x: np.ndarray, y: np.ndarray) -> float:
    """PSNR (dB) of two uint8 or [0, 1] float images of the same shape."""
    a = _to_unit(x)
    b = _to_unit(y)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _to_unit(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return x.astype(np.float64) / 255.0
    return x.astype(np.float64)


def _gauss() -> np.ndarray:
    t = np.arange(_WIN, dtype=np.float64) - (_WIN - 1) / 2.0
    g = np.exp(-(t**2) / (2 * _SIGMA**2))
    return g / g.sum()


def _filt(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """'valid' separable Gaussian filtering of ``[C, H, W]``."""
    from scipy.signal import convolve  # noqa: PLC0415

    out = convolve(img, g[None, :, None], mode="valid")
    return convolve(out, g[None, None, :], mode="valid")


def _ssim_cs(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean SSIM and contrast-structure of ``[C, H, W]`` images in [0, 1]."""
    c1, c2 = 0.01**2, 0.03**2
    mx, my = _filt(x, g), _filt(y, g)
    sxx = _filt(x * x, g) - mx * mx
    syy = _filt(y * y, g) - my * my
    sxy = _filt(x * y, g) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return (lum * cs).mean(axis=(1, 2)), cs.mean(axis=(1, 2))


def _pool2(x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, : 2 * h2, : 2 * w2]
    return x.reshape(c, h2, 2, w2, 2).mean(axis=(2, 4))  # [C, H/2, W/2]


def ms_ssim_np(x: np.ndarray, y: np.ndarray) -> float | None:
    """MS-SSIM of two RGB ``(H, W, 3)`` images (uint8 or [0, 1]); ``None`` if too small."""
    if min(x.shape[0], x.shape[1]) < MS_SSIM_MIN_SIDE:
        return None
    a = np.transpose(_to_unit(x), (2, 0, 1))  # [C, H, W]
    b = np.transpose(_to_unit(y), (2, 0, 1))
    g = _gauss()
    terms: list[np.ndarray] = []
    for i in range(len(_WEIGHTS)):
        ssim, cs = _ssim_cs(a, b, g)
        if i == len(_WEIGHTS) - 1:
            terms.append(np.maximum(ssim, 0.0))
        else:
            terms.append(np.maximum(cs, 0.0))
            a, b = _pool2(a), _pool2(b)
    vals = np.ones_like(terms[0])
    for t, wgt in zip(terms, _WEIGHTS, strict=True):
        vals = vals * t**wgt
    return float(vals.mean())
