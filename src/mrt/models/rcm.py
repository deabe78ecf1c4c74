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

``rcm.context: factorized`` (the ablation of issue 12) drops the context: the logits come from the
token-index and step embeddings alone (one learned table per in-window index and group), so no
coded bit informs another; plan, symbols, tables and coding order are unchanged.

The RCM also owns the coding of its symbols: :meth:`RCM.encode` (bits -> bytes) and
:meth:`RCM.decode` (bytes -> bits) build every step's integer tables through one method,
:meth:`RCM.step_tables`, so encoder and decoder cannot drift apart; the training rate
(:meth:`RCM.rate_bits`) walks the same :meth:`RCM.plan`. Coding order (docs/bitstream.md): steps in
order (pass-major, then bit group); in a step, windows in raster order, then the step's tokens in
increasing in-window index. Tables come from float32 probabilities computed with one thread.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mrt.blocks.lfq import bits_to_int, int_to_bits
from mrt.blocks.mlp import MLP
from mrt.blocks.rwkv import BiRWKVBlock
from mrt.entropy import SymbolDecoder, SymbolEncoder, estimate_bits, portable_tables, quantize_pmf
from mrt.errors import BitstreamError
from mrt.models.config import MRTConfig
from mrt.models.threads import one_thread

PRECISION = 16  # bits of the integer frequency tables (part of the file format)


@dataclass(frozen=True)
class Step:
    """One coding step: group ``group`` of the tokens of pass ``pass_index``."""

    index: int
    pass_index: int
    group: int


@dataclass(frozen=True)
class PlannedStep:
    """A step with the in-window indices of the tokens it codes (never empty)."""

    step: Step
    tokens: torch.Tensor  # LongTensor [k_s]


@dataclass(frozen=True)
class StepTables:
    """One step's symbol distributions: float32 probabilities and the integer tables coded with."""

    probs: np.ndarray  # float32 [nW * k_s, A]
    freqs: np.ndarray  # integer [nW * k_s, A], rows sum to 2**PRECISION


@dataclass(frozen=True)
class CodedTokens:
    """:meth:`RCM.encode` result: the payload and what the container and the reports need."""

    payload: bytes
    symbols: np.ndarray  # int64 [n], every coded symbol in coding order (the container checksums them)
    estimated_bits: float  # sum of -log2 p(symbol) under the float probabilities
    table_bits: float  # the same under the integer tables (what the coder pays, before termination)


def coding_dtype(portable: bool) -> torch.dtype:
    """dtype of the known bits fed to the coding network: float64 for the portable tables."""
    return torch.float64 if portable else torch.float32


def coding_twin(module: nn.Module, portable: bool) -> nn.Module:
    """The module that builds the coding tables: a float64 copy for portable tables (file format
    version 4: ``mrt.entropy.portable``), else the module itself (float32 probabilities, versions 1-3)."""
    return copy.deepcopy(module).double().eval() if portable else module


def tables_of_logits(logits: torch.Tensor, alphabet: int, portable: bool) -> StepTables:
    """One step's tables from its logits [..., A] (moved to the last axis): the portable rule of
    float64 logits, or the float32 softmax + :func:`quantize_pmf` of versions 1-3."""
    flat = logits.reshape(-1, alphabet)
    if portable:
        if flat.dtype != torch.float64:
            raise ValueError("portable tables need the float64 coding twin (coding_twin)")
        return StepTables(*portable_tables(flat.numpy(), PRECISION))
    probs = torch.softmax(flat.float(), dim=-1).numpy()
    return StepTables(probs, quantize_pmf(probs, PRECISION))


def encode_plan(
    plan: list[PlannedStep],
    tables_of: Callable[[PlannedStep], StepTables],
    symbols_of: Callable[[PlannedStep], np.ndarray],
) -> CodedTokens:
    """Range-code the symbols of every planned step with that step's tables, in plan order.

    The one encoding loop of the context models (the RCM and ``mrt.models.context2d``): the
    tables come from the symbols coded before (``tables_of``), computed with one thread.
    """
    encoder = SymbolEncoder()
    ordered: list[np.ndarray] = []
    est = table = 0.0
    with one_thread():
        for planned in plan:
            tables = tables_of(planned)
            syms = symbols_of(planned)
            encoder.encode(syms, tables.freqs)
            ordered.append(syms)
            est += float(-np.log2(tables.probs[np.arange(len(syms)), syms].astype(np.float64)).sum())
            table += estimate_bits(syms, tables.freqs)
    coded = np.concatenate(ordered) if ordered else np.zeros(0, np.int64)
    return CodedTokens(encoder.finish(), coded, est, table)


class RCM(nn.Module):
    """Context model over LFQ tokens [B, nW, K, d] (K may be any number up to ``cfg.n_tokens``)."""

    def __init__(self, cfg: MRTConfig) -> None:
        super().__init__()
        r = cfg.rcm
        self.bits = cfg.token_bits
        factorized = r.context == "factorized"
        self.groups = r.groups
        self.passes = r.passes
        self.group_bits = cfg.group_bits
        self.alphabet = 2**self.group_bits
        # MLP(c1, c2) and the Bi-RWKV mixer: not built for the factorized prior (nothing to mix)
        self.expand = None if factorized else MLP(self.bits, r.dim, init="fan_in")
        self.token_index = nn.Embedding(cfg.n_tokens, r.dim)
        self.step_embed = nn.Embedding(r.passes * r.groups, r.dim)
        n_blocks = 0 if factorized else r.depth
        self.blocks = nn.ModuleList(BiRWKVBlock(r.dim, layer_id=i, n_layers=r.depth) for i in range(n_blocks))
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

    def plan(self, k: int, steps: list[Step] | None = None) -> list[PlannedStep]:
        """The steps (default: all) that code something when windows carry ``k`` tokens, in order."""
        chosen = self.steps() if steps is None else steps
        planned = [PlannedStep(s, self.pass_tokens(k, s.pass_index)) for s in chosen]
        return [p for p in planned if len(p.tokens) > 0]

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
        h = self._context(known) + self.token_index.weight[:k] + self.step_embed.weight[step.index]
        logits = self._mix_reduce(h.reshape(b, n_win * k, -1))  # one 1-D sequence over all windows
        return logits.reshape(b, n_win, k, self.groups, self.alphabet)[..., step.group, :]

    def _context(self, known: torch.Tensor) -> torch.Tensor:
        """The known bits [..., d] lifted to [..., dim] (zeros for the factorized prior)."""
        if self.expand is None:  # factorized prior
            return known.new_zeros(*known.shape[:-1], self.token_index.embedding_dim)
        return self.expand(known)

    def _mix_reduce(self, h: torch.Tensor) -> torch.Tensor:
        """[N, T, dim] sequences -> logits [N, T, G * A]: Bi-RWKV over the sequence (not for the
        factorized prior, whose logits must depend on the token index and step only)."""
        for block in self.blocks:  # none for the factorized prior
            h = block(h)
        return self.reduce(self.norm(h))

    def symbols(self, bits01: torch.Tensor) -> torch.Tensor:
        """LFQ-E per group: {0,1} bits [..., d] -> integer symbols [..., G] (bit j of a group has weight 2^j)."""
        return bits_to_int(bits01.reshape(*bits01.shape[:-1], self.groups, self.group_bits))

    def bits_of(self, symbols: torch.Tensor) -> torch.Tensor:
        """LFQ-D per group: integer symbols [..., G] -> {0,1} bits [..., d]."""
        return int_to_bits(symbols, self.group_bits).reshape(*symbols.shape[:-1], self.bits)

    def rate_bits(self, bits_pm1: torch.Tensor, steps: list[Step] | None = None) -> torch.Tensor:
        """Training rate: cross-entropy in bits per image [B] of coding the symbols of ``steps``.

        ``steps`` defaults to all steps (the exact rate of the image). The steps run in one batched
        call (steps folded into the batch); :meth:`encode` runs them one by one over the same
        :meth:`plan`, which gives the same values up to float rounding. Training may pass a random
        subset and rescale (an unbiased estimate at a fraction of the cost).
        """
        b, n_win, k, d = bits_pm1.shape
        plan = self.plan(k, steps)
        total = bits_pm1.new_zeros(b)
        if not plan:
            return total
        masks = torch.stack([self.known_mask(k, p.step) for p in plan]).to(bits_pm1)  # [S, K, d]
        known = bits_pm1[None] * masks[:, None, None]  # [S, B, nW, K, d]
        step_ids = torch.tensor([p.step.index for p in plan], device=bits_pm1.device)
        h = self._context(known) + self.token_index.weight[:k] + self.step_embed(step_ids)[:, None, None, None]
        logits = self._mix_reduce(h.reshape(len(plan) * b, n_win * k, -1))
        logits = logits.reshape(len(plan), b, n_win, k, self.groups, self.alphabet)
        symbols = self.symbols((bits_pm1 > 0).long())  # [B, nW, K, G]
        log2 = torch.log(torch.tensor(2.0))
        for row, p in enumerate(plan):
            tok = p.tokens.to(bits_pm1.device)
            lg = logits[row][:, :, tok, p.step.group]  # [B, nW, k_s, A]
            target = symbols[:, :, tok, p.step.group]
            nll = F.cross_entropy(lg.reshape(-1, self.alphabet).float(), target.reshape(-1), reduction="none")
            total = total + nll.reshape(b, -1).sum(1) / log2
        return total

    # ----- coding: bits <-> bytes through one table-building step -----
    def step_tables(self, known_pm1: torch.Tensor, planned: PlannedStep) -> StepTables:
        """Tables of one step from the bits known before it, ``known_pm1``: [1, nW, K, d] (+-1, 0 unknown).

        The single place where probabilities become integer tables: encoder and decoder both call
        it with the same known bits, so they build identical tables. On a float64 twin
        (:func:`coding_twin`) with float64 bits it builds the portable tables of version 4.
        """
        logits = self.step_logits(known_pm1, planned.step)[0][:, planned.tokens]  # [nW, k_s, A]
        return tables_of_logits(logits, self.alphabet, portable=logits.dtype == torch.float64)

    @torch.inference_mode()
    def encode(self, bits01: torch.Tensor, portable: bool = False) -> CodedTokens:
        """{0,1} token bits [nW, K, d] -> range-coded payload (+ coded symbols and size estimates).

        ``portable``: tables by the machine-independent rule of file format version 4 (a float64
        twin of this RCM computes the logits); else the float32 rule of versions 1-3.
        """
        n_win, k, _ = bits01.shape
        net = coding_twin(self, portable)
        bits_pm1 = bits01[None].to(coding_dtype(portable)) * 2.0 - 1.0  # [1, nW, K, d]
        symbols = self.symbols(bits01)  # [nW, K, G]
        return encode_plan(
            self.plan(k),
            lambda planned: net.step_tables(bits_pm1, planned),
            lambda planned: symbols[:, planned.tokens, planned.step.group].reshape(-1).numpy(),
        )

    @torch.inference_mode()
    def decode(self, payload: bytes, n_windows: int, k: int, portable: bool = False) -> tuple[torch.Tensor, np.ndarray]:
        """Payload -> ({0,1} token bits [nW, k, d] int64, coded symbols in coding order).

        ``portable`` as in :meth:`encode`. Raises ``BitstreamError`` when the payload is corrupt,
        truncated or longer than coded.
        """
        net = coding_twin(self, portable)
        known = torch.zeros(1, n_windows, k, self.bits, dtype=coding_dtype(portable))  # +-1 once decoded, 0 before
        symbols = torch.zeros(n_windows, k, self.groups, dtype=torch.int64)
        decoder = SymbolDecoder(payload)
        ordered: list[np.ndarray] = []
        try:
            with one_thread():
                for planned in self.plan(k):
                    tok, g = planned.tokens, planned.step.group
                    syms = decoder.decode(net.step_tables(known, planned).freqs)
                    ordered.append(syms)
                    sym_t = torch.from_numpy(syms.astype(np.int64)).reshape(n_windows, len(tok))
                    symbols[:, tok, g] = sym_t
                    group = slice(g * self.group_bits, (g + 1) * self.group_bits)
                    known[0, :, tok, group] = int_to_bits(sym_t, self.group_bits).to(known.dtype) * 2.0 - 1.0
                decoder.finish()
        except (ValueError, IndexError, OverflowError) as err:
            raise BitstreamError(f"corrupt or truncated file ({err})") from None
        coded = np.concatenate(ordered) if ordered else np.zeros(0, np.int64)
        return self.bits_of(symbols), coded
