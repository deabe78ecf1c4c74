"""Exponential moving average of the trainable parameters.

``update(step)`` is called after every optimizer step with ``step`` = the number of completed
steps (1, 2, ...). Up to and including ``start`` the average simply copies the parameters; after
that ``shadow = decay * shadow + (1 - decay) * param``. Shadows are kept in fp32 (fp64 params
stay fp64), on the parameters' device. Buffers are not averaged (checkpoints hold them as trained).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn


class EMA:
    """EMA of named parameters with a constant decay and a start step."""

    def __init__(self, named_params: Iterable[tuple[str, nn.Parameter]], decay: float, start: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.start = int(start)
        self.params: dict[str, nn.Parameter] = dict(named_params)
        self.shadow: dict[str, Tensor] = {
            n: p.detach().clone().to(torch.promote_types(p.dtype, torch.float32)) for n, p in self.params.items()
        }

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the current parameters in after optimizer step number ``step`` (1-based)."""
        if step <= self.start:
            for n, p in self.params.items():
                self.shadow[n].copy_(p.detach())
            return
        for n, p in self.params.items():
            self.shadow[n].mul_(self.decay).add_(p.detach().to(self.shadow[n].dtype), alpha=1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, params: dict[str, nn.Parameter] | None = None) -> None:
        """Overwrite the parameters (default: the tracked ones) with the averages."""
        for n, p in (params or self.params).items():
            p.copy_(self.shadow[n].to(p.dtype))

    def state_dict(self) -> dict[str, Any]:
        """``{'decay', 'start', 'shadow': {name: fp32 tensor on CPU}}``."""
        return {
            "decay": self.decay,
            "start": self.start,
            "shadow": {n: t.detach().cpu().clone() for n, t in self.shadow.items()},
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the averages (names must match exactly); decay and start stay as configured."""
        shadow = state["shadow"]
        if set(shadow) != set(self.shadow):
            missing = sorted(set(self.shadow) - set(shadow))[:5]
            extra = sorted(set(shadow) - set(self.shadow))[:5]
            raise ValueError(f"EMA state does not match the parameters (missing {missing}, unexpected {extra})")
        for n, t in shadow.items():
            self.shadow[n].copy_(t)
