"""RCM: the RWKV Compression Model's 1-D spatial-channel context model (1-D SCCTX).

Every latent token carries ``d`` LFQ bits, split into ``G`` groups of ``d/G`` bits; each group is
one integer symbol (LFQ-E: bits -> integer) with alphabet ``A = 2**(d/G)``. Coding proceeds in
``S = passes * groups`` steps; step ``s = p * G + g`` codes group ``g`` of every token whose
in-window index ``k`` satisfies ``k % passes == p``. Before step ``s`` the decoder knows:
  * all groups of tokens in earlier passes (spatial context along the 1-D sequence),
  * groups ``< g`` of the tokens in the current pass (channel context).
The network sees the known bits (+-1, unknown = 0), lifts them with MLP(c1, c2), adds an
in-window token-index and a step embedding, mixes over the whole 1-D sequence of the image with
Bi-RWKV blocks and reduces with MLP(c2, c1) to logits for every group. Decoding takes ``S``
network calls whatever the image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mrt.blocks.mlp import MLP
from mrt.blocks.rwkv import BiRWKVBlock
from mrt.models.config import MRTConfig


@dataclass(frozen=True)
class Step:
    """One coding step: group ``group`` of the tokens of pass ``pass_index``."""

    index: int
    pass_index: int
    group: int


class RCM(nn.Module):
    """Context model over LFQ tokens [B, nW, K, d] (K may be any number up to ``cfg.n_tokens``)."""

    def __init__(self, cfg: MRTConfig) -> None:
        super().__init__()
        r = cfg.rcm
        self.bits = cfg.token_bits
        self.groups = r.groups
        self.passes = r.passes
        self.group_bits = cfg.group_bits
        self.alphabet = 2**self.group_bits
        self.expand = MLP(self.bits, r.dim, init="fan_in")  # MLP(c1, c2)
        self.token_index = nn.Embedding(cfg.n_tokens, r.dim)
        self.step_embed = nn.Embedding(r.passes * r.groups, r.dim)
        self.blocks = nn.ModuleList(BiRWKVBlock(r.dim, layer_id=i, n_layers=r.depth) for i in range(r.depth))
        self.norm = nn.LayerNorm(r.dim)
        self.reduce = MLP(r.dim, r.groups * self.alphabet, init="fan_in")  # MLP(c2, c1) -> logits of every group

    @property
    def n_steps(self) -> int:
        return self.passes * self.groups

    def steps(self) -> list[Step]:
        return [Step(p * self.groups + g, p, g) for p in range(self.passes) for g in range(self.groups)]

    def pass_tokens(self, k: int, pass_index: int) -> torch.Tensor:
        """In-window indices of the tokens coded in a pass (LongTensor)."""
        return torch.arange(pass_index, k, self.passes)

    def known_mask(self, k: int, step: Step) -> torch.Tensor:
        """[K, d] float mask of the bits known before ``step`` (1 = known)."""
        token_pass = torch.arange(k) % self.passes  # [K]
        bit_group = torch.arange(self.bits) // self.group_bits  # [d]
        earlier = (token_pass < step.pass_index)[:, None].expand(k, self.bits)
        same = (token_pass == step.pass_index)[:, None] & (bit_group < step.group)[None, :]
        return (earlier | same).float()

    def step_logits(self, bits_pm1: torch.Tensor, step: Step) -> torch.Tensor:
        """Logits [B, nW, K, A] of group ``step.group`` for every token, from the known bits only.

        ``bits_pm1``: [B, nW, K, d] in {-1, +1} (entries not yet known may hold anything: they
        are masked here, so encoder and decoder compute exactly the same thing).
        """
        b, n_win, k, d = bits_pm1.shape
        mask = self.known_mask(k, step).to(bits_pm1.device) > 0
        known = torch.where(mask, bits_pm1, torch.zeros((), dtype=bits_pm1.dtype, device=bits_pm1.device))
        h = self.expand(known) + self.token_index.weight[:k] + self.step_embed.weight[step.index]
        h = h.reshape(b, n_win * k, -1)  # one 1-D sequence over all windows
        for block in self.blocks:
            h = block(h)
        logits = self.reduce(self.norm(h)).reshape(b, n_win, k, self.groups, self.alphabet)
        return logits[..., step.group, :]

    def symbols(self, bits01: torch.Tensor) -> torch.Tensor:
        """LFQ-E per group: {0,1} bits [..., d] -> integer symbols [..., G] (bit j of a group has weight 2^j)."""
        shaped = bits01.reshape(*bits01.shape[:-1], self.groups, self.group_bits).long()
        weights = 2 ** torch.arange(self.group_bits, device=bits01.device)
        return (shaped * weights).sum(-1)

    def bits_of(self, symbols: torch.Tensor) -> torch.Tensor:
        """LFQ-D per group: integer symbols [..., G] -> {0,1} bits [..., d]."""
        weights = 2 ** torch.arange(self.group_bits, device=symbols.device)
        bits = (symbols[..., None] // weights) % 2  # [..., G, gb]
        return bits.reshape(*symbols.shape[:-1], self.bits)

    def rate_bits(self, bits_pm1: torch.Tensor, steps: list[Step] | None = None) -> torch.Tensor:
        """Training rate: cross-entropy in bits per image [B] of coding the symbols of ``steps``.

        ``steps`` defaults to all steps (the exact rate of the image). The steps run in one batched
        call (steps folded into the batch); the codec runs them one by one, which gives the same
        values up to float rounding. Training may pass a random subset and rescale (an unbiased
        estimate at a fraction of the cost).
        """
        b, n_win, k, d = bits_pm1.shape
        steps = self.steps() if steps is None else steps
        masks = torch.stack([self.known_mask(k, s) for s in steps]).to(bits_pm1)  # [S, K, d]
        known = bits_pm1[None] * masks[:, None, None]  # [S, B, nW, K, d]
        step_ids = torch.tensor([s.index for s in steps], device=bits_pm1.device)
        row = {s.index: i for i, s in enumerate(steps)}
        h = self.expand(known) + self.token_index.weight[:k] + self.step_embed(step_ids)[:, None, None, None]
        h = h.reshape(len(steps) * b, n_win * k, -1)
        for block in self.blocks:
            h = block(h)
        logits = self.reduce(self.norm(h)).reshape(len(steps), b, n_win, k, self.groups, self.alphabet)
        symbols = self.symbols((bits_pm1 > 0).long())  # [B, nW, K, G]
        total = bits_pm1.new_zeros(b)
        log2 = torch.log(torch.tensor(2.0))
        for s in steps:
            tok = self.pass_tokens(k, s.pass_index).to(bits_pm1.device)
            lg = logits[row[s.index]][:, :, tok, s.group]  # [B, nW, k_s, A]
            target = symbols[:, :, tok, s.group]
            nll = F.cross_entropy(lg.reshape(-1, self.alphabet).float(), target.reshape(-1), reduction="none")
            total = total + nll.reshape(b, -1).sum(1) / log2
        return total
