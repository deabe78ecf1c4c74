"""FID/KID math against closed forms, the TF bilinear resize, the patch protocol, and the
extractor's batching with a tiny fake network."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from mrt.metrics import FIDFeatureExtractor, extract_patches, fid_from_features, fid_from_stats, kid_from_features
from mrt.metrics.fid import tf_bilinear_resize


def test_fid_of_identical_sets_is_zero() -> None:
    f = np.random.default_rng(0).standard_normal((500, 16))
    assert abs(fid_from_features(f, f)) < 1e-8
    assert abs(fid_from_features(torch.from_numpy(f), f)) < 1e-8


def test_fid_gaussian_closed_form() -> None:
    rng = np.random.default_rng(1)
    d = 6
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    a, b = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    # closed form with the symmetric sqrt: tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)
    r1 = scipy.linalg.sqrtm(s1).real
    want = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(r1 @ s2 @ r1).real))
    assert fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-9)
    # diagonal covariances: sum (mu diff)^2 + sum (sqrt(s1) - sqrt(s2))^2
    v1, v2 = rng.random(d) + 0.5, rng.random(d) + 0.5
    want_diag = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2))
    assert fid_from_stats(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(want_diag, rel=1e-10)


def test_fid_from_samples_approaches_closed_form() -> None:
    rng = np.random.default_rng(2)
    n, d = 20000, 4
    f1 = rng.standard_normal((n, d))
    f2 = rng.standard_normal((n, d)) * 2.0 + 1.0  # N(1, 4 I)
    want = d * 1.0 + d * (1.0 - 2.0) ** 2  # |mu|^2 + sum (1 - 2)^2
    assert fid_from_features(f1, f2) == pytest.approx(want, rel=0.03)


def test_fid_singular_covariances_are_handled() -> None:
    rng = np.random.default_rng(3)
    f1 = rng.standard_normal((10, 32))  # fewer samples than dimensions: singular covariances
    f2 = rng.standard_normal((10, 32)) + 0.5
    v = fid_from_features(f1, f2)
    assert np.isfinite(v) and v > 0


def _np_kid_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m, d = x.shape
    k = lambda a, b: (a @ b.T / d + 1) ** 3
    tot = 0.0
    for i in range(m):
        for j in range(m):
            if i != j:
                tot += (k(x[i : i + 1], x[j : j + 1]) + k(y[i : i + 1], y[j : j + 1]))[0, 0] / (m * (m - 1))
            tot -= 2 * k(x[i : i + 1], y[j : j + 1])[0, 0] / (m * m)
    return float(tot)


def test_kid_matches_direct_formula_and_is_near_zero_for_same_distribution() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((12, 5)), rng.standard_normal((12, 5)) + 0.3
    res = kid_from_features(x, y, subsets=1, subset_size=12)
    assert res.subset_size == 12
    assert res.mean == pytest.approx(_np_kid_unbiased(x, y), rel=1e-10)
    assert res.std == 0.0
    same = kid_from_features(rng.standard_normal((400, 8)), rng.standard_normal((400, 8)), subsets=20, subset_size=100)
    far = kid_from_features(rng.standard_normal((400, 8)), rng.standard_normal((400, 8)) + 1, subsets=20, subset_size=100)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert far.mean > 10 * abs(same.mean)


def test_tf_bilinear_resize_rule() -> None:
    # legacy TF: out[i] = in[i * n_in / n_out] linearly interpolated, clamped at the end
    x = torch.arange(4, dtype=torch.float64).view(1, 1, 1, 4).expand(1, 1, 2, 4)
    up = tf_bilinear_resize(x, (2, 8))
    assert up[0, 0, 0].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]
    down = tf_bilinear_resize(x, (2, 2))
    assert down[0, 0, 0].tolist() == [0.0, 2.0]
    same = torch.rand(1, 3, 299, 299)
    assert torch.equal(tf_bilinear_resize(same, (299, 299)), same)


def test_extract_patches_grid_and_shifted() -> None:
    img = torch.arange(2 * 3 * 256 * 192, dtype=torch.float32).view(2, 3, 256, 192)
    p = extract_patches(img, patch=64, shifted=False)
    assert p.shape == (2 * 4 * 3, 3, 64, 64)
    assert torch.equal(p[0], img[0, :, :64, :64])
    assert torch.equal(p[1], img[0, :, :64, 64:128])  # row-major
    assert torch.equal(p[3], img[0, :, 64:128, :64])
    q = extract_patches(img, patch=64, shifted=True)
    # shifted grid starts at (32, 32): floor((256-32)/64) x floor((192-32)/64) = 3 x 2 per image
    assert q.shape == (24 + 2 * 6, 3, 64, 64)
    assert torch.equal(q[24], img[0, :, 32:96, 32:96])
    # HWC uint8 image, and an image smaller than a patch
    a = np.zeros((100, 130, 3), np.uint8)
    assert extract_patches(a, 64).shape == (2 + 1, 3, 64, 64)
    assert extract_patches(torch.rand(3, 40, 40), 64).shape == (0, 3, 64, 64)


class _TinyInception(nn.Module):
    """Fake feature net: mean colour and a 2x2 average of the input -> [b, 15]."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        pooled = nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)  # [b, 12]
        return torch.cat([x.mean((2, 3)), pooled], 1)


def test_extractor_batches_resizes_and_scales() -> None:
    net = _TinyInception()
    ex = FIDFeatureExtractor.from_module(net, batch_size=4)
    imgs = torch.rand(10, 3, 64, 48)
    feats = ex(imgs)
    assert feats.shape == (10, 15) and feats.dtype == np.float64
    assert net.calls == [(4, 3, 299, 299), (4, 3, 299, 299), (2, 3, 299, 299)]
    # input scaling: 0 -> -1, 1 -> 127/128; 8-bit quantisation of float input
    lo = ex.preprocess(torch.zeros(1, 3, 8, 8))
    hi = ex.preprocess(torch.ones(1, 3, 8, 8))
    assert torch.all(lo == -1.0) and torch.all(hi == 127 / 128)
    x = torch.rand(1, 3, 20, 20)
    u8 = torch.round(x * 255).to(torch.uint8)
    assert torch.equal(ex.preprocess(x), ex.preprocess(u8))
    # batch split does not change features
    assert np.allclose(FIDFeatureExtractor.from_module(_TinyInception(), batch_size=10)(imgs), feats)


def test_extractor_missing_weights_error(tmp_path) -> None:
    from mrt.metrics import WeightsError

    with pytest.raises(WeightsError, match="fetch"):
        FIDFeatureExtractor(weights_root=tmp_path)
