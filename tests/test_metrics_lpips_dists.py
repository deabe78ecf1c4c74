"""LPIPS and DISTS with random (fake) backbones: invariants, loss usability, and an
independent numpy-only forward of LPIPS-alex. The real weights are checked in
``test_metrics_reference.py`` (marker ``weights``)."""

from __future__ import annotations

import pytest
import torch
from _metrics_helpers import lpips_params, np_lpips_alex
from torch import nn

from mrt.metrics import DISTS, LPIPS


@pytest.fixture(scope="module")
def alex() -> LPIPS:
    return LPIPS.from_random_weights("alex", seed=0)


@pytest.fixture(scope="module")
def vgg() -> LPIPS:
    return LPIPS.from_random_weights("vgg", seed=0)


@pytest.fixture(scope="module")
def dists() -> DISTS:
    return DISTS.from_random_weights(seed=0)


def test_lpips_alex_matches_numpy_reference(alex: LPIPS) -> None:
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, 64, 64, generator=g)
    y = (x + 0.2 * torch.randn(2, 3, 64, 64, generator=g)).clamp(0, 1)
    got = alex(x, y)
    params = lpips_params(alex)
    for i in range(2):
        want = np_lpips_alex(params, x[i].double().numpy(), y[i].double().numpy())
        assert got[i].item() == pytest.approx(want, abs=1e-5, rel=1e-5)


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize("name", ["alex", "vgg", "dists"])
def test_identity_symmetry_shape(name: str, alex: LPIPS, vgg: LPIPS, dists: DISTS) -> None:
    m = {"alex": alex, "vgg": vgg, "dists": dists}[name]
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 48, 40, generator=g)
    y = torch.rand(3, 3, 48, 40, generator=g)
    with torch.no_grad():
        d_xy, d_yx, d_xx = m(x, y), m(y, x), m(x, x)
    assert d_xy.shape == (3,)
    assert torch.allclose(d_xy, d_yx, atol=1e-6)
    assert d_xx.abs().max() < 1e-5
    assert (d_xy > d_xx).all()


@pytest.mark.parametrize("name", ["alex", "vgg", "dists"])
def test_monotone_under_increasing_noise(name: str, alex: LPIPS, vgg: LPIPS, dists: DISTS) -> None:
    m = {"alex": alex, "vgg": vgg, "dists": dists}[name]
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 64, 64, generator=g)
    n = torch.randn(1, 3, 64, 64, generator=g)
    with torch.no_grad():
        vals = [m(x, (x + s * n).clamp(0, 1)).item() for s in (0.02, 0.1, 0.4)]
    assert vals[0] < vals[1] < vals[2]


def test_batch_items_independent(alex: LPIPS, dists: DISTS) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 3, 64, 64, generator=g)
    y = torch.rand(3, 3, 64, 64, generator=g)
    with torch.no_grad():
        for m in (alex, dists):
            full = m(x, y)
            single = torch.cat([m(x[i : i + 1], y[i : i + 1]) for i in range(3)])
            assert torch.allclose(full, single, atol=1e-6)


def test_layer_distances_sum(vgg: LPIPS) -> None:
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        parts = vgg.layer_distances(x, y)
        assert len(parts) == 5
        assert torch.allclose(torch.stack(parts).sum(0), vgg(x, y), atol=1e-6)


def test_input_validation(alex: LPIPS) -> None:
    with pytest.raises(ValueError):
        alex(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 60))
    with pytest.raises(ValueError):
        alex(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError):
        alex(torch.rand(1, 3, 30, 30), torch.rand(1, 3, 30, 30))  # below AlexNet's minimum (31)
    with torch.no_grad():
        assert alex(torch.rand(1, 3, 31, 31), torch.rand(1, 3, 31, 31)).shape == (1,)
    with pytest.raises(ValueError):
        LPIPS("squeeze", pretrained=False)


# ---------------------------------------------------------------- loss usability


@pytest.mark.parametrize("name", ["alex", "dists"])
def test_usable_as_training_loss(name: str, alex: LPIPS, dists: DISTS) -> None:
    metric = {"alex": alex, "dists": dists}[name]

    class Task(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Conv2d(3, 3, 3, padding=1)
            self.loss = metric

    task = Task()
    task.train()
    assert not metric.training  # stays in eval mode
    assert all(not p.requires_grad for p in metric.parameters())
    x = torch.rand(2, 3, 40, 40)
    out = torch.sigmoid(task.net(x))
    loss = task.loss(out, x).mean()
    loss.backward()
    assert task.net.weight.grad is not None and task.net.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in metric.parameters())
    # frozen metric weights are left out of the task's checkpoint, and a strict load works
    sd = task.state_dict()
    assert set(sd) == {"net.weight", "net.bias"}
    before = [p.clone() for p in metric.parameters()]
    task.load_state_dict(sd, strict=True)
    assert all(torch.equal(a, b) for a, b in zip(before, metric.parameters()))
    # the trainable-parameter list (what an optimizer/EMA sees) excludes the metric
    assert [n for n, p in task.named_parameters() if p.requires_grad] == ["net.weight", "net.bias"]


def test_input_gradient_finite_at_identity(alex: LPIPS, dists: DISTS) -> None:
    # x == y is where a loss sits at convergence: gradients must be finite (not NaN)
    for m in (alex, dists):
        x = torch.rand(1, 3, 40, 40)
        y = x.clone().requires_grad_(True)
        m(x, y).sum().backward()
        assert y.grad is not None and torch.isfinite(y.grad).all()


def test_missing_weights_raise_clear_error(tmp_path) -> None:
    from mrt.metrics import WeightsError

    with pytest.raises(WeightsError, match="fetch"):
        LPIPS("alex", weights_root=tmp_path)
    with pytest.raises(WeightsError, match="fetch"):
        DISTS(weights_root=tmp_path)


@pytest.mark.parametrize("name", ["alex", "dists"])
def test_one_sided_grad_path_matches_batched_path(name: str, alex: LPIPS, dists: DISTS) -> None:
    # only the prediction needs a graph: the target is computed separately without one
    m = {"alex": alex, "dists": dists}[name]
    g = torch.Generator().manual_seed(9)
    x, y = torch.rand(2, 3, 40, 40, generator=g), torch.rand(2, 3, 40, 40, generator=g)
    with torch.no_grad():
        ref = m(x, y)
    p1 = y.clone().requires_grad_(True)
    v1 = m(x, p1)
    v1.sum().backward()
    p2 = y.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)  # both need grads -> one concatenated pass
    v2 = m(x2, p2)
    v2.sum().backward()
    assert torch.allclose(v1, ref, atol=1e-6) and torch.allclose(v2, ref, atol=1e-6)
    assert p1.grad is not None and p2.grad is not None
    assert torch.allclose(p1.grad, p2.grad, atol=1e-6, rtol=1e-4)
