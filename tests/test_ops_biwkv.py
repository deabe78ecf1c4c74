"""Bi-WKV: linear-time form vs exact reference (values and gradients), stability, long sequences."""

from __future__ import annotations

import pytest
import torch

from mrt.ops.biwkv import DEFAULT_CHUNK_SIZE, _biwkv, biwkv, biwkv_reference

F64 = torch.float64


def _inputs(b: int, t: int, c: int, seed: int, k_scale: float = 20.0, w_scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(b, t, c, generator=g, dtype=F64) * k_scale
    v = torch.randn(b, t, c, generator=g, dtype=F64)
    # decays in [-2, 10] (raw, divided by T inside) incl. 0 and negative values
    w = (torch.linspace(-2.0, 10.0, c, dtype=F64) * w_scale).contiguous()
    u = torch.randn(c, generator=g, dtype=F64) * 3.0
    return w, u, k, v


def _grads(fn, w, u, k, v, gout):
    leaves = [x.detach().clone().requires_grad_(True) for x in (w, u, k, v)]
    out = fn(*leaves)
    grads = torch.autograd.grad((out * gout).sum(), leaves, allow_unused=True, materialize_grads=True)
    return out.detach(), grads


CASES = [
    # (T, B, C, chunk sizes)
    (1, 2, 3, [1, 4]),
    (2, 2, 3, [1, 2, 5]),
    (3, 2, 3, [2, 64]),
    (7, 2, 4, [3, 7, 16]),
    (64, 2, 4, [8, 64]),
    (65, 2, 4, [8, 64]),
    (257, 1, 4, [16, 64]),
    (1000, 1, 3, [64, 48]),
    (2500, 1, 2, [DEFAULT_CHUNK_SIZE, 100]),
]


@pytest.mark.parametrize("t,b,c,chunks", CASES, ids=[f"T{x[0]}" for x in CASES])
def test_matches_reference_values_and_grads(t: int, b: int, c: int, chunks: list[int]) -> None:
    w, u, k, v = _inputs(b, t, c, seed=t)
    gout = torch.randn(b, t, c, generator=torch.Generator().manual_seed(1), dtype=F64)
    ref, ref_g = _grads(biwkv_reference, w, u, k, v, gout)
    assert torch.isfinite(ref).all()
    for cs in chunks:
        for fused in (True, False):  # fast fused path and any-range general path
            out, g = _grads(lambda *a: _biwkv(*a, cs, fused), w, u, k, v, gout)
            assert out.dtype == F64
            torch.testing.assert_close(out, ref, rtol=1e-8, atol=1e-8)
            for name, a, r in zip("wukv", g, ref_g):
                msg = f"grad {name} T={t} chunk={cs} fused={fused}"
                torch.testing.assert_close(a, r, rtol=1e-8, atol=1e-8, msg=msg)


@pytest.mark.parametrize("w_scale", [-3.0, 0.0, 1.0, 40.0])
def test_extreme_decays(w_scale: float) -> None:
    """Strong growth/decay (|w|/T large) and large |u|/T: general path, small chunks, per-token loop."""
    t = 40
    w, u, k, v = _inputs(1, t, 3, seed=7, k_scale=5.0, w_scale=w_scale)
    w = w * t / 10  # |w|/T up to 4*|w_scale|
    u = u * t  # |u|/T of a few units up to ~10
    gout = torch.randn(1, t, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    ref, ref_g = _grads(biwkv_reference, w, u, k, v, gout)
    out, g = _grads(biwkv, w, u, k, v, gout)
    torch.testing.assert_close(out, ref, rtol=1e-8, atol=1e-8)
    for a, r in zip(g, ref_g):
        torch.testing.assert_close(a, r, rtol=1e-7, atol=1e-8)


def test_fp32_close_to_fp64_and_dtype() -> None:
    w, u, k, v = _inputs(2, 300, 8, seed=3, k_scale=5.0)
    ref = biwkv(w, u, k, v)
    out32 = biwkv(w.float(), u.float(), k.float(), v.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), ref, rtol=1e-4, atol=1e-5)
    out16 = biwkv(w.float(), u.float(), k.bfloat16(), v.bfloat16())
    assert out16.dtype == torch.bfloat16


def test_autocast_bf16_computes_in_fp32() -> None:
    w, u, k, v = (x.float() for x in _inputs(1, 100, 4, seed=4, k_scale=3.0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = biwkv(w, u, k, v)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, biwkv(w, u, k, v), rtol=0, atol=0)


def test_long_sequence_40k_fp32() -> None:
    t, c = 40_000, 64
    g = torch.Generator().manual_seed(5)
    k = torch.randn(1, t, c, generator=g) * 3.0
    v = torch.randn(1, t, c, generator=g)
    w = torch.linspace(-5.0, 8.0, c)
    u = torch.randn(c, generator=g)
    out = biwkv(w, u, k, v)
    assert out.shape == (1, t, c) and torch.isfinite(out).all()
    ref = biwkv(w.double(), u.double(), k.double(), v.double())
    idx = torch.tensor([0, 1, 63, 64, 12_345, 39_998, 39_999])
    torch.testing.assert_close(out[:, idx].double(), ref[:, idx], rtol=1e-4, atol=1e-5)


def test_shape_errors() -> None:
    k = torch.randn(1, 5, 3)
    with pytest.raises(ValueError):
        biwkv(torch.zeros(4), torch.zeros(3), k, k)
    with pytest.raises(ValueError):
        biwkv(torch.zeros(3), torch.zeros(3), k, torch.randn(1, 5, 4))
    with pytest.raises(ValueError):
        biwkv(torch.zeros(3), torch.zeros(3), k, k, chunk_size=0)


def test_bounded_flag_and_default_chunk() -> None:
    """``bounded=True`` (no host sync) gives the same result as the auto-selected path."""
    w, u, k, v = _inputs(2, 150, 5, seed=9, k_scale=4.0)
    ref = biwkv_reference(w, u, k, v)
    torch.testing.assert_close(biwkv(w, u, k, v, bounded=True), ref, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(biwkv(w, u, k, v), ref, rtol=1e-9, atol=1e-10)
    assert DEFAULT_CHUNK_SIZE in (16, 32, 64, 128)
