"""Pre-norm Transformer (ViT) block with full attention over the token axis."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mrt.blocks.mlp import MLP

__all__ = ["ViTBlock"]


class ViTBlock(nn.Module):
    """``x = x + MHSA(LN(x)); x = x + MLP(LN(x))`` on ``[B, T, dim]``.

    Attention is over all T tokens (windows are folded into B by the caller); no positional
    information is added here, so the block is permutation-equivariant over T.
    ``attn_mask`` (optional) is passed to ``scaled_dot_product_attention``: bool ``True`` = attend,
    or an additive float mask; shape broadcastable to ``[B, heads, T, T]``.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"dim={dim} must be a positive multiple of heads={heads}")
        self.dim = dim
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, dim, hidden=max(1, int(round(mlp_ratio * dim))))
        for lin in (self.qkv, self.proj):
            nn.init.trunc_normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)

    def attention(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """Multi-head self-attention ``[B, T, dim] -> [B, T, dim]`` (no norm, no residual)."""
        b, t, _ = x.shape
        hd = self.dim // self.heads
        qkv = self.qkv(x).view(b, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)  # [3, B, H, T, hd]
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)  # [B, H, T, hd]
        y = y.transpose(1, 2).reshape(b, t, self.dim)  # [B, T, dim]
        return self.proj(y)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        x = x + self.attention(self.norm1(x), attn_mask)
        return x + self.mlp(self.norm2(x))
