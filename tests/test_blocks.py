"""Building blocks: BiRWKVBlock, ViTBlock, MLP, LFQ."""

from __future__ import annotations

import pytest
import torch

from mrt.blocks.lfq import LFQ, LFQOutput, bits_to_int, bits_to_quantized, int_to_bits
from mrt.blocks.mlp import MLP
from mrt.blocks.rwkv import BiRWKVBlock, token_shift
from mrt.blocks.vit import ViTBlock


def _perturb(module: torch.nn.Module, seed: int = 0) -> None:
    """Move every parameter off its init so that no gradient is structurally zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)


# ---------------------------------------------------------------- Bi-RWKV


def test_rwkv_shapes_and_gradients() -> None:
    torch.manual_seed(0)
    blk = BiRWKVBlock(dim=16, layer_id=1, n_layers=3)
    x = torch.randn(2, 37, 16, requires_grad=True)
    y = blk(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in blk.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_rwkv_starts_near_identity() -> None:
    torch.manual_seed(0)
    blk = BiRWKVBlock(dim=64, layer_id=0, n_layers=12)
    x = torch.randn(2, 50, 64)
    rel = (blk(x) - x).norm() / x.norm()
    assert rel < 0.05


def test_rwkv_chunked_equals_reference() -> None:
    torch.manual_seed(0)
    blk = BiRWKVBlock(dim=12, layer_id=2, n_layers=4, chunk_size=8).double()
    _perturb(blk)
    x = torch.randn(2, 45, 12, dtype=torch.float64, requires_grad=True)
    y = blk(x)
    gy = torch.randn_like(y)
    gx, gw = torch.autograd.grad((y * gy).sum(), (x, blk.att.decay))
    blk.wkv_impl = "reference"
    y_ref = blk(x)
    gx_ref, gw_ref = torch.autograd.grad((y_ref * gy).sum(), (x, blk.att.decay))
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-8, atol=1e-10)


def test_rwkv_is_bidirectional() -> None:
    torch.manual_seed(0)
    blk = BiRWKVBlock(dim=8, layer_id=0, n_layers=2)
    _perturb(blk)
    x = torch.randn(1, 20, 8, requires_grad=True)
    y = blk(x)
    (gx,) = torch.autograd.grad(y[0, 10].sum(), x)
    assert gx[0, :10].abs().sum() > 0 and gx[0, 11:].abs().sum() > 0


def test_rwkv_bf16_autocast_and_determinism() -> None:
    torch.manual_seed(0)
    blk = BiRWKVBlock(dim=16, layer_id=0, n_layers=1)
    x = torch.randn(2, 30, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = blk(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), blk(x), rtol=0.05, atol=0.05)
    torch.testing.assert_close(blk(x), blk(x), rtol=0, atol=0)


def test_token_shift() -> None:
    x = torch.arange(1, 7, dtype=torch.float32).view(1, 3, 2).repeat(1, 1, 1)  # [1, 3, 2]
    s = token_shift(x)
    # channel 0 (even) sees t-1, channel 1 (odd) sees t+1, zeros at the ends
    assert s[0, :, 0].tolist() == [0.0, 1.0, 3.0]
    assert s[0, :, 1].tolist() == [4.0, 6.0, 0.0]


def test_rwkv_bad_args() -> None:
    with pytest.raises(ValueError):
        BiRWKVBlock(8, layer_id=3, n_layers=3)
    with pytest.raises(ValueError):
        BiRWKVBlock(8, 0, 1, wkv_impl="cuda")  # type: ignore[arg-type]


# ---------------------------------------------------------------- ViT / MLP


def test_vit_shapes_gradients_and_mask() -> None:
    torch.manual_seed(0)
    blk = ViTBlock(dim=32, heads=4)
    x = torch.randn(3, 11, 32, requires_grad=True)
    y = blk(x)
    assert y.shape == x.shape
    y.sum().backward()
    for name, p in blk.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    mask = torch.ones(11, 11, dtype=torch.bool)
    torch.testing.assert_close(blk(x, attn_mask=mask), y)
    with pytest.raises(ValueError):
        ViTBlock(dim=30, heads=4)


def test_vit_permutation_equivariant_and_deterministic() -> None:
    torch.manual_seed(0)
    blk = ViTBlock(dim=24, heads=3, mlp_ratio=2.0)
    _perturb(blk)
    x = torch.randn(2, 17, 24)
    perm = torch.randperm(17)
    torch.testing.assert_close(blk(x)[:, perm], blk(x[:, perm]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(blk(x), blk(x), rtol=0, atol=0)


def test_mlp() -> None:
    m = MLP(5, 7)
    assert m.fc1.out_features == 14
    assert m(torch.randn(2, 3, 5)).shape == (2, 3, 7)
    assert MLP(4, 2, hidden=3).fc1.out_features == 3


# ---------------------------------------------------------------- LFQ


def test_lfq_sign_bits_and_ste() -> None:
    lfq = LFQ(bits=4)
    z = torch.tensor([[-1.5, 0.0, 0.3, -0.0], [2.0, -0.1, 1e-6, -3.0]], requires_grad=True)
    out = lfq(z)
    assert isinstance(out, LFQOutput)
    assert out.quantized.tolist() == [[-1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0]]
    assert out.bits.dtype == torch.int64
    assert out.bits.tolist() == [[0, 1, 1, 1], [1, 0, 1, 0]]
    g = torch.randn(2, 4)
    (gz,) = torch.autograd.grad((out.quantized * g).sum(), z)
    torch.testing.assert_close(gz, g)  # straight-through: identity
    torch.testing.assert_close(bits_to_quantized(out.bits), out.quantized.detach())


def test_lfq_shapes_losses_and_dtype() -> None:
    lfq = LFQ(bits=6)
    z = torch.randn(2, 5, 7, 6, dtype=torch.bfloat16, requires_grad=True)
    out = lfq(z)
    assert out.quantized.shape == z.shape and out.quantized.dtype == torch.float32
    assert out.bits.shape == z.shape
    assert out.entropy_loss.dim() == 0 and out.commit_loss.dim() == 0
    (out.entropy_loss + out.commit_loss).backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    with pytest.raises(ValueError):
        lfq(torch.randn(3, 5))


def test_lfq_entropy_prefers_confident_diverse_codes() -> None:
    lfq = LFQ(bits=8, entropy_weight=1.0)
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 256, (4096,), generator=g)
    confident_diverse = bits_to_quantized(int_to_bits(codes, 8)) * 2.0  # far from 0, all codes used
    uncertain = torch.randn(4096, 8, generator=g) * 0.01  # near 0
    collapsed = torch.full((4096, 8), 2.0)  # confident, one code
    e_good = lfq(confident_diverse).entropy_loss
    assert e_good < lfq(uncertain).entropy_loss
    assert e_good < lfq(collapsed).entropy_loss
    # commitment: zero exactly on the code points
    assert lfq(bits_to_quantized(int_to_bits(codes, 8))).commit_loss == 0


def test_bits_int_round_trip() -> None:
    g = torch.Generator().manual_seed(0)
    for n_bits in (1, 5, 16, 31):
        codes = torch.randint(0, 2**n_bits, (3, 50), generator=g)
        bits = int_to_bits(codes, n_bits)
        assert bits.shape == (3, 50, n_bits)
        assert set(bits.unique().tolist()) <= {0, 1}
        assert torch.equal(bits_to_int(bits), codes)
    assert bits_to_int(torch.tensor([1, 0, 1, 1])).item() == 13  # bit j has weight 2^j
    assert int_to_bits(torch.tensor(6), 3).tolist() == [0, 1, 1]
    with pytest.raises(ValueError):
        int_to_bits(torch.tensor([1]), 0)
