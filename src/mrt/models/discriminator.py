"""Patch discriminator and hinge losses for the optional adversarial term of stages 0 and 2.

Training-only (never in a model file). The generator and the discriminator share the training
loop's single optimizer: :func:`adversarial_losses` returns a generator loss whose gradient
reaches only the generator (the discriminator is applied with detached parameters) and a
discriminator loss whose gradient reaches only the discriminator (the fake image is detached),
so one ``backward`` of their sum is one simultaneous update of both players.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


class PatchDiscriminator(nn.Module):
    """Conv stack with stride 2 (x3): RGB in [0, 1] ``[B, 3, H, W]`` -> logits ``[B, 1, H/8, W/8]``.

    Each logit judges a receptive field of about 46 px: texture realism, not global layout.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),
            nn.GroupNorm(8, 2 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1),
            nn.GroupNorm(8, 4 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1),
            nn.GroupNorm(8, 4 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2.0 - 1.0)


@dataclass(frozen=True)
class AdversarialLosses:
    """Hinge losses: ``generator`` (-mean D(fake)), ``discriminator`` (hinge on real and fake)."""

    generator: torch.Tensor
    discriminator: torch.Tensor
    real_score: float  # mean logit on real images (for logs)
    fake_score: float


def adversarial_losses(disc: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> AdversarialLosses:
    """Both players' hinge losses for one batch, with gradients separated (see the module doc)."""
    frozen = {name: p.detach() for name, p in disc.named_parameters()}
    g_logits = functional_call(disc, frozen, (fake,))
    d_fake = disc(fake.detach())
    d_real = disc(real)
    g_loss = -g_logits.float().mean()
    d_loss = F.relu(1.0 - d_real.float()).mean() + F.relu(1.0 + d_fake.float()).mean()
    return AdversarialLosses(g_loss, d_loss, float(d_real.detach().float().mean()), float(d_fake.detach().float().mean()))
