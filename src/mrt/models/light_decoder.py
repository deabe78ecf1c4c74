"""A light RGB decoder: TAEF2 latent [B, 32, h, w] -> RGB [B, 3, 8h, 8w] (unclamped).

Same job and interface as ``TAEF2Decoder``, built for CPU speed (issue 10): the TAEF2 decoder
keeps 64 channels up to full resolution, where 84% of a decode goes. Here the capacity sits at
1/8 and 1/4 resolution, the channel count halves at every doubling of the resolution, each
doubling is a convolution at the lower resolution followed by a pixel shuffle, and the last one
writes the RGB values of each 2x2 pixel block directly (no convolution at full resolution).

Fully convolutional, with no normalisation across space, so that tiling (``apply_tiled``)
only needs a halo as large as the receptive field: the convolutions of the default spec reach
``LightSpec.receptive_radius`` = 56 px, so an output pixel depends on the latent cells within
63 px of it (the cell grid adds up to 7 px), and the codec's 64-px HALO gives tiled decoding the
untiled result (tested). A spec with more blocks asks for a wider margin (``LightSpec.halo``).

``LightSpec.noise``: a per-pixel noise map is added (times a learned per-channel strength that
starts at zero, so a noise decoder starts as the plain one) after the stem and after each
upsampling, at 1/8, 1/4 and 1/2 resolution: where the codes are uncertain the decoder otherwise
has nothing to draw texture from but its own upsampling grid, which it paints as a periodic
pattern (docs/results/experiments.md). The noise is a hash of the absolute position (integer
arithmetic: the same numbers on every machine and thread count), so decoding stays a pure
function of the file, and a tile (``forward(latent, origin)``) sees the noise of its place in
the image: tiled decoding still equals untiled. In training mode without an origin, a random
one, so that the network cannot learn one fixed noise image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mrt.models.taef2 import LATENT_CHANNELS, SoftClamp
from mrt.models.threads import pointwise


@dataclass(frozen=True)
class LightSpec:
    """Channels and residual blocks at 1/8, 1/4 and 1/2 resolution (full resolution has none)."""

    channels: tuple[int, int, int] = (128, 64, 32)
    blocks: tuple[int, int, int] = (3, 2, 1)
    expand: tuple[int, int, int] = (2, 2, 1)  # hidden width inside a block, as a multiple of its channels
    noise: bool = False  # position-keyed noise inputs at 1/8, 1/4 and 1/2 resolution (module docstring)

    @property
    def receptive_radius(self) -> int:
        """Reach in pixels of the 3x3 convolutions on each side of an output pixel (the latent cells
        it depends on lie within this + 7 px)."""
        radius = 0
        for level, n_blocks in enumerate(self.blocks):
            scale = 8 >> level  # pixels per cell at this level: 8, 4, 2
            convs = n_blocks + 1 + (1 if level == 0 else 0)  # blocks + the upsampling conv (+ stem)
            radius += convs * scale
        return radius

    @property
    def halo(self) -> int:
        """Tiling margin in pixels (multiple of 16) that holds every latent cell an output pixel
        depends on (radius + 7 px): 64 for the default spec."""
        return -(-(self.receptive_radius + 8) // 16) * 16


DEFAULT_SPEC = LightSpec()


class LightBlock(nn.Module):
    """x + W2 relu(W1 relu(conv3x3(x))): one 3x3 conv (spatial context) then a 1x1 MLP.

    The last 1x1 starts at zero, so every block starts as the identity. Its bias is added after
    the bias-free convolution: PyTorch runs a 1x1 convolution *with* a bias through another
    algorithm with several threads than with one, which made the decoded pixels depend on the
    thread count (``mrt.models.threads.pointwise``); bias-free, the result is the same for any count.
    """

    def __init__(self, channels: int, expand: int) -> None:
        super().__init__()
        hidden = channels * expand
        self.conv = nn.Conv2d(channels, hidden, 3, padding=1)
        self.mix = nn.Conv2d(hidden, channels, 1)
        self.act = nn.ReLU()
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + pointwise(self.mix, self.act(self.conv(x)))  # [B, c, h, w]


class ShuffleUp(nn.Sequential):
    """[B, c_in, h, w] -> [B, c_out, 2h, 2w]: 3x3 conv to 4*c_out channels at the low resolution + pixel shuffle."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.Conv2d(c_in, 4 * c_out, 3, padding=1), nn.PixelShuffle(2))


_MASK32 = 0xFFFFFFFF
_MIX = 0x045D9F3B  # odd, < 2**31: a 32-bit value times it stays inside int64


def position_noise(height: int, width: int, origin: tuple[int, int], salt: int) -> torch.Tensor:
    """[1, 1, height, width] float32 noise of zero mean and unit variance (uniform) at rows
    ``origin[0]..``, columns ``origin[1]..`` of an endless field keyed by ``salt``: a 32-bit integer
    hash of (row, column, salt), so any window of the field is the same numbers everywhere (the
    field repeats every 65536 rows and columns: beyond any image at 1/2 resolution we decode)."""
    y = torch.arange(origin[0], origin[0] + height, dtype=torch.int64)[:, None]
    x = torch.arange(origin[1], origin[1] + width, dtype=torch.int64)[None, :]
    v = ((y & 0xFFFF) * 0x10000 + (x & 0xFFFF) + (salt & 0xFF) * 0x3C6EF35) & _MASK32  # [h, w]
    for _ in range(3):  # xor-shift-multiply rounds
        v = ((v >> 16) ^ v) * _MIX & _MASK32
    v = (v >> 16) ^ v
    u = v.to(torch.float64) / 2.0**32  # [0, 1)
    return ((u - 0.5) * 12.0**0.5).to(torch.float32)[None, None]


class NoiseInject(nn.Module):
    """x + GAIN * strength[c] * noise(position): StyleGAN-style noise input, position-keyed (zero strength at start).

    The fixed ``GAIN`` lets the strengths learn at the pace of the rest when fine-tuning at a
    small learning rate (Adam moves a parameter by ~lr a step; the strengths must travel ~0.1-1
    from zero while the weights move little; "equalised learning rate", Karras et al. 2018)."""

    GAIN = 50.0

    def __init__(self, channels: int, salt: int) -> None:
        super().__init__()
        self.salt = salt
        self.strength = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, origin: tuple[int, int]) -> torch.Tensor:
        n = position_noise(x.shape[-2], x.shape[-1], origin, self.salt).to(x.dtype)
        return x + (self.GAIN * self.strength).view(1, -1, 1, 1).to(x.dtype) * n  # [B, c, h, w]


class LightDecoder(nn.Module):
    """[B, 32, h, w] -> [B, 3, 8h, 8w] (not clamped), for any h, w >= 1."""

    tile_side = 1024  # the codec tiles large images in 1024-px tiles for this network (mrt.models.codec_model.tile_side)

    def __init__(self, spec: LightSpec = DEFAULT_SPEC) -> None:
        super().__init__()
        self.spec = spec
        c8, c4, c2 = spec.channels
        self.clamp = SoftClamp()
        self.stem = nn.Conv2d(LATENT_CHANNELS, c8, 3, padding=1)
        self.level8 = nn.Sequential(*[LightBlock(c8, spec.expand[0]) for _ in range(spec.blocks[0])])
        self.up4 = nn.Sequential(ShuffleUp(c8, c4), nn.ReLU())
        self.level4 = nn.Sequential(*[LightBlock(c4, spec.expand[1]) for _ in range(spec.blocks[1])])
        self.up2 = nn.Sequential(ShuffleUp(c4, c2), nn.ReLU())
        self.level2 = nn.Sequential(*[LightBlock(c2, spec.expand[2]) for _ in range(spec.blocks[2])])
        self.to_rgb = ShuffleUp(c2, 3)  # each 1/2-resolution cell writes its 2x2 RGB block
        self.noise = nn.ModuleList([NoiseInject(c, salt) for salt, c in enumerate(spec.channels, 1)]) if spec.noise else None

    @property
    def positional(self) -> bool:
        """The output depends on where the latent lies in the image (noise): tiles pass their origin."""
        return self.noise is not None

    @property
    def halo(self) -> int:
        """The codec's tiling margin for this network (``mrt.models.codec_model.tile_halo``)."""
        return self.spec.halo

    def forward(self, latent: torch.Tensor, origin: tuple[int, int] | None = None) -> torch.Tensor:
        """``origin``: the (row, column) of ``latent``'s first cell in the image's latent grid (noise
        decoders; default: (0, 0), or a random place in training mode)."""
        if self.noise is not None and origin is None:
            origin = tuple(int(v) for v in torch.randint(0, 1 << 14, (2,))) if self.training else (0, 0)  # type: ignore[assignment]

        def noisy(level: int, x: torch.Tensor) -> torch.Tensor:
            """x plus the noise of level 0, 1, 2 (1/8, 1/4, 1/2 resolution); x itself without noise inputs."""
            if self.noise is None:
                return x
            oy, ox = origin  # type: ignore[misc]
            return self.noise[level](x, (oy << level, ox << level))

        x = self.level8(noisy(0, self.stem(self.clamp(latent))))  # [B, c8, h, w]
        x = self.level4(noisy(1, self.up4(x)))  # [B, c4, 2h, 2w]
        x = self.level2(noisy(2, self.up2(x)))  # [B, c2, 4h, 4w]
        return self.to_rgb(x)  # [B, 3, 8h, 8w]


def conv_macs(net: nn.Module, latent_shape: tuple[int, int, int, int]) -> int:
    """Multiply-accumulates of every Conv2d of ``net`` on a latent of ``latent_shape`` (one forward)."""
    total = 0

    def hook(mod: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(mod, nn.Conv2d)
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total += out.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            net(torch.zeros(latent_shape))
    finally:
        for h in handles:
            h.remove()
    return total
