"""Two-layer perceptron."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """Linear -> GELU -> Linear on the last dim: ``[..., c_in] -> [..., c_out]``.

    ``hidden`` defaults to ``2 * max(c_in, c_out)``.
    """

    def __init__(self, c_in: int, c_out: int, hidden: int | None = None, init: str = "small") -> None:
        super().__init__()
        hidden = 2 * max(c_in, c_out) if hidden is None else hidden
        if min(c_in, c_out, hidden) < 1:
            raise ValueError(f"MLP sizes must be >= 1, got c_in={c_in} c_out={c_out} hidden={hidden}")
        if init not in ("small", "fan_in"):
            raise ValueError(f"init must be 'small' or 'fan_in', got {init!r}")
        self.fc1 = nn.Linear(c_in, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, c_out)
        for lin in (self.fc1, self.fc2):
            # "small" (std 0.02): residual branches that should start near zero (ViT MLP);
            # "fan_in" (std 1/sqrt(fan_in)): projections on the main path (token expansion /
            # reduction), where a 0.02 init shrinks signal and gradient by ~50x per layer.
            std = 0.02 if init == "small" else lin.in_features**-0.5
            nn.init.trunc_normal_(lin.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))
