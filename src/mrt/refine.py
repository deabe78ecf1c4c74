"""Encoder-side token search ("refinement"): for one image, the bits that the decoder renders best.

The MRT encoder was trained in stage 1 to predict the stage-0 codes; stage 2 then trained the
decoder side with the encoder frozen. So the encoder's tokens are good but not the ones the
shipped decoder renders best. A refined encode starts from the encoder's continuous tokens
``z`` (before LFQ, [1, nW, k, d]) and runs Adam on ``z`` through the decoder, the latent decoder
and the RGB decoder (frozen), against the image itself; LFQ's straight-through sign means every
step decodes the real hard bits, so each step's loss is the loss of a file that could be written.
The refined bits are coded as usual: the file format and the decoder do not change, and any
decoder reads a refined file. It is an encoder option, like a slower encoder preset of a
classical codec: it costs encode time (about 1 s a step at 768x512 with the default objective,
0.6 s with MSE alone, 2 threads: docs/benchmarks_refine.md) and nothing at decode time. (Content-adaptive latent optimisation: Campos et al. 2019;
Yang et al. 2020.)

Objective: ``w_mse * MSE + w_lpips * LPIPS-alex + w_rate * bpp`` on the coded image (the
downscaled copy when the file is scaled), pixels clamped to [0, 1] as the decoder writes them.
Default: stage 2's pixel and LPIPS weights (20, 1) without its DISTS term (the costliest
network), so DISTS is a metric the search does not optimise. ``w_lpips=0`` (MSE alone) needs no
metric network, is ~3x faster a step, and trades perceptual quality for PSNR (Kodak, k16:
kodim04 +1.8 dB, DISTS +0.041). ``w_rate`` adds the entropy model's estimated bits.
``w_dists`` adds DISTS (stage 2's third perceptual term), computed on one random
``dists_crop``-pixel square of the decoded image a step (the whole image costs ~4 s a step at
768x512, a 256-px crop ~0.5 s): the texture statistics that DISTS rewards, at the price that
DISTS is then a metric the search optimises on the image itself (FID is not).

Images larger than ``TILE_PIXELS``: the RGB decoder runs (with gradients) on one crop of
``crop`` pixels a step, chosen by a generator seeded from ``seed`` (memory stays bounded); the
tokens, decoder and latent decoder see the whole image. Because crop losses are not comparable
across steps, the last step's bits are kept there (and whenever the DISTS crop is smaller than
the image); otherwise the step with the lowest loss. The result depends on the machine and
thread count (float rounding decides close bits); decoding a refined file does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from mrt.models.codec_model import TILE_PIXELS, MRTCodecModel, positional, tile_halo
from mrt.models.taef2 import LATENT_STRIDE
from mrt.models.threads import one_thread

__all__ = ["RefineResult", "RefineSettings", "TokenRefiner"]


@dataclass(frozen=True)
class RefineSettings:
    """How a refined encode searches (see module docstring); ``steps=0`` is the plain encoder."""

    steps: int = 30
    lr: float = 0.05  # Adam step on the pre-LFQ tokens (their scale is ~1)
    w_mse: float = 20.0  # the stage-2 pixel weight
    w_lpips: float = 1.0  # LPIPS-alex, as in stage 2 (loads the metric weights); 0: MSE alone
    w_rate: float = 0.0  # per bit per pixel of the entropy model's estimate
    w_dists: float = 0.0  # DISTS on one random crop a step (loads VGG16; ~0.5 s a step more)
    dists_crop: int = 256  # side of that crop (pixels); the whole image when smaller
    crop: int = 512  # RGB-decoder crop side (pixels, multiple of 8) for images over TILE_PIXELS
    seed: int = 0  # crop positions (large images only)

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"refinement steps must be >= 0, got {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"refinement learning rate must be > 0, got {self.lr}")
        if min(self.w_mse, self.w_lpips, self.w_rate, self.w_dists) < 0 or self.w_mse + self.w_lpips == 0:
            raise ValueError("refinement weights must be >= 0, with w_mse or w_lpips > 0")
        if self.dists_crop < 64:
            raise ValueError(f"refinement DISTS crop must be >= 64 pixels, got {self.dists_crop}")
        if self.crop < 64 or self.crop % LATENT_STRIDE:
            raise ValueError(f"refinement crop must be a multiple of {LATENT_STRIDE} >= 64, got {self.crop}")

    @property
    def label(self) -> str:
        """Short name for result tables: ``refine30`` (default objective), ``refine40-lpips0`` (MSE alone), ..."""
        out = f"refine{self.steps}"
        out += f"-lpips{self.w_lpips:g}" if self.w_lpips != 1 else ""
        out += f"-mse{self.w_mse:g}" if self.w_mse != 20 else ""
        out += f"-lr{self.lr:g}" if self.lr != 0.05 else ""
        out += f"-dists{self.w_dists:g}" if self.w_dists else ""
        out += f"-dcrop{self.dists_crop}" if self.w_dists and self.dists_crop != 256 else ""
        return out + (f"-rate{self.w_rate:g}" if self.w_rate else "")


@dataclass(frozen=True)
class RefineResult:
    """The chosen bits and how the search went."""

    bits: torch.Tensor  # {0,1} int64 [nW, k, d]
    losses: tuple[float, ...]  # objective of the bits of step 0 (the encoder's), 1, ..., steps
    chosen_step: int  # which step's bits were kept
    flipped: int  # bits that differ from the encoder's
    seconds: float

    @property
    def initial_loss(self) -> float:
        return self.losses[0]

    @property
    def chosen_loss(self) -> float:
        return self.losses[self.chosen_step]


class TokenRefiner:
    """Runs :class:`RefineSettings` searches; holds the LPIPS network once loaded (batch encodes)."""

    def __init__(self, settings: RefineSettings) -> None:
        self.settings = settings
        self._lpips: nn.Module | None = None
        self._dists: nn.Module | None = None

    def _perceptual(self) -> nn.Module:
        if self._lpips is None:
            from mrt.metrics.lpips import LPIPS  # noqa: PLC0415 (metric weights: only when asked)

            self._lpips = LPIPS(net="alex").requires_grad_(False).eval()
        return self._lpips

    def _texture(self) -> nn.Module:
        if self._dists is None:
            from mrt.metrics.dists import DISTS  # noqa: PLC0415 (metric weights: only when asked)

            self._dists = DISTS().requires_grad_(False).eval()
        return self._dists

    def refine(
        self,
        model: MRTCodecModel,
        x: torch.Tensor,
        height: int,
        width: int,
        k: int,
        accept: Callable[[torch.Tensor], bool] | None = None,
    ) -> RefineResult:
        """Search bits for ``x`` ([1, 3, Hp, Wp] in [0, 1], padded to whole windows; the image is
        its top-left ``height`` x ``width``) with ``k`` tokens per window.

        ``accept(bits)``: a constraint on the kept bits (a byte budget); candidates are tried from
        the lowest loss and the encoder's own bits are the fallback (the caller knows they pass).
        """
        s = self.settings
        t0 = time.perf_counter()
        geo = model.geometry(height, width)
        with torch.no_grad(), one_thread():  # the same tokens as MRTCodecModel.encode_bits
            z0 = model.encoder(model.analyse(x))[:, :, :k].float()  # [1, nW, k, d]
        bits0 = (z0 >= 0).to(torch.int64)[0]
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=s.lr)
        large = x.shape[-1] * x.shape[-2] > TILE_PIXELS
        stochastic = large or (s.w_dists > 0 and max(height, width) > s.dists_crop)
        gen = torch.Generator().manual_seed(s.seed)
        losses: list[float] = []
        kept: list[torch.Tensor] = []
        for step in range(s.steps + 1):
            with torch.enable_grad():
                q = model.lfq(z).quantized  # hard +-1 values, identity gradient
                codes = model.codes_from_logits(model.decoder(q, geo.rows, geo.cols))
                latent = model.synthesize_latent(codes)  # [1, 32, Hp/8, Wp/8]
                rgb, ref = self._render(model, latent, x, height, width, gen if large else None)
                loss = self._objective(rgb, ref, model, q, height * width, gen)
            losses.append(float(loss.detach()))
            kept.append((z.detach() >= 0).to(torch.int64)[0])
            if step == s.steps:
                break
            (grad,) = torch.autograd.grad(loss, [z])
            z.grad = grad
            opt.step()
        if stochastic:  # losses of different crops are not comparable: the last step
            order = [s.steps]
        else:
            order = sorted(range(len(losses)), key=lambda i: (losses[i], i))
        chosen = 0
        for i in order[:4]:
            if accept is None or accept(kept[i]):
                chosen = i
                break
        bits = kept[chosen]
        return RefineResult(bits, tuple(losses), chosen, int((bits != bits0).sum()), time.perf_counter() - t0)

    def _render(
        self, model: MRTCodecModel, latent: torch.Tensor, x: torch.Tensor, height: int, width: int,
        gen: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(decoded RGB, reference) over the image, or over one random crop when ``gen`` is given."""
        net = model.generator.rgb_decoder
        if gen is None:
            return net(latent)[:, :, :height, :width].clamp(0.0, 1.0), x[:, :, :height, :width]
        c = self.settings.crop // LATENT_STRIDE
        m = tile_halo(net) // LATENT_STRIDE
        hc, wc = -(-height // LATENT_STRIDE), -(-width // LATENT_STRIDE)  # latent cells holding the image
        y0, x0 = _random_start(hc, c, gen), _random_start(wc, c, gen)
        ya, xa = max(0, y0 - m), max(0, x0 - m)
        crop = latent[:, :, ya : min(hc, y0 + c) + m, xa : min(wc, x0 + c) + m]
        out = net(crop, (ya, xa)) if positional(net) else net(crop)
        oy, ox = (y0 - ya) * LATENT_STRIDE, (x0 - xa) * LATENT_STRIDE
        py, px = y0 * LATENT_STRIDE, x0 * LATENT_STRIDE
        ph, pw = min(self.settings.crop, height - py), min(self.settings.crop, width - px)
        rgb = out[:, :, oy : oy + ph, ox : ox + pw].clamp(0.0, 1.0)
        return rgb, x[:, :, py : py + ph, px : px + pw]

    def _objective(
        self, rgb: torch.Tensor, ref: torch.Tensor, model: MRTCodecModel, q: torch.Tensor, pixels: int,
        gen: torch.Generator,
    ) -> torch.Tensor:
        s = self.settings
        loss = s.w_mse * (rgb - ref).square().mean()
        if s.w_lpips:
            loss = loss + s.w_lpips * self._perceptual()(rgb, ref).mean()
        if s.w_dists:
            loss = loss + s.w_dists * self._texture()(*random_crop(rgb, ref, s.dists_crop, gen)).mean()
        if s.w_rate:
            loss = loss + s.w_rate * model.rate(q).sum() / pixels
        return loss


def random_crop(
    a: torch.Tensor, b: torch.Tensor, side: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random ``side`` x ``side`` window of two [B, C, H, W] tensors (all of an axis shorter than ``side``)."""
    y0, x0 = _random_start(a.shape[-2], side, gen), _random_start(a.shape[-1], side, gen)
    win = (..., slice(y0, y0 + side), slice(x0, x0 + side))
    return a[win], b[win]


def _random_start(extent: int, side: int, gen: torch.Generator) -> int:
    """Where a window of ``side`` starts along an axis of ``extent`` (0 when it does not fit)."""
    return int(torch.randint(0, max(1, extent - side + 1), (1,), generator=gen))
