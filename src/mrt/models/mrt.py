"""MRT encoder and decoder: 1-D latent tokens per window, alternating global Bi-RWKV and windowed ViT.

Token layout used everywhere (one image, ``nW`` windows in raster order):
    x: [B, nW, L, D] with L = P + K, P = (window/16)**2 patch tokens (raster order inside the
    window) followed by K latent tokens. The global mixer sees the flattened sequence
    [B, nW * L, D] (window-major); the windowed ViT sees [B * nW, L, D].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrt.blocks.mlp import MLP
from mrt.blocks.rwkv import BiRWKVBlock
from mrt.blocks.vit import ViTBlock
from mrt.models.config import MRTConfig
from mrt.models.geometry import window_cells
from mrt.models.taef2 import LATENT_CHANNELS

CELL = 2  # latent cells per patch side: a 16-pixel patch is 2 x 2 cells of the 1/8-res TAEF2 latent


class MixedStack(nn.Module):
    """``depth`` x (global mixer over all windows, then windowed ViT inside each window).

    ``mixing``: "birwkv" (the paper), "none" (the Bi-RWKV block applied per window: no
    cross-window mixing) or "global_vit" (full self-attention over all windows) for ablations.
    """

    def __init__(self, dim: int, heads: int, depth: int, mlp_ratio: float, mixing: str) -> None:
        super().__init__()
        self.mixing = mixing
        self.glob = nn.ModuleList()
        self.local = nn.ModuleList()
        for i in range(depth):
            if mixing == "global_vit":
                self.glob.append(ViTBlock(dim, heads, mlp_ratio))
            else:
                self.glob.append(BiRWKVBlock(dim, layer_id=i, n_layers=depth, hidden_ratio=mlp_ratio))
            self.local.append(ViTBlock(dim, heads, mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, nw, length, d = x.shape
        for glob, local in zip(self.glob, self.local):
            if self.mixing == "none":
                x = glob(x.reshape(b * nw, length, d))
            else:
                x = glob(x.reshape(b, nw * length, d))
            x = local(x.reshape(b * nw, length, d))
        return x.reshape(b, nw, length, d)


def latent_to_windows(latent: torch.Tensor, window: int) -> torch.Tensor:
    """TAEF2 latent [B, 32, Hl, Wl] (Hl, Wl multiples of window/8) -> patch features [B, nW, P, 32*4]."""
    b, c, hl, wl = latent.shape
    cells = window_cells(window)  # latent cells per window side
    g = cells // CELL  # patches per window side
    nh, nw = hl // cells, wl // cells
    x = latent.reshape(b, c, nh, g, CELL, nw, g, CELL)
    x = x.permute(0, 2, 5, 3, 6, 1, 4, 7)  # [B, nh, nw, g, g, C, 2, 2]
    return x.reshape(b, nh * nw, g * g, c * CELL * CELL)


def windows_to_grid(x: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
    """Per-patch features [B, nW, g*g, C] -> 2-D map [B, C, nh*g, nw*g] at 1/16 resolution."""
    b, n_win, p, c = x.shape
    g = int(round(p**0.5))
    x = x.reshape(b, nh, nw, g, g, c).permute(0, 5, 1, 3, 2, 4)  # [B, C, nh, g, nw, g]
    return x.reshape(b, c, nh * g, nw * g)


PYRAMID = (1, 2, 4, 8)  # region grid sizes of the token pyramid (1 + 4 + 16 + 64 = 85 regions)


def pyramid_assignment(grid: int, n_tokens: int) -> torch.Tensor:
    """[n_tokens, grid*grid] 0/1 matrix: token k covers the patches of pyramid region k.

    Token 0 covers the whole window, tokens 1-4 its quadrants, 5-20 a 4x4 split, 21-84 an 8x8
    split; tokens beyond 85 cover nothing. Leading tokens are coarse, so nested token dropout
    (keeping the first k) degrades gracefully, and every token starts with a direct path to its
    region: this makes the 1-D tokens learn fast (see docs/DESIGN.md).
    """
    rows = []
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    for size in PYRAMID:
        cell = max(1, grid // size)
        region = (ys // cell).clamp(max=size - 1) * size + (xs // cell).clamp(max=size - 1)  # [g, g]
        for r in range(size * size):
            rows.append((region == r).reshape(-1).float())
    a = torch.stack(rows)[:n_tokens]
    if n_tokens > a.shape[0]:
        a = torch.cat([a, a.new_zeros(n_tokens - a.shape[0], grid * grid)])
    return a


class MRTEncoder(nn.Module):
    """TAEF2 latent -> continuous 1-D latent tokens [B, nW, K, token_bits] (before LFQ)."""

    def __init__(self, cfg: MRTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        p = cfg.grid * cfg.grid
        self.patch_embed = nn.Linear(LATENT_CHANNELS * CELL * CELL, cfg.dim)
        self.patch_pos = nn.Parameter(torch.randn(p, cfg.dim) * 0.02)
        self.latent_tokens = nn.Parameter(torch.randn(cfg.n_tokens, cfg.dim) * 0.02)
        assign = pyramid_assignment(cfg.grid, cfg.n_tokens)
        self.register_buffer("pool", assign / assign.sum(1, keepdim=True).clamp_min(1.0), persistent=False)
        self.token_init = nn.Linear(cfg.dim, cfg.dim)
        self.stack = MixedStack(cfg.dim, cfg.heads, cfg.enc_depth, cfg.mlp_ratio, cfg.mixing)
        self.norm = nn.LayerNorm(cfg.dim)
        self.reduce = MLP(cfg.dim, cfg.token_bits, init="fan_in")  # MLP(c2, c1): reduction to the quantised width

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embed(latent_to_windows(latent, self.cfg.window)) + self.patch_pos  # [B,nW,P,D]
        b, n_win, p, d = patches.shape
        pooled = torch.einsum("kp,bwpd->bwkd", self.pool.to(patches.dtype), patches)  # region means [B,nW,K,D]
        tokens = self.latent_tokens + self.token_init(pooled)  # [B, nW, K, D]
        x = self.stack(torch.cat([patches, tokens], dim=2))
        return self.reduce(self.norm(x[:, :, p:]))


class MRTDecoder(nn.Module):
    """Received tokens [B, nW, K', bits] (K' <= K, values in [-1, 1]) -> target-bit logits at 1/16."""

    def __init__(self, cfg: MRTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        p = cfg.grid * cfg.grid
        self.expand = MLP(cfg.token_bits, cfg.dim, init="fan_in")  # MLP(c1, c2): expansion back to the model width
        self.token_pos = nn.Parameter(torch.randn(cfg.n_tokens, cfg.dim) * 0.02)
        self.mask_token = nn.Parameter(torch.randn(cfg.dim) * 0.02)
        self.patch_pos = nn.Parameter(torch.randn(p, cfg.dim) * 0.02)
        self.register_buffer("assign", pyramid_assignment(cfg.grid, cfg.n_tokens), persistent=False)
        self.token_spread = nn.Linear(cfg.dim, cfg.dim)
        self.stack = MixedStack(cfg.dim, cfg.heads, cfg.dec_depth, cfg.mlp_ratio, cfg.mixing)
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.target.bits)
        # training-only auxiliary head: a 1/4-resolution RGB preview (4x4 pixels per 16-px patch)
        self.preview_head = nn.Linear(cfg.dim, 3 * 4 * 4)

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Normalised patch features [B, nW, P, D] from received tokens [B, nW, K', bits]."""
        b, n_win, k, _ = tokens.shape
        if k > self.cfg.n_tokens:
            raise ValueError(f"got {k} tokens per window; the model has {self.cfg.n_tokens}")
        tok = self.expand(tokens) + self.token_pos[:k]
        p = self.patch_pos.shape[0]
        # every patch starts from the mean of the received tokens whose pyramid region covers it
        assign = self.assign[:k].to(tok.dtype)  # [k, P]
        spread = torch.einsum("kp,bwkd->bwpd", assign / assign.sum(0, keepdim=True).clamp_min(1.0), self.token_spread(tok))
        masks = self.mask_token + self.patch_pos + spread  # [B, nW, P, D]
        x = self.stack(torch.cat([masks, tok], dim=2))
        return self.norm(x[:, :, :p])

    def logits(self, feats: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
        """Patch features -> logits [B, target_bits, nh*g, nw*g] of the stage-0 target bits."""
        return windows_to_grid(self.head(feats), nh, nw)

    def preview(self, feats: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
        """Patch features -> RGB preview [B, 3, H/4, W/4] (training signal that makes tokens informative fast)."""
        grid = windows_to_grid(self.preview_head(feats), nh, nw)  # [B, 48, H/16, W/16]
        return F.pixel_shuffle(grid, 4)

    def forward(self, tokens: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
        """Returns logits [B, target_bits, nh*g, nw*g] of the stage-0 target bits."""
        return self.logits(self.features(tokens), nh, nw)
