"""A light analysis transform: RGB [B, 3, H, W] in [0, 1] -> TAEF2 latent [B, 32, H/8, W/8].

Same job and interface as ``TAEF2Encoder`` (issue 10): the TAEF2 encoder runs 64-channel
convolutions at full and half resolution, about 80 of its 92 GMAC on a 768x512 image, which make
it 94-96% of an encode. Here the first stages are replaced by a pixel-unshuffle to 1/4 resolution
(each 4x4 pixel block becomes 48 channels) and a stem at 1/4; from there on the layers are TAEF2's
own (its 1/4-resolution blocks, the stride-2 convolution to 1/8, the 1/8 blocks and the output
convolution), so a student starts from the teacher's weights and only the stem is new
(:meth:`LightEncoder.from_taef2`). About 17 GMAC at 768x512.

At extreme rates the analysis only has to let the MRT encoder choose its tokens: the tokens carry
far less than the 1/4-resolution detail the stem can see, so a latent that is close to TAEF2's in
MSE should code almost the same file (measured in ``docs/light_generator.md``).
"""

from __future__ import annotations

import torch
from torch import nn

from mrt.models.taef2 import TAEBlock, TAEF2Encoder

STEM_FACTOR = 4  # the pixel-unshuffle factor: the stem works at 1/4 resolution
TAEF2_TAIL = 7  # index of TAEF2Encoder's first layer at 1/4 resolution (its first 1/4 block)


class LightEncoder(nn.Module):
    """Pixel-unshuffle(4) -> conv 48->64 + ReLU -> ``stem_blocks`` residual blocks at 1/4 -> TAEF2's tail."""

    tile_side = 1024  # the codec tiles large images in 1024-px tiles for this network (mrt.models.codec_model.tile_side)

    def __init__(self, stem_blocks: int = 2) -> None:
        super().__init__()
        c = 64
        self.stem = nn.Sequential(
            nn.PixelUnshuffle(STEM_FACTOR),  # [B, 48, H/4, W/4]
            nn.Conv2d(3 * STEM_FACTOR**2, c, 3, padding=1),
            nn.ReLU(),
            *(TAEBlock(c) for _ in range(stem_blocks)),
        )
        self.tail = nn.Sequential(*list(TAEF2Encoder())[TAEF2_TAIL:])  # 1/4 blocks, down to 1/8, blocks, conv to 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.stem(x))

    @classmethod
    def from_taef2(cls, teacher: TAEF2Encoder, stem_blocks: int = 2) -> "LightEncoder":
        """A student whose tail carries the teacher's weights (the stem stays freshly initialised)."""
        student = cls(stem_blocks)
        load_pretrained_analysis(student, teacher)
        return student


def load_pretrained_analysis(analysis: nn.Module, teacher: TAEF2Encoder) -> None:
    """Initialise a model's analysis from the pretrained TAEF2 encoder: all of it, or for the
    light encoder its TAEF2 tail (its stem is trained by ``task: distill_analysis``)."""
    if isinstance(analysis, LightEncoder):
        analysis.tail.load_state_dict(nn.Sequential(*list(teacher)[TAEF2_TAIL:]).state_dict())
    else:
        analysis.load_state_dict(teacher.state_dict())


def build_analysis(kind: str) -> nn.Module:
    """The analysis transform of a model config's ``analysis`` field (``taef2`` or ``light``)."""
    if kind == "light":
        return LightEncoder()
    if kind == "taef2":
        return TAEF2Encoder()
    raise ValueError(f"unknown analysis {kind!r} (taef2, light)")
