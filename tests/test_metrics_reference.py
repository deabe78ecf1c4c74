"""Real metric weights against published reference values (marker ``weights``).

Skipped with a reason when the cache lacks the weights (``python -m mrt.metrics.weights fetch``).

Published values used (all from torchmetrics docstrings, whose doctests run with the seed set
in the example, or 42 by its doctest fixture):

* LPIPS-vgg, ``manual_seed(123)``, ``LearnedPerceptualImagePatchSimilarity(net_type='vgg')`` built
  *before* drawing ``img1 = rand(10,3,100,100)*2-1``, ``img2`` likewise: 0.3493; the older
  example with ``img = rand(10,3,100,100)`` fed directly as [-1,1] data: 0.3566. Building the
  lpips/torchvision VGG16 consumes the global RNG first; we replay that consumption (same layer
  shapes, same init order) so the images are the same.
* DISTS, seed 42, ``preds = rand(5,3,256,256)``, ``target = rand(5,3,256,256)``:
  ``[0.1285, 0.1344, 0.1356, 0.1277, 0.1276]``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _metrics_helpers import lpips_params, np_lpips_alex, synthetic_pair
from torch import nn

from mrt.metrics import DISTS, LPIPS, FIDFeatureExtractor, fid_from_features, ms_ssim, psnr, weights_available
from mrt.metrics import weights as W

pytestmark = [
    pytest.mark.weights,
    pytest.mark.skipif(
        not weights_available(),
        reason=f"metric weights not in {W.metrics_dir()}; run `python -m mrt.metrics.weights fetch`",
    ),
]


@pytest.fixture(scope="module")
def alex() -> LPIPS:
    return LPIPS("alex")


@pytest.fixture(scope="module")
def vgg() -> LPIPS:
    return LPIPS("vgg")


@pytest.fixture(scope="module")
def dists() -> DISTS:
    return DISTS()


def test_cached_files_match_pinned_hashes() -> None:
    for key in W.CACHE_FILES:
        W.weight_path(key, verify=True)


def _replay_lpips_vgg_init_rng() -> None:
    """Consume the global RNG like constructing lpips.LPIPS(net='vgg') does (torchvision VGG16
    default layer init with init_weights=False, then five 1x1 heads)."""
    c = 3
    for v in (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512):
        nn.Conv2d(c, v, 3, padding=1)
        c = v
    nn.Linear(512 * 7 * 7, 4096)
    nn.Linear(4096, 4096)
    nn.Linear(4096, 1000)
    for ch in (64, 128, 256, 512, 512):
        nn.Conv2d(ch, 1, 1, bias=False)


@pytest.mark.parametrize("pm1, published", [(True, 0.3493), (False, 0.3566)])
def test_lpips_vgg_published_values(vgg: LPIPS, pm1: bool, published: float) -> None:
    torch.manual_seed(123)
    _replay_lpips_vgg_init_rng()
    a, b = torch.rand(10, 3, 100, 100), torch.rand(10, 3, 100, 100)
    if pm1:
        a, b = a * 2 - 1, b * 2 - 1
    with torch.no_grad():
        got = vgg((a + 1) / 2, (b + 1) / 2).mean().item()  # [-1, 1] data -> our [0, 1] inputs
    assert got == pytest.approx(published, abs=6e-5)


def test_dists_published_values(dists: DISTS) -> None:
    torch.manual_seed(42)
    p, t = torch.rand(5, 3, 256, 256), torch.rand(5, 3, 256, 256)
    with torch.no_grad():
        got = dists(p[:3], t[:3])  # per-image values: the first three of the five published
    want = torch.tensor([0.1285, 0.1344, 0.1356])
    assert torch.allclose(got, want, atol=6e-5), got


def test_lpips_alex_matches_numpy_forward_with_real_weights(alex: LPIPS) -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.rand(1, 3, 64, 64, generator=g)
    y = (x + 0.1 * torch.randn(1, 3, 64, 64, generator=g)).clamp(0, 1)
    with torch.no_grad():
        got = alex(x, y).item()
    want = np_lpips_alex(lpips_params(alex), x[0].double().numpy(), y[0].double().numpy())
    assert got == pytest.approx(want, abs=1e-5)
    # the LPIPS v0.1 heads are non-negative (as trained)
    assert all((lin.weight >= 0).all() for lin in alex.lin)


def test_invariants_and_ordering(alex: LPIPS, vgg: LPIPS, dists: DISTS) -> None:
    g = torch.Generator().manual_seed(8)
    x = torch.rand(2, 3, 96, 96, generator=g)
    n = torch.randn(2, 3, 96, 96, generator=g)
    with torch.no_grad():
        for m in (alex, vgg, dists):
            assert m(x, x).abs().max() < 1e-5
            vals = [m(x, (x + s * n).clamp(0, 1)).mean().item() for s in (0.02, 0.08, 0.3)]
            assert vals[0] < vals[1] < vals[2]
        noisy = (x + 0.3 * n).clamp(0, 1)
        assert (vgg(x, noisy) > alex(x, noisy)).all()  # VGG distances run larger than AlexNet's


def test_synthetic_pair_recorded_values(alex: LPIPS, vgg: LPIPS, dists: DISTS) -> None:
    """Regression pins of the values recorded in docs/metrics.md."""
    x, y = synthetic_pair()
    assert psnr(x, y) == pytest.approx(24.4976, abs=1e-3)
    assert ms_ssim(x, y) == pytest.approx(0.97842, abs=1e-4)
    with torch.no_grad():
        assert alex(x, y).item() == pytest.approx(0.007074, abs=2e-5)
        assert vgg(x, y).item() == pytest.approx(0.010552, abs=2e-5)
        assert dists(x, y).item() == pytest.approx(0.034982, abs=2e-5)


def test_losses_backprop_with_real_weights(alex: LPIPS, dists: DISTS) -> None:
    x = torch.rand(1, 3, 64, 64)
    for m in (alex, dists):
        y = x.clone().requires_grad_(True)  # gradient at the identity must be finite
        m(x, y).sum().backward()
        assert y.grad is not None and torch.isfinite(y.grad).all()
        z = torch.rand(1, 3, 64, 64, requires_grad=True)
        m(x, z).sum().backward()
        assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_fid_inception_features() -> None:
    ex = FIDFeatureExtractor(batch_size=2)
    x, y = synthetic_pair()
    f = ex(torch.cat([x, y]))
    assert f.shape == (2, 2048) and (f >= 0).all()  # average-pooled ReLU outputs
    assert f.mean(1) == pytest.approx([0.148404, 0.148767], abs=1e-4)
    assert np.linalg.norm(f, axis=1) == pytest.approx([17.8510, 18.2844], abs=2e-3)
    g = np.concatenate([f, f + 1e-3])
    assert abs(fid_from_features(g, g)) < 1e-4  # N < D: singular covariances, handled
