"""TAEF2: the pretrained tiny autoencoder of the FLUX.2 latent space (MIT, madebyollin/taesd).

Rebuilt from its architecture description so that the published state dicts load strictly.
RGB in [0, 1] (H, W multiples of 8) -> encoder -> [B, 32, H/8, W/8] -> decoder -> RGB.
The codec uses the encoder as a frozen analysis transform and the decoder as the pixel
generator's last stage.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mrt.errors import ModelError
from mrt.io.files import sha256_file

TAEF2_SHA256 = {
    "taef2_encoder.pth": "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6",
    "taef2_decoder.pth": "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5",
}
LATENT_CHANNELS = 32
LATENT_STRIDE = 8


def _conv(c_in: int, c_out: int, bias: bool = True, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


class TAEBlock(nn.Module):
    """Residual block: ReLU(conv3(x) + x), optionally with a 1x1 'pool' branch added first (mid block)."""

    def __init__(self, channels: int = 64, mid: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            _conv(channels, channels), nn.ReLU(), _conv(channels, channels), nn.ReLU(), _conv(channels, channels)
        )
        self.pool: nn.Module | None = None
        if mid:
            self.pool = nn.Sequential(
                nn.Conv2d(channels, 4 * channels, 1, bias=False),
                nn.GroupNorm(4, 4 * channels),
                nn.ReLU(),
                nn.Conv2d(4 * channels, channels, 1, bias=False),
            )
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


class SoftClamp(nn.Module):
    """3 * tanh(x / 3): keeps latents in the range the decoder was trained on."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3.0) * 3.0


class TAEF2Encoder(nn.Sequential):
    """[B, 3, H, W] in [0, 1] -> [B, 32, H/8, W/8]."""

    def __init__(self) -> None:
        layers: list[nn.Module] = [_conv(3, 64), TAEBlock()]
        for stage in range(3):
            layers.append(_conv(64, 64, bias=False, stride=2))
            layers.extend(TAEBlock(mid=stage == 2) for _ in range(3))
        layers.append(_conv(64, LATENT_CHANNELS))
        super().__init__(*layers)


class TAEF2Decoder(nn.Sequential):
    """[B, 32, h, w] -> [B, 3, 8h, 8w] (not clamped; clamp to [0, 1] when making an image)."""

    def __init__(self) -> None:
        layers: list[nn.Module] = [SoftClamp(), _conv(LATENT_CHANNELS, 64), nn.ReLU()]
        layers.extend(TAEBlock(mid=True) for _ in range(3))
        for n_blocks in (3, 3, 1):
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            layers.append(_conv(64, 64, bias=False))
            layers.extend(TAEBlock() for _ in range(n_blocks))
        layers.append(_conv(64, 3))
        super().__init__(*layers)


def load_taef2(folder: str | Path, verify: bool = True) -> tuple[TAEF2Encoder, TAEF2Decoder]:
    """Build both networks and load the published fp16 state dicts strictly (as fp32)."""
    folder = Path(folder)
    nets: list[nn.Module] = []
    for name, net in (("taef2_encoder.pth", TAEF2Encoder()), ("taef2_decoder.pth", TAEF2Decoder())):
        path = folder / name
        if not path.is_file():
            raise ModelError(f"TAEF2 weights not found: {path}")
        if verify and sha256_file(path) != TAEF2_SHA256[name]:
            raise ModelError(f"TAEF2 weights {path} do not match the expected sha256")
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        nets.append(net.eval())
    enc, dec = nets
    assert isinstance(enc, TAEF2Encoder) and isinstance(dec, TAEF2Decoder)
    return enc, dec
