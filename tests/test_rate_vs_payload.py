"""The training-time rate (``MRTCodecModel.forward(...).rate_bits``, batched over RCM steps) is
what the range coder really writes (``RCM.encode``, step by step): within 1% + 4 bytes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrt.codec import Codec
from mrt.models.codec_model import MRTCodecModel
from mrt.models.config import MRTConfig, RCMConfig, TargetConfig

TOLERANCE_BITS = 32  # range-coder termination and table quantisation, beyond the 1%


def _agree(rate_bits: float, payload: bytes) -> None:
    coded = len(payload) * 8
    assert abs(coded - rate_bits) <= 0.01 * rate_bits + TOLERANCE_BITS, (coded, rate_bits)


def _tiny_model(seed: int) -> MRTCodecModel:
    torch.manual_seed(seed)
    cfg = MRTConfig(window=64, dim=32, heads=2, enc_depth=1, dec_depth=1, n_tokens=8, token_bits=8,
                    rcm=RCMConfig(dim=16, depth=1, groups=2, passes=2), target=TargetConfig(bits=8, dim=16, depth=1))
    return MRTCodecModel(cfg).eval()


@pytest.mark.parametrize("k", [1, 3, 8])
def test_random_tokens(k: int) -> None:
    """Uniform random bits under an untrained RCM: the rate is near 1 bit per bit, and coded as estimated."""
    model = _tiny_model(k)
    gen = torch.Generator().manual_seed(k)
    bits01 = torch.randint(0, 2, (12, k, model.cfg.token_bits), generator=gen)  # [nW, k, d]
    with torch.no_grad():
        rate = float(model.rcm.rate_bits(bits01[None].float() * 2 - 1)[0])
    coded = model.rcm.encode(bits01)
    _agree(rate, coded.payload)
    assert rate > 0.5 * bits01.numel()  # random bits cannot be predicted much
    decoded, symbols = model.rcm.decode(coded.payload, 12, k)
    assert torch.equal(decoded, bits01) and np.array_equal(symbols, coded.symbols)


def _images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:128, 0:256] / 32.0
    smooth = np.stack([128 + 90 * np.sin(x + np.cos(y)), 128 + 90 * np.cos(y * 1.3), 128 + 60 * np.sin(x * y / 9)], -1)
    return {
        "noise": rng.integers(0, 256, (128, 256, 3), dtype=np.uint8),
        "smooth": smooth.clip(0, 255).astype(np.uint8),
        "flat": np.full((128, 256, 3), 90, np.uint8),
    }


@pytest.mark.parametrize("name", ["noise", "smooth", "flat"])
def test_shipped_model_training_rate_matches_the_file(name: str) -> None:
    """The shipped model's training forward on an image's latent predicts its real payload size."""
    codec = Codec.load("mrt-s-k16")
    model = codec.model
    img = _images()[name]
    with torch.no_grad():
        latent = model.analyse(model.image_to_tensor(img))
        out = model(latent, model.k_code)
    payload = model.rcm.encode(model.encode_bits(img)[0], portable=True).payload  # what files hold (version 4)
    _agree(float(out.rate_bits[0]), payload)
    assert float(out.bpp[0]) == pytest.approx(float(out.rate_bits[0]) / img.shape[0] / img.shape[1])
    # the container adds only its header to the payload
    assert len(codec.compress(img)) - len(payload) == 13
