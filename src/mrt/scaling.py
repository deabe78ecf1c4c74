"""Which scale to code an image at: rate that follows the content, not the area (issue 15).

Every window of the codec gets the same number of tokens, so at a fixed scale the rate grows
with the area whatever the picture holds. Large photographs, though, hold little more than a
smaller copy of them: a 1920x1080 photograph resized by 2 and back typically keeps 38-50 dB
PSNR (Kodak images: 29-40 dB), far above what any extreme-rate codec keeps (20-25 dB). So the
encoder may code a downscaled copy (format version 3, :mod:`mrt.bitstream.scale`) and the
decoder restores the size.

:func:`choose_scale_code` is the default policy: the largest downscaling whose Lanczos round
trip still keeps ``min_roundtrip_psnr`` (the scale alone costs nothing visible at the codec's
distortion), never coding fewer than ``min_coded_pixels`` pixels (so Kodak-sized images and
smaller are always coded as they are). A detailed image keeps its scale; a flat or upscaled
one is coded smaller: the rate follows what the image holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from mrt.bitstream import HEADER_SIZES
from mrt.bitstream.budget import largest_candidate
from mrt.bitstream.scale import MAX_SCALE_CODE, coded_size
from mrt.errors import BudgetError
from mrt.io.resample import resize_rgb, roundtrip_psnr

if TYPE_CHECKING:
    from mrt.codec import Codec, EncodeReport


@dataclass(frozen=True)
class ScalePolicy:
    """Parameters of the automatic choice of the coding scale (see the module docstring)."""

    min_roundtrip_psnr: float = 32.0  # dB: what resizing down and up may lose at most
    min_coded_pixels: int = 768 * 512  # never code fewer pixels than this (a Kodak image)
    max_code: int = MAX_SCALE_CODE
    min_token_share: float = 0.5  # rate control: downscale further only while fewer than this share of K fits


DEFAULT_POLICY = ScalePolicy()


def allowed_codes(height: int, width: int, policy: ScalePolicy = DEFAULT_POLICY) -> list[int]:
    """Scale codes (0 first) whose coded image keeps at least ``policy.min_coded_pixels`` pixels."""
    codes = [0]
    for code in range(1, policy.max_code + 1):
        h, w = coded_size(height, width, code)
        if h * w < policy.min_coded_pixels:
            break
        codes.append(code)
    return codes


def choose_scale_code(img: np.ndarray, policy: ScalePolicy = DEFAULT_POLICY) -> int:
    """The largest allowed scale code whose Lanczos round trip keeps ``policy.min_roundtrip_psnr``."""
    height, width = img.shape[:2]
    chosen = 0
    for code in allowed_codes(height, width, policy)[1:]:
        if roundtrip_psnr(img, *coded_size(height, width, code)) < policy.min_roundtrip_psnr:
            break
        chosen = code
    return chosen


def coded_image(img: np.ndarray, code: int) -> np.ndarray:
    """The copy of ``img`` that a file at scale code ``code`` codes (``img`` itself at code 0)."""
    return resize_rgb(img, *coded_size(img.shape[0], img.shape[1], code))


@dataclass(frozen=True)
class _Candidate:
    """One scale's best fit under a budget: its coded tokens and the largest k that may fit."""

    code: int
    bits: torch.Tensor  # [nW, K, d] {0,1}
    top: int  # largest k whose estimated size may fit (0: none)
    estimated: tuple[int, ...]


def _candidate(codec: Codec, img: np.ndarray, code: int, budget: int) -> _Candidate:
    """One encoder pass at ``code`` (all K tokens) and the largest k whose estimated file may fit."""
    height, width = img.shape[:2]
    bits = codec.model.encode_bits(coded_image(img, code), codec.max_tokens)[0]  # [nW, K, d]
    pm1 = bits[None].float() * 2.0 - 1.0
    sizes: dict[int, int] = {}

    def estimate(k: int) -> int:
        if k not in sizes:
            with torch.inference_mode():
                rate = float(codec.model.rcm.rate_bits(pm1[:, :, :k])[0])
            sizes[k] = codec.file_size(math.ceil(rate / 8), height, width, k, code)
        return sizes[k]

    top = largest_candidate(estimate, codec.max_tokens, budget, base=HEADER_SIZES[2])
    return _Candidate(code, bits, top, tuple(sizes))


def fit_budget(
    codec: Codec,
    img: np.ndarray,
    budget: int,
    strict: bool,
    codes: list[int] | None = None,
    policy: ScalePolicy = DEFAULT_POLICY,
) -> EncodeReport:
    """Rate control: the best file of at most ``budget`` bytes over the scales ``codes`` (default: allowed ones).

    Per scale, one encoder pass gives all K tokens (the k-token file codes the first k) and the
    RCM's batched rate estimates sizes, so a secant search finds the largest k that may fit
    (``mrt.bitstream.budget``). Scales are tried from the least downscaled: the first whose k
    reaches ``policy.min_token_share`` of K wins (tokens are worth more than pixels down to
    there), else the last one tried. Real encodes then go down from its k until one fits (usually the
    first or second). ``BudgetError`` when even one token per window does not fit (``strict``).
    """
    height, width = img.shape[:2]
    enough = math.ceil(policy.min_token_share * codec.max_tokens)
    chosen: _Candidate | None = None
    for code in codes if codes is not None else allowed_codes(height, width, policy):
        cand = _candidate(codec, img, code, budget)
        if chosen is None or cand.top > chosen.top:
            chosen = cand
        if cand.top >= enough:
            chosen = cand
            break
    assert chosen is not None
    encoded: list[int] = []
    for k in range(max(chosen.top, 1), 0, -1):
        report = codec._encode_k(img, chosen.bits[:, :k].contiguous(), k, chosen.code)
        encoded.append(k)
        if len(report.data) <= budget or (k == 1 and not strict):
            return replace(report, estimated_ks=chosen.estimated, encoded_ks=tuple(encoded))
    raise BudgetError(
        f"cannot fit the {width}x{height} image in {budget} bytes: the smallest file "
        f"(1 token per window) is {len(report.data)} bytes"
    )
