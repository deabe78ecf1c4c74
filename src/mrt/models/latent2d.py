"""The 2-D latent codec: the stage-0 discrete autoencoder made a codec (a baseline beside MRT).

    image -> frozen TAEF2 encoder (1/8, 32 ch) -> target encoder -> LFQ: d bits per latent at 1/16
    (256 latents per 256 x 256 image, as GLC / MS-ILLM) -> the first k of K channel groups coded
    with the checkerboard x channel-group context model (``mrt.models.context2d``)
    -> decoder: codes (groups >= k set to 0, "unknown") -> the pixel generator (latent decoder,
    TAEF2-architecture RGB decoder) -> crop.

Rate points: ``k`` (1..K) channel groups coded per latent; training drops the trailing groups at
random (nested dropout over channel groups), so one set of weights serves every rate, the leading
groups carry the most, and the generator learns to render from partial codes. This is MRT's
nested tokens with "tokens" = channel groups, so the codec's rate control, container (the
header's ``k``) and model files work unchanged. The network exposes what ``mrt.codec.Codec`` uses
of ``MRTCodecModel``: ``encode_bits``, ``decode_bits``, ``reconstruct``, ``geometry``, ``k_code``,
``cfg.n_tokens`` (= K) and ``rcm`` (the context model: ``encode`` / ``decode`` / ``rate_bits``).
Config: ``MRTConfig(kind="latent2d")`` (see its docstring for the fields it reads).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mrt.blocks.lfq import LFQ, LFQOutput
from mrt.errors import ConfigError
from mrt.models.codec_model import ImageCodecModel
from mrt.models.config import MRTConfig
from mrt.models.context2d import STRIDE, ContextModel2D
from mrt.models.generator import PixelGenerator, TargetEncoder
from mrt.models.geometry import Geometry
from mrt.models.light_encoder import build_analysis
from mrt.models.rcm import Step
from mrt.models.threads import one_thread


@dataclass
class Latent2DOutput:
    """What a training task needs from one forward pass (``Latent2DCodecModel.forward``)."""

    quantized: LFQOutput  # [B, H/16, W/16, d] (channels last), every group
    codes: torch.Tensor  # [B, d, H/16, W/16] what the generator consumed: groups >= k are 0
    rate_bits: torch.Tensor  # [B] bits per image of the first k groups (an unbiased estimate for a subset of steps)
    latent_pred: torch.Tensor  # [B, 32, H/8, W/8] generator's TAEF2 latent
    recon: torch.Tensor | None  # [B, 3, H, W] unclamped RGB (None when pixels were not requested)
    geometry: Geometry
    k: int

    @property
    def bpp(self) -> torch.Tensor:
        """[B] bits per pixel of the (estimated) rate."""
        return self.rate_bits / self.geometry.pixels


class Latent2DCodecModel(ImageCodecModel):
    """See module docstring. ``cfg.n_tokens`` channel groups exist per latent; ``k_code`` are coded."""

    def __init__(self, cfg: MRTConfig, k_code: int | None = None) -> None:
        super().__init__()
        if cfg.kind != "latent2d":
            raise ConfigError(f"Latent2DCodecModel needs model.kind: latent2d, got {cfg.kind!r}")
        self.cfg = cfg
        self.k_code = cfg.n_tokens if k_code is None else k_code
        if not 1 <= self.k_code <= cfg.n_tokens:
            raise ValueError(f"k_code must be in 1..{cfg.n_tokens}")
        self.analysis = build_analysis(cfg.analysis).requires_grad_(False)
        self.encoder = TargetEncoder(cfg.target)  # the stage-0 target encoder (same weight names)
        self.lfq = LFQ(cfg.target.bits)  # as in stage 0
        self.rcm = ContextModel2D(cfg)
        self.generator = PixelGenerator(cfg.target)

    @property
    def cells(self) -> int:
        """Latents per window side."""
        return self.cfg.window // STRIDE

    # ----- building blocks shared by training and coding -----
    def quantize(self, latent: torch.Tensor) -> LFQOutput:
        """TAEF2 latent [B, 32, h, w] -> LFQ output over [B, h/2, w/2, d] (channels last)."""
        return self.lfq(self.encoder(latent).permute(0, 2, 3, 1))

    def keep_groups(self, codes: torch.Tensor, k: int) -> torch.Tensor:
        """Codes [B, d, h, w] with the channel groups >= ``k`` set to 0 (not coded: unknown to the generator)."""
        kept = k * self.cfg.group_bits
        return torch.cat([codes[:, :kept], codes.new_zeros(codes.shape[0], codes.shape[1] - kept, *codes.shape[2:])], 1)

    def to_windows(self, codes: torch.Tensor, k: int) -> torch.Tensor:
        """Codes [B, d, R*c, Q*c] -> window bits [B, R*Q, k, c*c*gb] of the first ``k`` groups (raster windows)."""
        b, _, h, w = codes.shape
        c, gb = self.cells, self.cfg.group_bits
        x = codes[:, : k * gb].reshape(b, k, gb, h // c, c, w // c, c)
        x = x.permute(0, 3, 5, 1, 4, 6, 2)  # [B, R, Q, k, c, c, gb]
        return x.reshape(b, (h // c) * (w // c), k, c * c * gb)

    def from_windows(self, bits: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
        """Window bits [B, R*Q, k, c*c*gb] -> codes [B, d, R*c, Q*c] with groups >= k set to 0."""
        b, _, k, _ = bits.shape
        c, gb = self.cells, self.cfg.group_bits
        x = bits.reshape(b, rows, cols, k, c, c, gb).permute(0, 3, 6, 1, 4, 2, 5)  # [B, k, gb, R, c, Q, c]
        x = x.reshape(b, k * gb, rows * c, cols * c)
        return torch.cat([x, x.new_zeros(b, self.cfg.target.bits - k * gb, *x.shape[2:])], 1)

    def rate(self, bits_pm1: torch.Tensor, steps: list[Step] | None = None) -> torch.Tensor:
        """Bits per image [B] of window bits [B, nW, k, ...]: exact (all steps), or for a subset of
        ``steps`` rescaled to an unbiased estimate (by the share of the k groups' steps they are)."""
        bits = self.rcm.rate_bits(bits_pm1, steps)
        if steps is None:
            return bits
        k = bits_pm1.shape[2]
        sampled = len(self.rcm.plan(k, steps))
        return bits * (len(self.rcm.plan(k)) / sampled) if sampled else bits

    def forward(
        self,
        latent: torch.Tensor,
        k: int | None = None,
        *,
        with_pixels: bool = False,
        rate_steps: list[Step] | None = None,
        train_encoder: bool = True,
    ) -> Latent2DOutput:
        """Training forward from a TAEF2 latent [B, 32, h, w] whose sides are whole windows.

        ``k``: channel groups kept (nested dropout; default ``k_code``). ``rate_steps``: context
        steps whose rate is computed (None = all). ``train_encoder=False`` runs the encoder without
        gradients. The rate never reaches the encoder (as in MRT: rate points come from ``k``).
        """
        k = self.k_code if k is None else k
        if not 1 <= k <= self.cfg.n_tokens:
            raise ValueError(f"k must be in 1..{self.cfg.n_tokens}, got {k}")
        geo = Geometry.of_latent((latent.shape[-2], latent.shape[-1]), self.cfg.window)
        with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
            q = self.quantize(latent)
        codes = q.quantized.permute(0, 3, 1, 2)  # [B, d, h/2, w/2]
        rate = self.rate(self.to_windows(codes.detach(), k), rate_steps)
        kept = self.keep_groups(codes, k)
        latent_pred = self.generator.latent_decoder(kept)
        recon = self.generator.rgb_decoder(latent_pred) if with_pixels else None
        return Latent2DOutput(q, kept, rate, latent_pred, recon, geo, k)

    # ----- image-level plumbing used by the codec (no gradients; see ImageCodecModel) -----
    @torch.inference_mode()
    def encode_bits(self, img: np.ndarray, k: int | None = None) -> torch.Tensor:
        """uint8 image [H, W, 3] -> {0,1} window bits [1, nW, k, c*c*gb] (int64) of the first ``k`` groups."""
        latent = self.analyse(self.image_to_tensor(img))
        codes = self.quantize(latent).bits.permute(0, 3, 1, 2)  # [1, d, h, w]
        return self.to_windows(codes, self.k_code if k is None else k)

    @torch.inference_mode()
    def decode_bits(self, bits01: torch.Tensor, height: int, width: int) -> np.ndarray:
        """{0,1} window bits [1, nW, k, c*c*gb] -> uint8 image [height, width, 3]."""
        geo = self.geometry(height, width)
        codes = self.from_windows(bits01.float() * 2.0 - 1.0, geo.rows, geo.cols)
        # codes -> latent on one thread (cheap: 1/16 and 1/8 resolution), so that the decoded
        # pixels do not depend on the thread count (see one_thread)
        with one_thread():
            latent = self.generator.latent_decoder(codes)
        return self.to_image(latent, height, width)
