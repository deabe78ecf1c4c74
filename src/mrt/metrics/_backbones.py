"""Frozen ImageNet feature extractors (AlexNet, VGG16) shared by LPIPS and DISTS.

Weights are plain ``nn.Parameter`` with ``requires_grad=False`` (so DDP neither reduces nor
re-broadcasts them), named ``features.{i}.weight/bias`` for the i-th convolution in network
order, matching the safetensors files written by ``mrt.metrics.weights``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ALEX_CHANNELS", "VGG_CHANNELS", "AlexFeatures", "FrozenMetric", "L2Pool", "VGG16Features", "copy_named_tensors"]

ALEX_CHANNELS: tuple[int, ...] = (64, 192, 384, 256, 256)
VGG_CHANNELS: tuple[int, ...] = (64, 128, 256, 512, 512)

# (out_channels, kernel, stride, padding) of AlexNet's five convolutions (torchvision layout).
_ALEX_CONVS: tuple[tuple[int, int, int, int], ...] = (
    (64, 11, 4, 2),
    (192, 5, 1, 2),
    (384, 3, 1, 1),
    (256, 3, 1, 1),
    (256, 3, 1, 1),
)
# VGG16 "D": convolutions per block; a pooling layer separates blocks; taps after each block.
_VGG_BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


class AlexFeatures(nn.Module):
    """AlexNet convolutional trunk returning the five ReLU outputs used by LPIPS.

    ``forward(x: [B, 3, H, W]) -> [relu1 [B,64,..], relu2 [B,192,..], relu3, relu4, relu5]``.
    """

    def __init__(self) -> None:
        super().__init__()
        convs = []
        c_in = 3
        for c_out, k, s, p in _ALEX_CONVS:
            convs.append(nn.Conv2d(c_in, c_out, k, stride=s, padding=p))
            c_in = c_out
        self.features = nn.ModuleList(convs)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the ReLU activations after each of the five convolutions."""
        taps: list[Tensor] = []
        for i, conv in enumerate(self.features):
            if i in (1, 2):  # max-pool 3x3/2 before conv2 and conv3
                x = F.max_pool2d(x, kernel_size=3, stride=2)
            x = F.relu(conv(x))
            taps.append(x)
        return taps


class L2Pool(nn.Module):
    """L2 pooling (DISTS): ``sqrt(conv(x^2, g) + 1e-12)``, g the normalised 3x3 Hanning
    window ``outer([.5, 1, .5])/4``, stride 2, padding 1, per channel (depthwise)."""

    filter: Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        h = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
        g = torch.outer(h, h)
        g = (g / g.sum()).to(torch.float32)
        self.register_buffer("filter", g.expand(channels, 1, 3, 3).contiguous(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [B, C, H, W] -> [B, C, floor((H-1)/2)+1, floor((W-1)/2)+1]``."""
        filt = self.filter.to(x.dtype)
        out = F.conv2d(x * x, filt, stride=2, padding=1, groups=x.shape[1])
        return torch.sqrt(out + 1e-12)


class VGG16Features(nn.Module):
    """VGG16 convolutional trunk returning relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.

    ``pool='max'`` uses 2x2/2 max pooling between blocks (LPIPS); ``pool='l2'`` uses
    ``L2Pool`` (DISTS).
    """

    def __init__(self, pool: str = "max") -> None:
        super().__init__()
        if pool not in ("max", "l2"):
            raise ValueError(f"pool must be 'max' or 'l2', got {pool!r}")
        convs: list[nn.Module] = []
        pools: list[nn.Module] = []
        self._block_sizes: list[int] = []
        c_in = 3
        for c_out, n in _VGG_BLOCKS:
            for _ in range(n):
                convs.append(nn.Conv2d(c_in, c_out, 3, padding=1))
                c_in = c_out
            self._block_sizes.append(n)
            pools.append(L2Pool(c_out) if pool == "l2" else nn.MaxPool2d(2, 2))
        self.features = nn.ModuleList(convs)
        self.pools = nn.ModuleList(pools[:-1])  # no pooling after the last tapped block

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the five block outputs (after the last ReLU of each block)."""
        taps: list[Tensor] = []
        i = 0
        for b, n in enumerate(self._block_sizes):
            if b > 0:
                x = self.pools[b - 1](x)
            for _ in range(n):
                x = F.relu(self.features[i](x))
                i += 1
            taps.append(x)
        return taps


def copy_named_tensors(own: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> None:
    """Copy ``state`` into the tensors ``own`` (by name), which must have exactly the same names and
    shapes (``ValueError`` otherwise)."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"weight names differ: missing {missing[:4]}, unexpected {unexpected[:4]}")
    with torch.no_grad():
        for name, t in state.items():
            if own[name].shape != t.shape:
                raise ValueError(f"{name}: shape {tuple(t.shape)} != {tuple(own[name].shape)}")
            own[name].copy_(t)


class FrozenMetric(nn.Module):
    """Base for metric modules used as losses: always in eval mode, weights frozen.

    The frozen weights are left out of ``state_dict()`` (they come from the verified cache,
    not from checkpoints of the model that uses the loss), and ``load_state_dict`` on a parent
    module does not report them missing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_state_dict_post_hook(_drop_own_state)
        self.register_load_state_dict_pre_hook(_fill_own_state)

    def freeze(self) -> None:
        """Turn gradients off for every parameter and switch to eval mode."""
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenMetric:
        """Ignore requests to leave eval mode (there is no dropout/BN to switch anyway)."""
        return super().train(False)

    @staticmethod
    def pair_features(fn: Callable[[Tensor], list[Tensor]], x: Tensor, y: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """``fn`` applied to both inputs. One batched pass when both (or neither) need
        gradients; when only one does (the usual loss case: prediction vs fixed target), the
        other is computed without a graph so the backward pass covers half the batch."""
        if torch.is_grad_enabled() and x.requires_grad != y.requires_grad:
            with torch.no_grad():
                fixed = fn(y if x.requires_grad else x)
            tracked = fn(x if x.requires_grad else y)
            return (tracked, fixed) if x.requires_grad else (fixed, tracked)
        n = x.shape[0]
        feats = fn(torch.cat([x, y], 0))  # [2B, ...]: one pass for both
        return [f[:n] for f in feats], [f[n:] for f in feats]

    def load_weights(self, state: Mapping[str, Tensor]) -> None:
        """Copy tensors into the parameters with exactly these names (strict)."""
        copy_named_tensors(dict(self.named_parameters()), state)


def _drop_own_state(module: nn.Module, state_dict: dict[str, Tensor], prefix: str, local_metadata: dict) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[key]


def _fill_own_state(
    module: nn.Module,
    state_dict: dict[str, Tensor],
    prefix: str,
    local_metadata: dict,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    # Runs before the children load: supply our current tensors for keys the checkpoint lacks,
    # so a strict load of a parent whose checkpoint was saved without them succeeds.
    # (Constants are non-persistent buffers and never appear in a state dict.)
    for name, t in module.named_parameters():
        state_dict.setdefault(prefix + name, t.detach())


def random_init(module: nn.Module, seed: int, init: Callable[[Tensor, torch.Generator], None] | None = None) -> None:
    """Deterministic random weights for tests (Kaiming-like normal, small positive biases)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if init is not None:
                init(p, g)
            elif name.endswith("bias"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.1)
            else:
                fan_in = max(1, p[0].numel())
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / fan_in) ** 0.5)
