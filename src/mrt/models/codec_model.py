"""The complete MRT codec network: analysis (frozen TAEF2 encoder), MRT encoder, LFQ, RCM,
MRT decoder and pixel generator, with the image-level plumbing (padding to whole windows,
tiling of the full-resolution convolutions for large images, cropping back).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mrt.blocks.lfq import LFQ, LFQOutput
from mrt.models.config import MRTConfig
from mrt.models.generator import PixelGenerator
from mrt.models.geometry import Geometry
from mrt.models.inference import REFERENCE, ConvPlan, planned
from mrt.models.light_encoder import build_analysis
from mrt.models.mrt import MRTDecoder, MRTEncoder
from mrt.models.rcm import RCM, Step
from mrt.models.taef2 import LATENT_STRIDE
from mrt.models.threads import one_thread

# Full-resolution convolutions run on tiles once an image exceeds this many pixels, so that
# memory stays bounded (a 4K image would otherwise hold several GB of 64-channel activations).
TILE_PIXELS = 1024 * 1024
TILE = 512  # tile side in pixels (multiple of 16); a network may ask for another (``tile_side``)
HALO = 64  # context around each tile in pixels (multiple of 16)


def tile_side(net: nn.Module) -> int:
    """Tile side for ``net``: its ``tile_side`` attribute, else ``TILE``. The light networks take
    1024-px tiles (their activations are small): at 3840x2160 the light analysis ran 1.4x and the
    light RGB decoder 1.3x faster than on 512-px tiles, whose 64-px halos are a large share."""
    return int(getattr(net, "tile_side", TILE))


def tile_halo(net: nn.Module) -> int:
    """Tiling margin for ``net`` in pixels: its ``halo`` attribute (a light decoder with more blocks
    than the default reaches further), else ``HALO``."""
    return int(getattr(net, "halo", HALO))


def positional(net: nn.Module) -> bool:
    """Whether ``net``'s output depends on where its input lies in the image (its ``positional``
    attribute: a light decoder with noise inputs); such a net takes ``(input, origin)``."""
    return bool(getattr(net, "positional", False))


def apply_tiled(
    net: Callable[..., torch.Tensor],
    x: torch.Tensor,
    scale: float,
    unit: int,
    tile: int = TILE,
    halo: int = HALO,
    with_origin: bool = False,
) -> torch.Tensor:
    """Run a fully-convolutional ``net`` (output size = input size * scale) on overlapping tiles.

    ``x``: [B, C, H, W]; ``unit``: input pixels per TILE-pixel of image space (1 for pixels, 8
    for the 1/8 latent). Tiles are ``tile`` x ``tile`` image pixels with a ``halo``-pixel margin of
    context that is cut off after the net; the result depends only on the input, the tile side and
    the halo. ``with_origin``: ``net(tile, (row, column))`` is told where each tile starts in ``x``
    (a decoder with position-keyed noise), so that its tiles join into the untiled result.
    """
    b, _, h, w = x.shape
    t, m = tile // unit, halo // unit
    rows = []
    for y0 in range(0, h, t):
        cols = []
        for x0 in range(0, w, t):
            ya, yb = max(0, y0 - m), min(h, y0 + t + m)
            xa, xb = max(0, x0 - m), min(w, x0 + t + m)
            out = net(x[:, :, ya:yb, xa:xb], (ya, xa)) if with_origin else net(x[:, :, ya:yb, xa:xb])
            oy, ox = round((y0 - ya) * scale), round((x0 - xa) * scale)
            oh, ow = round(min(t, h - y0) * scale), round(min(t, w - x0) * scale)
            cols.append(out[:, :, oy : oy + oh, ox : ox + ow])
        rows.append(torch.cat(cols, dim=3))
    return torch.cat(rows, dim=2)


@dataclass
class CodecOutput:
    """Everything a training task needs from one forward pass (``MRTCodecModel.forward``)."""

    tokens: LFQOutput  # [B, nW, k, d]
    rate_bits: torch.Tensor  # [B] bits per image (an unbiased estimate when a subset of steps was asked)
    features: torch.Tensor  # [B, nW, P, D] decoder patch features (the preview head reads them)
    target_logits: torch.Tensor  # [B, target_bits, H/16, W/16]
    codes: torch.Tensor  # [B, target_bits, H/16, W/16] what the generator consumed (soft or hard)
    latent_pred: torch.Tensor  # [B, 32, H/8, W/8] generator's TAEF2 latent
    recon: torch.Tensor | None  # [B, 3, H, W] unclamped RGB (None when pixels were not requested)
    geometry: Geometry

    @property
    def bpp(self) -> torch.Tensor:
        """[B] bits per pixel of the (estimated) rate."""
        return self.rate_bits / self.geometry.pixels


class ImageCodecModel(nn.Module):
    """Image-level plumbing shared by the codec networks (MRT, and ``mrt.models.latent2d``).

    Subclasses set ``cfg`` (its ``window``), ``k_code``, ``analysis`` (the frozen TAEF2 encoder or its light student)
    and ``generator`` (the pixel generator), and define ``encode_bits`` / ``decode_bits``.
    """

    cfg: MRTConfig
    k_code: int
    analysis: nn.Module  # TAEF2Encoder, or mrt.models.light_encoder.LightEncoder (cfg.analysis)
    generator: PixelGenerator

    # precision and memory format of the analysis and the RGB decoder (``mrt.models.inference``);
    # the reference fp32 path unless a codec sets another (``Codec.set_inference``)
    conv_plan: ConvPlan = REFERENCE

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [0, 1] (H, W multiples of the window) -> TAEF2 latent [B, 32, H/8, W/8]."""
        net = planned(self.analysis, self.conv_plan)
        if x.shape[-1] * x.shape[-2] > TILE_PIXELS:
            return apply_tiled(net, x, 1 / LATENT_STRIDE, 1, tile_side(self.analysis))
        return net(x)

    def render(self, latent: torch.Tensor) -> torch.Tensor:
        """TAEF2 latent [B, 32, h, w] -> RGB [B, 3, 8h, 8w] (unclamped), tiled when large."""
        net = planned(self.generator.rgb_decoder, self.conv_plan)
        if latent.shape[-1] * latent.shape[-2] * LATENT_STRIDE**2 > TILE_PIXELS:
            rgb = self.generator.rgb_decoder
            return apply_tiled(net, latent, LATENT_STRIDE, LATENT_STRIDE, tile_side(rgb), tile_halo(rgb), positional(rgb))
        return net(latent)

    def geometry(self, height: int, width: int) -> Geometry:
        return Geometry(height, width, self.cfg.window)

    def image_to_tensor(self, img: np.ndarray) -> torch.Tensor:
        """uint8 [H, W, 3] -> float [1, 3, Hp, Wp] in [0, 1], edge-padded to whole windows."""
        geo = self.geometry(img.shape[0], img.shape[1])
        pad = ((0, geo.padded_height - geo.height), (0, geo.padded_width - geo.width), (0, 0))
        padded = np.pad(img, pad, mode="edge")
        return torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float() / 255.0

    def to_image(self, latent: torch.Tensor, height: int, width: int) -> np.ndarray:
        """Decoded TAEF2 latent [1, 32, Hp/8, Wp/8] -> uint8 image [height, width, 3] (rendered, cropped, rounded)."""
        rgb = self.render(latent)
        rgb = rgb[0, :, :height, :width].clamp(0.0, 1.0)
        return (rgb * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()

    def encode_bits(self, img: np.ndarray, k: int | None = None) -> torch.Tensor:
        """uint8 image [H, W, 3] -> {0,1} bits [1, nW, k, d] of the first ``k`` tokens per window."""
        raise NotImplementedError

    def decode_bits(self, bits01: torch.Tensor, height: int, width: int) -> np.ndarray:
        """{0,1} bits [1, nW, k, d] -> uint8 image [height, width, 3]."""
        raise NotImplementedError

    @torch.inference_mode()
    def reconstruct(self, img: np.ndarray) -> np.ndarray:
        """Eval-mode forward without entropy coding: what decompress(compress(img)) must return."""
        return self.decode_bits(self.encode_bits(img), img.shape[0], img.shape[1])


class MRTCodecModel(ImageCodecModel):
    """See module docstring. ``cfg.n_tokens`` latent tokens per window exist; ``k_code`` are coded."""

    def __init__(self, cfg: MRTConfig, k_code: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.k_code = cfg.n_tokens if k_code is None else k_code
        if not 1 <= self.k_code <= cfg.n_tokens:
            raise ValueError(f"k_code must be in 1..{cfg.n_tokens}")
        self.analysis = build_analysis(cfg.analysis).requires_grad_(False)
        self.encoder = MRTEncoder(cfg)
        # a light commitment: with the default 0.25 the 1-D tokens collapsed to one constant code early in training
        self.lfq = LFQ(cfg.token_bits, commit_weight=0.02)
        self.rcm = RCM(cfg)
        self.decoder = MRTDecoder(cfg)
        self.generator = PixelGenerator(cfg.target)

    # ----- building blocks shared by training and coding -----
    def quantize(self, latent: torch.Tensor, k: int) -> LFQOutput:
        """TAEF2 latent -> LFQ output over the first ``k`` tokens of every window, [B, nW, k, d]."""
        return self.lfq(self.encoder(latent)[:, :, :k])

    def codes_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Generator input: E[bit] = tanh(logit/2) (soft, differentiable) or sign(logit) (hard)."""
        if self.cfg.decode == "soft":
            return torch.tanh(logits * 0.5)
        return torch.where(logits >= 0, 1.0, -1.0).to(logits)

    def synthesize_latent(self, codes: torch.Tensor) -> torch.Tensor:
        return self.generator.latent_decoder(codes)

    def rate(self, tokens_pm1: torch.Tensor, steps: list[Step] | None = None) -> torch.Tensor:
        """Bits per image [B]: exact (all RCM steps) or, for a subset of ``steps``, rescaled to an unbiased estimate."""
        bits = self.rcm.rate_bits(tokens_pm1, steps)
        return bits if steps is None else bits * (self.rcm.n_steps / len(steps))

    def forward(
        self,
        latent: torch.Tensor,
        k: int | None = None,
        *,
        with_pixels: bool = False,
        rate_steps: list[Step] | None = None,
        train_encoder: bool = True,
        rate_to_encoder: bool = False,
    ) -> CodecOutput:
        """Training forward from a TAEF2 latent [B, 32, h, w] whose sides are whole windows.

        ``k``: tokens kept per window (nested dropout; default ``k_code``). ``rate_steps``: RCM steps
        whose rate is computed (None = all). ``train_encoder=False`` runs the encoder side without
        gradients (stage 2). ``rate_to_encoder``: let the rate gradient reach the encoder through
        LFQ's straight-through estimator (off by default: it would only push the tokens towards
        predictable, collapsed codes; rate points come from the number of tokens per window).
        """
        k = self.k_code if k is None else k
        geo = Geometry.of_latent((latent.shape[-2], latent.shape[-1]), self.cfg.window)
        if train_encoder:
            tokens = self.quantize(latent, k)
        else:
            with torch.no_grad():
                tokens = self.quantize(latent, k)
        rate = self.rate(tokens.quantized if rate_to_encoder else tokens.quantized.detach(), rate_steps)
        feats = self.decoder.features(tokens.quantized)
        logits = self.decoder.logits(feats, geo.rows, geo.cols)
        codes = self.codes_from_logits(logits)
        latent_pred = self.synthesize_latent(codes)
        recon = self.generator.rgb_decoder(latent_pred) if with_pixels else None
        return CodecOutput(tokens, rate, feats, logits, codes, latent_pred, recon, geo)

    # ----- image-level plumbing used by the codec (no gradients; see ImageCodecModel) -----
    @torch.inference_mode()
    def encode_bits(self, img: np.ndarray, k: int | None = None) -> torch.Tensor:
        """uint8 image [H, W, 3] -> {0,1} token bits [1, nW, k, d] (int64) of the first ``k`` (default ``k_code``) tokens."""
        latent = self.analyse(self.image_to_tensor(img))
        # the MRT encoder on one thread: its many small operations gain little from a second
        # thread and lose a lot when that thread waits for a busy core (docs/benchmarks.md); the
        # tokens then do not depend on the thread count either
        with one_thread():
            return self.quantize(latent, self.k_code if k is None else k).bits

    @torch.inference_mode()
    def decode_bits(self, bits01: torch.Tensor, height: int, width: int) -> np.ndarray:
        """{0,1} token bits [1, nW, k, d] -> uint8 image [height, width, 3]."""
        geo = self.geometry(height, width)
        tokens = bits01.float() * 2.0 - 1.0
        # tokens -> codes on one thread (many small operations), so that the decoded pixels do
        # not depend on the thread count; the RGB decoder (most of the time) keeps the caller's
        # threads (see one_thread)
        with one_thread():
            codes = self.codes_from_logits(self.decoder(tokens, geo.rows, geo.cols))
        # codes -> latent: one thread up to TILE_PIXELS; above, where it is 15-20% of a decode
        # (2.2 s at 3840x2160), the caller's threads. Its 1x1 convolutions add their bias after
        # (LatentDecoder), with which 1 and 2 threads gave the same bits at 1080p and 4K; below
        # ~256x256 they do not always, hence one thread there.
        with nullcontext() if geo.pixels > TILE_PIXELS else one_thread():
            latent = self.synthesize_latent(codes)
        return self.to_image(latent, height, width)
