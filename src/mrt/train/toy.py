"""A tiny convolutional autoencoder task (``task: toy``) to smoke-test the training machinery.

Not a codec: it exists so that the loop, DDP, resume, the CLI and the tests run without the
stage tasks. Input: ``batch.pixels`` when present, else ``batch.latents``; loss: MSE.
``model`` keys: ``channels`` (default 8), ``noise`` (std of Gaussian input noise, default 0; it
exercises the RNG state on resume).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mrt.data.batch import Batch
from mrt.errors import ConfigError
from mrt.train.config import TrainConfig
from mrt.train.task import LossOutput, Task


class ToyAutoencoderTask(Task):
    """stride-2 conv -> GroupNorm -> GELU -> conv -> transposed conv back; MSE to the input."""

    def __init__(self, in_channels: int = 3, channels: int = 8, noise: float = 0.0) -> None:
        super().__init__()
        self.noise = noise
        self.enc = nn.Conv2d(in_channels, channels, 4, stride=2, padding=1)
        self.norm = nn.GroupNorm(1, channels)
        self.mid = nn.Conv2d(channels, channels, 3, padding=1)
        self.dec = nn.ConvTranspose2d(channels, in_channels, 4, stride=2, padding=1)

    def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
        x = batch.pixels if batch.pixels is not None else batch.latents
        assert x is not None
        x_in = x + self.noise * torch.randn_like(x) if self.noise > 0 else x
        y = self.dec(F.gelu(self.mid(F.gelu(self.norm(self.enc(x_in))))))
        mse = F.mse_loss(y.float(), x.float())
        m = float(mse.detach())
        return LossOutput(total=mse, logs={"mse": m, "psnr": -10.0 * math.log10(max(m, 1e-12))})


def build_toy_task(cfg: TrainConfig) -> ToyAutoencoderTask:
    """Task factory for ``task: toy``."""
    allowed = {"channels", "noise"}
    unknown = sorted(set(cfg.model) - allowed)
    if unknown:
        raise ConfigError(f"unknown model key(s) for task 'toy': {', '.join(unknown)} (known: channels, noise)")
    in_ch = 3 if cfg.data.with_pixels else 32
    return ToyAutoencoderTask(
        in_channels=in_ch, channels=int(cfg.model.get("channels", 8)), noise=float(cfg.model.get("noise", 0.0))
    )
