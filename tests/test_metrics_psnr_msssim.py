"""PSNR and MS-SSIM against hand-computed values and an independent numpy/scipy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from mrt.metrics import ms_ssim, ms_ssim_per_image, psnr, psnr_per_image, ssim_per_image
from mrt.metrics.msssim import MS_SSIM_WEIGHTS, scales_for_size


def test_psnr_identical_is_inf() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert psnr(x, x) == math.inf
    assert torch.isinf(psnr_per_image(x, x)).all()


def test_psnr_constant_offset_known_value() -> None:
    x = torch.full((1, 3, 8, 8), 0.25, dtype=torch.float64)
    y = x + 0.1  # MSE = 0.01 -> 20 dB
    assert psnr(x, y) == pytest.approx(20.0, abs=1e-9)
    # 8-bit: offset of 5 levels -> MSE 25 -> 10 log10(255^2 / 25)
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a + 5
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-12)


def test_psnr_per_image_mse_over_all_channels() -> None:
    x = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    y = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    y[0, 0] = 0.3  # only one channel differs: MSE = 0.09 / 3 = 0.03
    y[1] = 0.1  # MSE = 0.01
    v = psnr_per_image(x, y)
    assert v[0].item() == pytest.approx(10 * math.log10(1 / 0.03), abs=1e-9)
    assert v[1].item() == pytest.approx(20.0, abs=1e-9)
    assert psnr(x, y) == pytest.approx(float(v.mean()), abs=1e-12)


def test_psnr_uint8_equals_float_on_the_8bit_grid() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (1, 3, 20, 24), dtype=np.uint8)
    b = rng.integers(0, 256, (1, 3, 20, 24), dtype=np.uint8)
    p8 = psnr(torch.from_numpy(a), torch.from_numpy(b))
    pf = psnr(torch.from_numpy(a).float() / 255, torch.from_numpy(b).float() / 255)
    assert p8 == pytest.approx(pf, abs=1e-4)
    # quantize=True snaps floats to the 8-bit grid first
    af = torch.from_numpy(a).double() / 255 + 0.4 / 255
    assert psnr(af, torch.from_numpy(b).double() / 255, quantize=True) == pytest.approx(p8, abs=1e-9)


def test_psnr_rejects_mismatch() -> None:
    with pytest.raises(ValueError):
        psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(TypeError):
        psnr(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.rand(1, 3, 8, 8))


def test_ms_ssim_identical_is_one() -> None:
    x = torch.rand(2, 3, 180, 200)
    assert ms_ssim(x, x) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_constant_images_closed_form() -> None:
    # constant images: every cs = 1 (zero variance), luminance l = (2ab + C1)/(a^2 + b^2 + C1)
    a, b = 0.3, 0.5
    x = torch.full((1, 3, 192, 192), a, dtype=torch.float64)
    y = torch.full((1, 3, 192, 192), b, dtype=torch.float64)
    c1 = (0.01 * 1.0) ** 2
    lum = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ms_ssim(x, y) == pytest.approx(lum ** MS_SSIM_WEIGHTS[-1], abs=1e-12)


def _np_gauss(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    g = np.outer(g, g)
    return g / g.sum()


def _np_msssim_channel(x: np.ndarray, y: np.ndarray, peak: float) -> float:
    """Direct transcription of Wang's msssim.m / ssim_index.m for one 2-D channel."""
    w = _np_gauss()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mcs = []
    for level in range(5):
        mx, my = correlate2d(x, w, "valid"), correlate2d(y, w, "valid")
        sxx = correlate2d(x * x, w, "valid") - mx * mx
        syy = correlate2d(y * y, w, "valid") - my * my
        sxy = correlate2d(x * y, w, "valid") - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        ssim = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
        mcs.append(ssim.mean() if level == 4 else cs.mean())
        # imfilter(ones(2)/4, 'symmetric', 'same') then (1:2:end, 1:2:end)
        xp = np.pad(x, ((0, 1), (0, 1)), mode="symmetric")
        yp = np.pad(y, ((0, 1), (0, 1)), mode="symmetric")
        x = ((xp[:-1, :-1] + xp[1:, :-1] + xp[:-1, 1:] + xp[1:, 1:]) / 4)[::2, ::2]
        y = ((yp[:-1, :-1] + yp[1:, :-1] + yp[:-1, 1:] + yp[1:, 1:]) / 4)[::2, ::2]
    return float(np.prod(np.array(mcs) ** np.array(MS_SSIM_WEIGHTS)))


@pytest.mark.parametrize("shape", [(176, 192), (181, 203)])
def test_ms_ssim_matches_numpy_reference(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    h, w = shape
    x = rng.random((3, h, w))
    # a blurred + noisy version so that cs differs from 1 at every scale
    y = np.clip(0.8 * x + 0.1 + 0.05 * rng.standard_normal((3, h, w)), 0, 1)
    want = np.mean([_np_msssim_channel(x[c], y[c], 1.0) for c in range(3)])
    got = ms_ssim(torch.from_numpy(x)[None], torch.from_numpy(y)[None])
    assert got == pytest.approx(want, abs=1e-10)


def test_ms_ssim_uint8_uses_range_255() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (192, 192, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    v8 = ms_ssim(a, b)
    vf = ms_ssim(torch.from_numpy(a).permute(2, 0, 1).double() / 255, torch.from_numpy(b).permute(2, 0, 1).double() / 255)
    assert v8 == pytest.approx(vf, abs=1e-12)


def test_ms_ssim_published_torchmetrics_example() -> None:
    # torchmetrics docstring (seed 42 set by its doctest fixture): preds = rand([3,3,256,256]),
    # target = 0.75 preds -> MS-SSIM 0.9628, SSIM 0.9219. torchmetrics pads by reflection instead of
    # valid filtering, so the MS-SSIM agrees to ~1e-4 only; SSIM agrees at the published precision.
    torch.manual_seed(42)
    p = torch.rand([3, 3, 256, 256])
    assert ms_ssim(p, p * 0.75) == pytest.approx(0.9628, abs=3e-4)
    assert float(ssim_per_image(p, p * 0.75).mean()) == pytest.approx(0.9219, abs=1e-4)


def test_ms_ssim_small_images_reduce_scales() -> None:
    assert scales_for_size(256, 256) == 5
    assert scales_for_size(161, 400) == 5
    assert scales_for_size(160, 400) == 4
    assert scales_for_size(40, 40) == 2  # 40 -> 20 -> 10 (< 11)
    assert scales_for_size(44, 44) == 3  # 44 -> 22 -> 11
    assert scales_for_size(11, 11) == 1
    for size in [(1, 1), (7, 9), (17, 33), (64, 64)]:
        x = torch.rand(1, 3, *size)
        assert ms_ssim(x, x) == pytest.approx(1.0, abs=1e-9)
        v = ms_ssim(x, (x + 0.2 * torch.rand_like(x)).clamp(0, 1))
        assert 0.0 <= v < 1.0


def test_ms_ssim_monotone_in_noise() -> None:
    torch.manual_seed(3)
    x = torch.rand(1, 3, 192, 192)
    n = torch.randn_like(x)
    vals = [float(ms_ssim_per_image(x, (x + s * n).clamp(0, 1))[0]) for s in (0.01, 0.05, 0.2)]
    assert vals[0] > vals[1] > vals[2]
