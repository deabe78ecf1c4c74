"""EMA of trainable parameters: hand-computed values, start step, state round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mrt.train.ema import EMA


def test_ema_hand_case() -> None:
    p = nn.Parameter(torch.tensor([0.0, 4.0]))
    ema = EMA([("w", p)], decay=0.5, start=1)
    with torch.no_grad():
        p.copy_(torch.tensor([2.0, 2.0]))
    ema.update(1)  # step <= start: copy
    assert torch.equal(ema.shadow["w"], torch.tensor([2.0, 2.0]))
    with torch.no_grad():
        p.copy_(torch.tensor([4.0, 0.0]))
    ema.update(2)  # 0.5 * 2 + 0.5 * 4 = 3 ; 0.5 * 2 + 0.5 * 0 = 1
    assert torch.equal(ema.shadow["w"], torch.tensor([3.0, 1.0]))
    with torch.no_grad():
        p.copy_(torch.tensor([1.0, 1.0]))
    ema.update(3)
    assert torch.equal(ema.shadow["w"], torch.tensor([2.0, 1.0]))
    ema.copy_to()
    assert torch.equal(p.detach(), torch.tensor([2.0, 1.0]))


def test_ema_decay_0999_matches_formula() -> None:
    p = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    ema = EMA([("p", p)], decay=0.999)
    ref = torch.zeros(3, dtype=torch.float64)
    for step in range(1, 6):
        with torch.no_grad():
            p.add_(1.0)
        ema.update(step)
        ref = 0.999 * ref + 0.001 * p.detach()
    assert ema.shadow["p"].dtype == torch.float64
    assert torch.allclose(ema.shadow["p"], ref, rtol=0, atol=1e-15)


def test_ema_state_roundtrip_and_fp32_shadow() -> None:
    p = nn.Parameter(torch.randn(4).to(torch.bfloat16))
    ema = EMA([("p", p)], decay=0.9)
    assert ema.shadow["p"].dtype == torch.float32
    ema.update(1)
    state = ema.state_dict()
    other = EMA([("p", nn.Parameter(torch.zeros(4, dtype=torch.bfloat16)))], decay=0.9)
    other.load_state_dict(state)
    assert torch.equal(other.shadow["p"], ema.shadow["p"])
    with pytest.raises(ValueError):
        EMA([("q", p)], decay=0.9).load_state_dict(state)
    with pytest.raises(ValueError):
        EMA([("p", p)], decay=1.0)
