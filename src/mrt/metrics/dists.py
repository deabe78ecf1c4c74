"""DISTS (Ding et al., TPAMI 2020): deep image structure and texture similarity, usable as a loss.

Features: the raw image (in [0, 1]) plus the five VGG16 stages relu1_2, relu2_2, relu3_3,
relu4_3, relu5_3, computed on the ImageNet-normalised image, with max pooling replaced by
L2 pooling (3x3 Hanning window, stride 2). For every channel ``c`` of stage ``k`` (means,
variances, covariance over space; ``c1 = c2 = 1e-6``)::

    s1 = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)            # texture (mean) term
    s2 = (2 cov_xy + c2) / (var_x + var_y + c2)                 # structure term
    DISTS = 1 - sum_kc (alpha_kc s1 + beta_kc s2) / (sum alpha + sum beta)

with the learned ``alpha, beta`` (1475 = 3+64+128+256+512+512 channels each) of DISTS_pytorch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from mrt.metrics._backbones import FrozenMetric, VGG16Features, random_init
from mrt.metrics._checks import check_pair
from mrt.metrics.weights import load_safetensors

__all__ = ["DISTS", "DISTS_CHANNELS"]

DISTS_CHANNELS: tuple[int, ...] = (3, 64, 128, 256, 512, 512)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_C1 = 1e-6
_C2 = 1e-6


class DISTS(FrozenMetric):
    """DISTS distance. ``forward(x, y)``: ``[B,3,H,W]`` in [0, 1] each -> ``[B]`` (0 when equal).

    Differentiable with respect to the inputs; weights frozen and kept out of ``state_dict()``.

    Args:
        weights_root: cache root holding ``metrics/lpips_vgg.safetensors`` (VGG16) and
            ``metrics/dists_alpha_beta.safetensors`` (default ``$MRT_CACHE`` or ``~/.cache/mrt``).
        pretrained: load the verified cached weights (raises ``WeightsError`` when absent).
    """

    mean: Tensor
    std: Tensor

    def __init__(self, weights_root: Path | None = None, pretrained: bool = True) -> None:
        super().__init__()
        self.backbone = VGG16Features(pool="l2")
        n = sum(DISTS_CHANNELS)
        self.alpha = nn.Parameter(torch.full((n,), 0.1))
        self.beta = nn.Parameter(torch.full((n,), 0.1))
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if pretrained:
            vgg = load_safetensors("lpips_vgg", weights_root)
            ab = load_safetensors("dists", weights_root)
            state = {"backbone." + k: v for k, v in vgg.items() if k.startswith("features.")}
            state["alpha"] = ab["alpha"].reshape(-1)  # [1, 1475, 1, 1] -> [1475]
            state["beta"] = ab["beta"].reshape(-1)
            self.load_weights(state)
        self.freeze()

    @classmethod
    def from_random_weights(cls, seed: int = 0) -> DISTS:
        """A deterministic DISTS with a random VGG16 and random positive alpha/beta (tests)."""
        m = cls(pretrained=False)
        random_init(m.backbone, seed)
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            m.alpha.copy_(torch.rand(m.alpha.shape, generator=g) * 0.02)
            m.beta.copy_(torch.rand(m.beta.shape, generator=g) * 0.02)
        return m

    def features(self, x: Tensor) -> list[Tensor]:
        """The six feature maps: ``[x, relu1_2, relu2_2, relu3_3, relu4_3, relu5_3]``."""
        return [x, *self.backbone((x - self.mean) / self.std)]

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """DISTS per image, ``[B]``."""
        check_pair(x, y, min_size=1)
        n = x.shape[0]
        feats_x, feats_y = self.pair_features(lambda t: self.features(t.to(self.mean.dtype)), x, y)
        w_sum = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / w_sum, list(DISTS_CHANNELS))
        betas = torch.split(self.beta / w_sum, list(DISTS_CHANNELS))
        total = x.new_zeros(n, dtype=self.mean.dtype)
        for fx, fy, a, b in zip(feats_x, feats_y, alphas, betas):
            mx = fx.mean(dim=(2, 3))  # [B, C]
            my = fy.mean(dim=(2, 3))
            vx = ((fx - mx[..., None, None]) ** 2).mean(dim=(2, 3))
            vy = ((fy - my[..., None, None]) ** 2).mean(dim=(2, 3))
            cov = (fx * fy).mean(dim=(2, 3)) - mx * my
            s1 = (2 * mx * my + _C1) / (mx**2 + my**2 + _C1)
            s2 = (2 * cov + _C2) / (vx + vy + _C2)
            total = total + (s1 * a).sum(1) + (s2 * b).sum(1)
        return 1.0 - total
