"""Bidirectional RWKV block (Vision-RWKV style) on 1-D token sequences.

Token shift: the sequence is bidirectional, so channel ``c`` mixes token ``t`` with its
predecessor ``t-1`` when ``c`` is even and with its successor ``t+1`` when ``c`` is odd (zero
padding at the ends). Interleaving (rather than first half / second half) gives both directions
the full range of the layer-dependent mix ratios, which vary with the channel index.

Initialisation follows Vision-RWKV / RWKV-4 (layer-dependent):

* ``r0 = layer_id / (n_layers - 1)``, ``r1 = 1 - layer_id / n_layers``, ``x_c = c / dim``;
* decay ``w_c = -5 + 8 (c / (dim-1)) ** (0.7 + 1.3 r0)`` (raw; Bi-WKV divides by T, so negative
  values mean a mild *growth* with distance, bounded by ``e^5`` over the whole sequence);
  decay and bonus are clamped to ``[-30, 30]`` (``mrt.ops.biwkv.BOUND``) when used, which keeps
  Bi-WKV on its fast path with no device sync (``e^-30`` over the sequence is already "local");
* bonus ``u_c = ln(0.3) + 0.5 * ((c+1) % 3 - 1)``;
* spatial mix ratios ``mix_k = x^r1``, ``mix_v = x^r1 + 0.3 r0``, ``mix_r = x^(0.5 r1)``;
  channel mix ratios ``mix_k = mix_r = x^r1`` (mix 1 = current token only);
* linear layers: truncated normal std 0.02, except the two output projections (spatial ``output``,
  channel ``value``) with std ``0.02 / sqrt(2 n_layers)`` so deep stacks start near identity.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrt.ops.biwkv import BOUND, DEFAULT_CHUNK_SIZE, biwkv, biwkv_reference

__all__ = ["BiRWKVBlock", "SpatialMix", "ChannelMix", "token_shift"]

WKVImpl = Literal["chunked", "reference"]


def token_shift(x: Tensor) -> Tensor:
    """Even channels take token ``t-1``, odd channels token ``t+1`` (zeros past the ends).

    ``x: [B, T, C] -> [B, T, C]``.
    """
    prev = F.pad(x, (0, 0, 1, -1))  # [B, T, C]: row t holds x[t-1]
    nxt = F.pad(x, (0, 0, -1, 1))  # row t holds x[t+1]
    even = (torch.arange(x.shape[-1], device=x.device) % 2 == 0)
    return torch.where(even, prev, nxt)


def _mix(x: Tensor, shifted: Tensor, ratio: Tensor) -> Tensor:
    # ratio 1 -> current token, 0 -> shifted neighbour
    return shifted + (x - shifted) * ratio.to(x.dtype)


def _init_linear(lin: nn.Linear, std: float) -> None:
    nn.init.trunc_normal_(lin.weight, std=std, a=-2 * std, b=2 * std)


class SpatialMix(nn.Module):
    """Token shift -> K, V, R -> ``Wo(sigmoid(R) * LN(BiWKV(K, V)))``; ``[B, T, dim] -> same``."""

    def __init__(
        self,
        dim: int,
        layer_id: int,
        n_layers: int,
        key_norm: bool = True,
        wkv_impl: WKVImpl = "chunked",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.wkv_impl: WKVImpl = wkv_impl
        self.chunk_size = chunk_size
        r0 = layer_id / max(n_layers - 1, 1)
        r1 = 1.0 - layer_id / n_layers
        c = torch.arange(dim, dtype=torch.float32)
        xc = c / dim
        self.decay = nn.Parameter(-5.0 + 8.0 * (c / max(dim - 1, 1)) ** (0.7 + 1.3 * r0))  # w [dim]
        zigzag = 0.5 * (((c + 1) % 3) - 1)
        self.bonus = nn.Parameter(math.log(0.3) + zigzag)  # u [dim]
        self.mix_k = nn.Parameter(xc**r1)
        self.mix_v = nn.Parameter(xc**r1 + 0.3 * r0)
        self.mix_r = nn.Parameter(xc ** (0.5 * r1))
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.receptance = nn.Linear(dim, dim, bias=False)
        self.key_norm = nn.LayerNorm(dim) if key_norm else nn.Identity()
        self.output = nn.Linear(dim, dim, bias=False)
        for lin in (self.key, self.value, self.receptance):
            _init_linear(lin, 0.02)
        _init_linear(self.output, 0.02 / math.sqrt(2 * n_layers))

    def wkv(self, k: Tensor, v: Tensor) -> Tensor:
        """Bi-WKV of ``k, v: [B, T, dim]`` with this layer's decay/bonus (clamped to ``+-BOUND``)."""
        w = self.decay.clamp(-BOUND, BOUND)
        u = self.bonus.clamp(-BOUND, BOUND)
        if self.wkv_impl == "reference":
            return biwkv_reference(w, u, k, v)
        return biwkv(w, u, k, v, chunk_size=self.chunk_size, bounded=True)

    def forward(self, x: Tensor) -> Tensor:
        xx = token_shift(x)
        k = self.key(_mix(x, xx, self.mix_k))
        v = self.value(_mix(x, xx, self.mix_v))
        r = self.receptance(_mix(x, xx, self.mix_r))
        y = self.key_norm(self.wkv(k, v))
        return self.output(torch.sigmoid(r) * y)


class ChannelMix(nn.Module):
    """Token shift -> ``sigmoid(Wr x) * Wv(relu(Wk x)^2)``; ``[B, T, dim] -> same``."""

    def __init__(self, dim: int, layer_id: int, n_layers: int, hidden_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = max(1, int(round(hidden_ratio * dim)))
        r1 = 1.0 - layer_id / n_layers
        xc = torch.arange(dim, dtype=torch.float32) / dim
        self.mix_k = nn.Parameter(xc**r1)
        self.mix_r = nn.Parameter(xc**r1)
        self.key = nn.Linear(dim, hidden, bias=False)
        self.receptance = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(hidden, dim, bias=False)
        _init_linear(self.key, 0.02)
        _init_linear(self.receptance, 0.02)
        _init_linear(self.value, 0.02 / math.sqrt(2 * n_layers))

    def forward(self, x: Tensor) -> Tensor:
        xx = token_shift(x)
        k = torch.relu(self.key(_mix(x, xx, self.mix_k))) ** 2  # [B, T, hidden]
        r = torch.sigmoid(self.receptance(_mix(x, xx, self.mix_r)))
        return r * self.value(k)


class BiRWKVBlock(nn.Module):
    """``x = x + SpatialMix(LN(x)); x = x + ChannelMix(LN(x))`` on ``[B, T, dim]``.

    ``wkv_impl="reference"`` switches to the exact O(T^2) Bi-WKV (tests); ``chunk_size`` tunes the
    linear-time one. ``key_norm`` puts a LayerNorm on the WKV output before the gate.
    """

    def __init__(
        self,
        dim: int,
        layer_id: int,
        n_layers: int,
        hidden_ratio: float = 4.0,
        *,
        key_norm: bool = True,
        wkv_impl: WKVImpl = "chunked",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        super().__init__()
        if dim < 1 or n_layers < 1 or not 0 <= layer_id < n_layers:
            raise ValueError(f"bad BiRWKVBlock sizes: dim={dim} layer_id={layer_id} n_layers={n_layers}")
        if wkv_impl not in ("chunked", "reference"):
            raise ValueError(f"wkv_impl must be 'chunked' or 'reference', got {wkv_impl!r}")
        self.ln1 = nn.LayerNorm(dim)
        self.att = SpatialMix(dim, layer_id, n_layers, key_norm=key_norm, wkv_impl=wkv_impl, chunk_size=chunk_size)
        self.ln2 = nn.LayerNorm(dim)
        self.ffn = ChannelMix(dim, layer_id, n_layers, hidden_ratio)

    @property
    def wkv_impl(self) -> WKVImpl:
        return self.att.wkv_impl

    @wkv_impl.setter
    def wkv_impl(self, value: WKVImpl) -> None:
        if value not in ("chunked", "reference"):
            raise ValueError(f"wkv_impl must be 'chunked' or 'reference', got {value!r}")
        self.att.wkv_impl = value

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.att(self.ln1(x))
        return x + self.ffn(self.ln2(x))
