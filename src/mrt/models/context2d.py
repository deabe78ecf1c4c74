"""The 2-D latent codec's entropy model: checkerboard x channel-group context, and its coding.

The latents are LFQ codes on a 2-D grid at 1/16 resolution, ``d`` bits per latent, split into
``K`` channel groups of ``d/K`` bits; one group of one latent is one integer symbol (bits ->
integer with :func:`mrt.blocks.lfq.bits_to_int`, alphabet ``A = 2**(d/K)``). The model sees one
``window x window`` block of ``c x c`` latents at a time (``c = window / 16``), windows folded
into the batch. Coding takes ``S = K * passes`` steps, group-major (ELIC-style spatial-channel
context): step ``s = g * passes + p`` codes group ``g`` of the latents of pass ``p`` (passes = 2:
anchors ``(y + x)`` even, then non-anchors; passes = 1: all latents at once). Before step ``s``
the decoder knows every earlier group of every latent and group ``g`` of the earlier passes, so
a group's probabilities never depend on how many groups a file codes: the rate of ``k`` groups
is the sum of the first ``k`` groups' rates.

Network (one for every step): the known bits as +-1 planes (unknown = 0) ``[N, d, c, c]`` ->
3x3 conv + step embedding -> ``depth`` residual conv blocks -> 1x1 conv to the logits of every
group; a step reads its group. Decoding takes ``S_k = k * passes`` network calls per image,
whatever its size.

Layout of a window's bits, shared with :mod:`mrt.models.latent2d` (the codec treats a window's
channel groups as its "tokens", so rate control keeps the first ``k``): ``[..., k, c*c*gb]``
with index ``[g, (y*c + x)*gb + j]`` = bit ``j`` of group ``g`` of latent ``(y, x)``.
Tables come from float32 probabilities computed with one thread (``one_thread``) through
:meth:`ContextModel2D.step_tables`, the one place where they become integer tables.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mrt.blocks.lfq import bits_to_int, int_to_bits
from mrt.entropy import SymbolDecoder
from mrt.errors import BitstreamError
from mrt.models.config import MRTConfig
from mrt.models.generator import ResBlock2d
from mrt.models.rcm import CodedTokens, PlannedStep, Step, StepTables, coding_dtype, coding_twin, encode_plan, tables_of_logits
from mrt.models.threads import one_thread

STRIDE = 16  # pixels per latent of the 2-D codec (the stage-0 codes' resolution)


class ContextModel2D(nn.Module):
    """Context model over window bits ``[B, nW, k, c*c*gb]`` (k <= K channel groups), see module docstring."""

    def __init__(self, cfg: MRTConfig) -> None:
        super().__init__()
        r = cfg.rcm
        self.cells = cfg.window // STRIDE  # c
        self.groups = cfg.n_tokens  # K
        self.group_bits = cfg.group_bits  # gb
        self.alphabet = 2**self.group_bits
        self.passes = r.passes
        self.bits = cfg.target.bits  # d = K * gb
        self.stem = nn.Conv2d(self.bits, r.dim, 3, padding=1)
        self.step_embed = nn.Embedding(self.groups * self.passes, r.dim)
        self.blocks = nn.Sequential(*[ResBlock2d(r.dim) for _ in range(r.depth)])
        self.head = nn.Sequential(nn.GroupNorm(8, r.dim), nn.GELU(), nn.Conv2d(r.dim, self.groups * self.alphabet, 1))
        nn.init.zeros_(self.head[-1].weight)  # start from uniform tables
        nn.init.zeros_(self.head[-1].bias)

    # ----- the coding order -----
    @property
    def n_steps(self) -> int:
        return self.groups * self.passes

    def steps(self) -> list[Step]:
        return [Step(g * self.passes + p, p, g) for g in range(self.groups) for p in range(self.passes)]

    def pass_positions(self, pass_index: int) -> torch.Tensor:
        """Flat in-window indices ``y * c + x`` of the latents of a pass, in raster order (LongTensor)."""
        y, x = torch.meshgrid(torch.arange(self.cells), torch.arange(self.cells), indexing="ij")
        return torch.nonzero(((y + x) % self.passes == pass_index).reshape(-1)).reshape(-1)

    def plan(self, k: int, steps: list[Step] | None = None) -> list[PlannedStep]:
        """The steps (default: all) that code something when ``k`` groups are coded, in coding order."""
        chosen = self.steps() if steps is None else sorted(steps, key=lambda s: s.index)
        return [PlannedStep(s, self.pass_positions(s.pass_index)) for s in chosen if s.group < k]

    def known_mask(self, step: Step) -> torch.Tensor:
        """[d, c, c] float mask of the bits known before ``step`` (1 = known)."""
        c = self.cells
        y, x = torch.meshgrid(torch.arange(c), torch.arange(c), indexing="ij")
        earlier_pass = ((y + x) % self.passes < step.pass_index).float()  # [c, c]
        group = torch.arange(self.groups)[:, None, None]  # [K, 1, 1]
        mask = (group < step.group).float() + (group == step.group).float() * earlier_pass  # [K, c, c]
        return mask[:, None].expand(self.groups, self.group_bits, c, c).reshape(self.bits, c, c)

    # ----- layout: window bits <-> conv planes and symbols -----
    def planes(self, bits_pm1: torch.Tensor) -> torch.Tensor:
        """Window bits [B, nW, k, c*c*gb] -> planes [B*nW, d, c, c] (groups >= k are 0: unknown)."""
        b, n_win, k, _ = bits_pm1.shape
        c, gb = self.cells, self.group_bits
        x = bits_pm1.reshape(b * n_win, k, c, c, gb).permute(0, 1, 4, 2, 3)  # [N, k, gb, c, c]
        x = x.reshape(b * n_win, k * gb, c, c)
        return F.pad(x, (0, 0, 0, 0, 0, (self.groups - k) * gb))

    def symbols(self, bits01: torch.Tensor) -> torch.Tensor:
        """{0,1} window bits [..., k, c*c*gb] -> symbols [..., k, c*c] (bit j of a group has weight 2^j)."""
        return bits_to_int(bits01.reshape(*bits01.shape[:-1], self.cells**2, self.group_bits))

    def bits_of(self, symbols: torch.Tensor) -> torch.Tensor:
        """Symbols [..., k, c*c] -> {0,1} window bits [..., k, c*c*gb]."""
        return int_to_bits(symbols, self.group_bits).reshape(*symbols.shape[:-1], -1)

    def logits(self, planes: torch.Tensor, step_ids: torch.Tensor) -> torch.Tensor:
        """Masked planes [N, d, c, c] and step indices [N] -> logits [N, K, A, c*c] of every group."""
        h = self.stem(planes) + self.step_embed(step_ids)[:, :, None, None]
        out = self.head(self.blocks(h))  # [N, K*A, c, c]
        return out.reshape(planes.shape[0], self.groups, self.alphabet, self.cells**2)

    # ----- training rate -----
    def rate_bits(self, bits_pm1: torch.Tensor, steps: list[Step] | None = None) -> torch.Tensor:
        """Cross-entropy in bits per image [B] of coding the window bits [B, nW, k, c*c*gb] (+-1).

        ``steps`` defaults to all steps; the planned steps run in one batched call (steps folded
        into the batch); :meth:`encode` runs them one by one over the same :meth:`plan`.
        """
        b, n_win, k, _ = bits_pm1.shape
        plan = self.plan(k, steps)
        total = bits_pm1.new_zeros(b, dtype=torch.float32)
        if not plan:
            return total
        planes = self.planes(bits_pm1)  # [N, d, c, c]
        n = planes.shape[0]
        masks = torch.stack([self.known_mask(p.step) for p in plan]).to(planes.device) > 0  # [S, d, c, c]
        known = torch.where(masks[:, None], planes[None], torch.zeros((), dtype=planes.dtype, device=planes.device))
        ids = torch.tensor([p.step.index for p in plan], device=planes.device).repeat_interleave(n)
        logits = self.logits(known.reshape(len(plan) * n, *planes.shape[1:]), ids)
        logits = logits.reshape(len(plan), n, self.groups, self.alphabet, -1)  # [S, N, K, A, c*c]
        symbols = self.symbols((bits_pm1 > 0).long()).reshape(n, k, -1)  # [N, k, c*c]
        for row, p in enumerate(plan):
            pos = p.tokens.to(planes.device)
            lg = logits[row, :, p.step.group][:, :, pos]  # [N, A, n_pos]
            target = symbols[:, p.step.group, pos]  # [N, n_pos]
            nll = F.cross_entropy(lg.float(), target, reduction="none")
            total = total + nll.reshape(b, -1).sum(1) / float(np.log(2.0))
        return total

    # ----- coding: bits <-> bytes through one table-building step -----
    def step_tables(self, known_pm1: torch.Tensor, planned: PlannedStep) -> StepTables:
        """Tables of one step from the window bits known before it, ``known_pm1`` [1, nW, k, c*c*gb] (+-1, 0 unknown).

        The single place where probabilities become integer tables: encoder and decoder both
        call it with the same known bits, so they build identical tables.
        """
        planes = self.planes(known_pm1)
        mask = self.known_mask(planned.step) > 0
        known = torch.where(mask, planes, torch.zeros((), dtype=planes.dtype))
        ids = torch.full((planes.shape[0],), planned.step.index, dtype=torch.long)
        lg = self.logits(known, ids)[:, planned.step.group][:, :, planned.tokens]  # [nW, A, n_pos]
        return tables_of_logits(lg.transpose(1, 2), self.alphabet, portable=lg.dtype == torch.float64)

    @torch.inference_mode()
    def encode(self, bits01: torch.Tensor, portable: bool = False) -> CodedTokens:
        """{0,1} window bits [nW, k, c*c*gb] -> range-coded payload (+ coded symbols and size estimates)."""
        k = bits01.shape[1]
        net = coding_twin(self, portable)  # portable: file format version 4 (mrt.models.rcm.coding_twin)
        bits_pm1 = bits01[None].to(coding_dtype(portable)) * 2.0 - 1.0
        symbols = self.symbols(bits01)  # [nW, k, c*c]
        return encode_plan(
            self.plan(k),
            lambda planned: net.step_tables(bits_pm1, planned),
            lambda planned: symbols[:, planned.step.group, planned.tokens].reshape(-1).numpy(),
        )

    @torch.inference_mode()
    def decode(self, payload: bytes, n_windows: int, k: int, portable: bool = False) -> tuple[torch.Tensor, np.ndarray]:
        """Payload -> ({0,1} window bits [nW, k, c*c*gb] int64, coded symbols in coding order).

        Raises ``BitstreamError`` when the payload is corrupt, truncated or longer than coded.
        """
        c2, gb = self.cells**2, self.group_bits
        net = coding_twin(self, portable)
        known = torch.zeros(1, n_windows, k, c2 * gb, dtype=coding_dtype(portable))  # +-1 once decoded
        view = known.view(n_windows, k, c2, gb)
        symbols = torch.zeros(n_windows, k, c2, dtype=torch.int64)
        decoder = SymbolDecoder(payload)
        ordered: list[np.ndarray] = []
        try:
            with one_thread():
                for planned in self.plan(k):
                    pos, g = planned.tokens, planned.step.group
                    syms = decoder.decode(net.step_tables(known, planned).freqs)
                    ordered.append(syms)
                    sym_t = torch.from_numpy(syms.astype(np.int64)).reshape(n_windows, len(pos))
                    symbols[:, g, pos] = sym_t
                    view[:, g, pos] = int_to_bits(sym_t, gb).to(known.dtype) * 2.0 - 1.0
                decoder.finish()
        except (ValueError, IndexError, OverflowError) as err:
            raise BitstreamError(f"corrupt or truncated file ({err})") from None
        coded = np.concatenate(ordered) if ordered else np.zeros(0, np.int64)
        return self.bits_of(symbols), coded
