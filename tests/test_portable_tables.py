"""Portable tables (file format version 4): integer tables that another machine's float rounding
does not change, where the float32 tables of versions 1-3 do."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from mrt.entropy import portable_tables, quantize_pmf
from mrt.entropy.portable import EXP_TABLE, LOGIT_SCALE
from mrt.errors import BitstreamError
from mrt.models import rcm as rcm_module

from conftest import make_tiny_model


def test_exp_table_is_the_rounded_exponential() -> None:
    assert len(EXP_TABLE) == 278 and EXP_TABLE[0] == 1 << 24 and EXP_TABLE[-1] == 1
    assert np.all(np.diff(EXP_TABLE) <= 0) and not EXP_TABLE.flags.writeable
    for d in (1, 16, 100, 277):
        assert abs(EXP_TABLE[d] - 2**24 * math.exp(-d / LOGIT_SCALE)) <= 0.5 + 1e-6


def test_tables_sum_to_the_total_keep_every_symbol_and_follow_the_softmax() -> None:
    logits = np.random.default_rng(0).normal(0, 4, (200, 16))
    probs, freqs = portable_tables(logits, 16)
    assert freqs.dtype == np.int32 and np.all(freqs.sum(-1) == 1 << 16) and freqs.min() >= 1
    soft = np.exp(logits - logits.max(-1, keepdims=True))
    soft /= soft.sum(-1, keepdims=True)
    assert np.max(np.abs(probs / soft - 1)) < 0.07  # the 1/16 grid: at most exp(1/16) - 1
    assert np.allclose(probs.sum(-1), 1, atol=1e-6) and probs.min() > 0
    big = soft > 1e-3  # where integer rounding of the weights is negligible, the tables follow too
    assert np.max(np.abs(freqs[big] / 2**16 / soft[big] - 1)) < 0.1
    far = np.array([[0.0, -100.0, 5.0]])  # a symbol beyond the table keeps its one unit
    assert portable_tables(far, 16)[1][0, 1] == 1


def test_tables_depend_on_the_rounded_logits_only() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (500, 16))
    _, freqs = portable_tables(logits)
    q = np.rint(logits * LOGIT_SCALE)
    # another machine's float64 arithmetic: a relative error of 1e-13 moves no rounded logit here
    noisy = logits * (1 + 1e-13 * rng.standard_normal(logits.shape))
    assert np.array_equal(np.rint(noisy * LOGIT_SCALE), q)
    assert np.array_equal(portable_tables(noisy)[1], freqs)
    assert np.array_equal(portable_tables(logits + 2.5)[1], freqs)  # 2.5 = 40/16: a shift of the grid
    assert not np.array_equal(portable_tables(logits * 1.5)[1], freqs)
    # the float32 rule is not so robust: the same relative error of float32 arithmetic (1e-7)
    # changes some table of these 500 rows
    soft = torch.softmax(torch.from_numpy(logits).float(), -1).numpy()
    soft2 = torch.softmax(torch.from_numpy(logits * (1 + 1e-7 * rng.standard_normal(logits.shape))).float(), -1).numpy()
    assert not np.array_equal(quantize_pmf(soft), quantize_pmf(soft2))


def test_refuses_float32_and_non_finite_logits() -> None:
    with pytest.raises(ValueError, match="float64"):
        portable_tables(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        portable_tables(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="does not fit"):
        portable_tables(np.zeros((1, 8)), precision=2)


def _other_machine(monkeypatch: pytest.MonkeyPatch, relative: float, seed: int = 0) -> None:
    """Make the decoder's context model compute like another CPU: every weight of the coding
    network off by ``relative`` (a stand-in for another summation order)."""
    real = rcm_module.coding_twin

    def twin(module: torch.nn.Module, portable: bool) -> torch.nn.Module:
        net = copy.deepcopy(real(module, portable))
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(1 + relative * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        return net

    monkeypatch.setattr(rcm_module, "coding_twin", twin)


def test_a_portable_file_decodes_on_another_machine_and_a_float32_one_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_tiny_model(5)
    with torch.no_grad():  # a trained-looking context model: confident, varied predictions
        for p in model.rcm.parameters():
            p.mul_(3.0)
    gen = torch.Generator().manual_seed(3)
    bits = torch.randint(0, 2, (24, 8, 8), generator=gen)  # [nW, k, d]
    portable = model.rcm.encode(bits, portable=True)
    legacy = model.rcm.encode(bits)
    assert abs(len(portable.payload) - len(legacy.payload)) <= 2
    _other_machine(monkeypatch, 1e-12)  # float64 arithmetic of another CPU: far below the grid
    decoded, symbols = model.rcm.decode(portable.payload, 24, 8, portable=True)
    assert torch.equal(decoded, bits) and np.array_equal(symbols, portable.symbols)
    _other_machine(monkeypatch, 1e-6)  # float32 arithmetic of another CPU: the tables move
    with pytest.raises(BitstreamError):
        decoded, symbols = model.rcm.decode(legacy.payload, 24, 8)
        if not np.array_equal(symbols, legacy.symbols):  # (a wrong decode the checksum would refuse)
            raise BitstreamError("symbols differ")
