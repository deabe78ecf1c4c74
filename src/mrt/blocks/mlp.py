"""Two-layer perceptron."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """Linear -> GELU -> Linear on the last dim: ``[..., c_in] -> [..., c_out]``.

    ``hidden`` defaults to ``2 * max(c_in, c_out)``.
    """

    def __init__(self, c_in: int, c_out: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = 2 * max(c_in, c_out) if hidden is None else hidden
        if min(c_in, c_out, hidden) < 1:
            raise ValueError(f"MLP sizes must be >= 1, got c_in={c_in} c_out={c_out} hidden={hidden}")
        self.fc1 = nn.Linear(c_in, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, c_out)
        for lin in (self.fc1, self.fc2):
            nn.init.trunc_normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))
