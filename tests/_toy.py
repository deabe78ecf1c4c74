"""A tiny convolutional autoencoder task to test the training machinery without the stage tasks.

Not a codec: it lets the loop, DDP, resume, the command line and the tests run on synthetic
crops in seconds. Input: ``batch.pixels`` when present, else ``batch.latents``; loss: MSE.
Pass ``toy_factory(...)`` as the ``task_factory`` of :func:`mrt.train.loop.train` or
:func:`mrt.train.command.main`; the config's ``task`` is then only a name (``toy``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mrt.data.batch import Batch
from mrt.models.taef2 import LATENT_CHANNELS
from mrt.train.config import TrainConfig
from mrt.train.task import LossOutput, Task, TaskFactory


class ToyAutoencoderTask(Task):
    """stride-2 conv -> GroupNorm -> GELU -> conv -> transposed conv back; MSE to the input.

    ``noise``: std of Gaussian input noise (exercises the RNG state on resume).
    """

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


def toy_factory(channels: int = 8, noise: float = 0.0) -> TaskFactory:
    """A task factory building :class:`ToyAutoencoderTask` on pixels (``data.with_pixels``) or latents."""

    def build(cfg: TrainConfig) -> ToyAutoencoderTask:
        in_ch = 3 if cfg.data.with_pixels else LATENT_CHANNELS
        return ToyAutoencoderTask(in_channels=in_ch, channels=channels, noise=noise)

    return build
