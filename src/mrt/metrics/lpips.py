"""LPIPS v0.1 (Zhang et al., CVPR 2018) with AlexNet or VGG16 features, usable as a loss.

Computation for images ``x, y`` in [0, 1]:

1. map to [-1, 1] (``2x - 1``), then the LPIPS scaling layer ``(v - shift) / scale`` with
   ``shift = [-.030, -.088, -.188]``, ``scale = [.458, .448, .450]`` (ImageNet statistics in
   the [-1, 1] domain);
2. backbone taps (AlexNet relu1..relu5 or VGG16 relu1_2..relu5_3);
3. each tap unit-normalised over channels: ``f / (sqrt(sum_c f^2) + 1e-10)``;
4. squared difference, 1x1 linear head (non-negative weights, no bias), spatial mean;
5. sum over the five taps -> one value per image.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from mrt.metrics._backbones import ALEX_CHANNELS, VGG_CHANNELS, AlexFeatures, FrozenMetric, VGG16Features, random_init
from mrt.metrics._checks import check_pair
from mrt.metrics.weights import load_safetensors

__all__ = ["LPIPS", "LPIPS_SCALE", "LPIPS_SHIFT"]

LPIPS_SHIFT: tuple[float, float, float] = (-0.030, -0.088, -0.188)
LPIPS_SCALE: tuple[float, float, float] = (0.458, 0.448, 0.450)
_EPS = 1e-10
# Smallest side for which every tap is non-empty (AlexNet: conv 11/4 and two 3/2 max-pools;
# VGG16: four 2/2 max-pools).
_MIN_SIZE = {"alex": 31, "vgg": 16}


class LPIPS(FrozenMetric):
    """LPIPS v0.1 distance. ``forward(x, y)``: ``[B,3,H,W]`` in [0, 1] each -> ``[B]``.

    Differentiable with respect to the inputs; all weights frozen (``requires_grad=False``),
    the module stays in eval mode and keeps its weights out of ``state_dict()``.

    Args:
        net: ``"alex"`` (default; the recommended forward metric) or ``"vgg"``.
        weights_root: cache root holding ``metrics/lpips_<net>.safetensors``
            (default ``$MRT_CACHE`` or ``~/.cache/mrt``); ``pretrained=False`` skips loading.
        pretrained: load the verified cached weights (raises ``WeightsError`` when absent).
    """

    shift: Tensor
    scale: Tensor

    def __init__(self, net: str = "alex", weights_root: Path | None = None, pretrained: bool = True) -> None:
        super().__init__()
        if net not in ("alex", "vgg"):
            raise ValueError(f"LPIPS net must be 'alex' or 'vgg', got {net!r}")
        self.net_name = net
        self.backbone: nn.Module = AlexFeatures() if net == "alex" else VGG16Features(pool="max")
        chans = ALEX_CHANNELS if net == "alex" else VGG_CHANNELS
        self.lin = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in chans)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        if pretrained:
            state = load_safetensors(f"lpips_{net}", weights_root)
            self.load_weights({("backbone." + k if k.startswith("features.") else k): v for k, v in state.items()})
        self.freeze()

    @classmethod
    def from_random_weights(cls, net: str = "alex", seed: int = 0) -> LPIPS:
        """A deterministic LPIPS with random backbone and non-negative random heads (tests)."""
        m = cls(net, pretrained=False)
        random_init(m.backbone, seed)
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for lin in m.lin:
                weight: Tensor = lin.weight  # type: ignore[assignment]
                weight.copy_(torch.rand(weight.shape, generator=g) * 0.1)
        return m

    def layer_distances(self, x: Tensor, y: Tensor) -> list[Tensor]:
        """Per-tap contributions (each ``[B]``); their sum is ``forward(x, y)``."""
        check_pair(x, y, min_size=_MIN_SIZE[self.net_name])

        def taps(img: Tensor) -> list[Tensor]:
            v = (2.0 * img.to(self.shift.dtype) - 1.0 - self.shift) / self.scale
            return [f / (torch.sqrt(torch.sum(f * f, dim=1, keepdim=True)) + _EPS) for f in self.backbone(v)]

        fx, fy = self.pair_features(taps, x, y)
        # per tap: squared difference [B, C, h, w] -> 1x1 head [B, 1, h, w] -> mean [B]
        return [lin((a - b) ** 2).mean(dim=(1, 2, 3)) for a, b, lin in zip(fx, fy, self.lin)]

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS distance per image, ``[B]`` (0 for identical images)."""
        return torch.stack(self.layer_distances(x, y), 0).sum(0)

    def extra_repr(self) -> str:
        return f"net={self.net_name!r}"
