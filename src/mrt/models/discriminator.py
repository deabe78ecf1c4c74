"""Patch discriminator and hinge losses for the optional adversarial term (stages 0 and 2, distill_light).

Training-only (never in a model file). The other discriminator, on frozen pretrained features,
is :class:`mrt.models.feature_discriminator.FeatureDiscriminator`; both go through
:func:`adversarial_losses`. The generator and the discriminator share the training
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


Logits = torch.Tensor | list[torch.Tensor]  # one logit map, or one per scale (FeatureDiscriminator)


def _per_scale(logits: Logits) -> list[torch.Tensor]:
    return [t.float() for t in (logits if isinstance(logits, list) else [logits])]


def _logits(disc: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> tuple[Logits, Logits, Logits]:
    """(D(fake) with D's parameters detached, D(fake detached), D(real)).

    A discriminator with a frozen feature part (``features`` + ``heads``, no trainable parameter in
    ``features``) runs it once for the fake batch (the graph to ``fake`` serves the generator term;
    its detached output feeds the discriminator term) and without a graph for the real batch.
    """
    features = getattr(disc, "features", None)
    heads = getattr(disc, "heads", None)
    if callable(features) and isinstance(heads, nn.Module):
        feats = features(fake)
        frozen = {name: p.detach() for name, p in heads.named_parameters()}
        g_logits = functional_call(heads, frozen, (feats,))
        d_fake = heads([f.detach() for f in feats])
        with torch.no_grad():
            real_feats = [f.detach() for f in features(real)]
        return g_logits, d_fake, heads(real_feats)
    frozen = {name: p.detach() for name, p in disc.named_parameters()}
    return functional_call(disc, frozen, (fake,)), disc(fake.detach()), disc(real)


def adversarial_losses(disc: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> AdversarialLosses:
    """Both players' hinge losses for one batch, with gradients separated (see the module doc).

    With several logit maps (one per scale) each loss is the mean of the per-scale losses, so a
    weight means the same for a single- and a multi-scale discriminator.
    """
    g_logits, d_fake, d_real = (_per_scale(t) for t in _logits(disc, fake, real))
    g_loss = -torch.stack([t.mean() for t in g_logits]).mean()
    d_loss = torch.stack([F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean() for r, f in zip(d_real, d_fake)]).mean()
    real_score = float(torch.stack([t.detach().mean() for t in d_real]).mean())
    fake_score = float(torch.stack([t.detach().mean() for t in d_fake]).mean())
    return AdversarialLosses(g_loss, d_loss, real_score, fake_score)
