"""Stage-0 discrete-target autoencoder and the pixel generator.

The *target encoder* (training only) maps the frozen TAEF2 latent (32 ch at 1/8) to LFQ codes at
1/16 resolution: these are the discrete targets of stage 1. The *pixel generator* maps such codes
(hard +-1 bits, or soft bits in [-1, 1] = the expectation of a bit under the decoder's logits)
back to a TAEF2 latent with a small conv net, then to RGB with a TAEF2-architecture decoder
(initialised from the pretrained TAEF2 weights, or from scratch when configured so).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrt.blocks.lfq import LFQ, LFQOutput
from mrt.models.config import TargetConfig
from mrt.models.light_decoder import LightDecoder, LightSpec
from mrt.models.taef2 import LATENT_CHANNELS, TAEF2Decoder
from mrt.models.threads import pointwise


class ResBlock2d(nn.Module):
    """Pre-norm residual conv block: x + conv(gelu(conv(gelu(norm(x)))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.gelu(self.conv1(F.gelu(self.norm(x)))))


class TargetEncoder(nn.Module):
    """TAEF2 latent [B, 32, h, w] -> pre-quantisation codes [B, bits, h/2, w/2]."""

    def __init__(self, cfg: TargetConfig) -> None:
        super().__init__()
        c = cfg.dim
        self.stem = nn.Conv2d(LATENT_CHANNELS, c, 3, padding=1)
        self.blocks1 = nn.Sequential(*[ResBlock2d(c) for _ in range(cfg.depth)])
        self.down = nn.Conv2d(c, c, 2, stride=2)
        self.blocks2 = nn.Sequential(*[ResBlock2d(c) for _ in range(cfg.depth)])
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.GELU(), nn.Conv2d(c, cfg.bits, 1))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks2(self.down(self.blocks1(self.stem(latent)))))


class LatentDecoder(nn.Module):
    """Codes [B, bits, h, w] (values in [-1, 1]) -> TAEF2 latent [B, 32, 2h, 2w]."""

    def __init__(self, cfg: TargetConfig) -> None:
        super().__init__()
        c = cfg.dim
        self.stem = nn.Conv2d(cfg.bits, c, 1)
        self.blocks1 = nn.Sequential(*[ResBlock2d(c) for _ in range(cfg.depth)])
        self.resize = cfg.latent_up == "resize"
        if self.resize:  # resize-convolution: no per-cell pattern (Odena et al. 2016, checkerboard artifacts)
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1))
        else:
            self.up = nn.Sequential(nn.Conv2d(c, 4 * c, 1), nn.PixelShuffle(2))
        self.blocks2 = nn.Sequential(*[ResBlock2d(c) for _ in range(cfg.depth)])
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.GELU(), nn.Conv2d(c, LATENT_CHANNELS, 3, padding=1))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        # 1x1 convolutions with the bias added after (``pointwise``): with the GroupNorms and 3x3
        # convolutions, the decoded latent of a large image is then the same for any thread count
        x = self.blocks1(pointwise(self.stem, codes))
        if self.resize:
            x = self.up(x)  # [B, c, h, w] -> [B, c, 2h, 2w]
        else:
            x = self.up[1](pointwise(self.up[0], x))  # [B, 4c, h, w] -> [B, c, 2h, 2w]
        return self.out(self.blocks2(x))

    @torch.no_grad()
    def upgrade_state(self, prefix: str, state: dict[str, torch.Tensor]) -> None:
        """Let a resize decoder start from a shuffle decoder's weights (``mrt.train.checkpoint.load_matching``):
        the 3x3 conv's centre tap becomes the mean of the four sub-position 1x1 maps (so a constant
        input gives the mean of the 2x2 pattern the shuffle decoder wrote), the other taps zero."""
        old_w, old_b = f"{prefix}up.0.weight", f"{prefix}up.0.bias"
        if not self.resize or old_w not in state or f"{prefix}up.1.weight" in state:
            return
        w = state.pop(old_w)  # [4c, c, 1, 1]; pixel shuffle reads output channel o*4 + sub-position
        c = w.shape[1]
        conv = torch.zeros(c, c, 3, 3, dtype=w.dtype)
        conv[:, :, 1, 1] = w[:, :, 0, 0].reshape(c, 4, c).mean(1)
        state[f"{prefix}up.1.weight"] = conv
        if old_b in state:
            state[f"{prefix}up.1.bias"] = state.pop(old_b).reshape(c, 4).mean(1)


class PixelGenerator(nn.Module):
    """Codes at 1/16 -> TAEF2 latent at 1/8 -> RGB (unclamped) at full resolution."""

    def __init__(self, cfg: TargetConfig) -> None:
        super().__init__()
        self.latent_decoder = LatentDecoder(cfg)
        self.rgb_decoder: nn.Module = (
            LightDecoder(LightSpec(blocks=cfg.light_blocks, noise=cfg.light_noise)) if cfg.pixel_generator == "light" else TAEF2Decoder()
        )

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.rgb_decoder(self.latent_decoder(codes))


class TargetAutoencoder(nn.Module):
    """Stage-0 model: frozen-TAEF2 latent -> LFQ codes at 1/16 -> pixel generator."""

    def __init__(self, cfg: TargetConfig) -> None:
        super().__init__()
        self.encoder = TargetEncoder(cfg)
        self.lfq = LFQ(cfg.bits)
        self.generator = PixelGenerator(cfg)

    def quantize(self, latent: torch.Tensor) -> LFQOutput:
        """LFQ over the channel dim: [B, bits, h, w] codes -> LFQOutput with channels last."""
        z = self.encoder(latent).permute(0, 2, 3, 1)  # [B, h, w, bits]
        return self.lfq(z)

    def targets(self, latent: torch.Tensor) -> torch.Tensor:
        """Discrete targets: {0,1} bits [B, bits, h/2, w/2] (no gradient)."""
        with torch.no_grad():
            return self.quantize(latent).bits.permute(0, 3, 1, 2)
