"""Effective receptive fields: global mixing reaches other windows, no mixing does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrt.eval.erf import effective_receptive_field, erf_image
from mrt.models.codec_model import MRTCodecModel
from mrt.models.config import MRTConfig, RCMConfig, TargetConfig


def _model(mixing: str) -> MRTCodecModel:
    torch.manual_seed(0)
    cfg = MRTConfig(window=32, dim=32, heads=2, enc_depth=2, dec_depth=1, n_tokens=4, token_bits=8, mixing=mixing,
                    rcm=RCMConfig(dim=16, depth=1, groups=2, passes=2), target=TargetConfig(bits=8, dim=16, depth=1))
    return MRTCodecModel(cfg).eval()


IMG = np.random.default_rng(0).integers(0, 256, (96, 160, 3), dtype=np.uint8)  # 3 x 5 windows of 32 px


@pytest.mark.parametrize("mixing", ["birwkv", "global_vit"])
def test_pixel_erf_map_and_window(mixing: str) -> None:
    erf = effective_receptive_field(_model(mixing), IMG, target="tokens")
    assert erf.map.shape == IMG.shape[:2] and erf.map.max() == pytest.approx(1.0)
    assert erf.window == (1, 2) and erf.window_box == (32, 64, 64, 96)
    assert erf.outside_window(1e-4) > 0.3  # through TAEF2 alone, pixels far outside the window count


@pytest.mark.parametrize("mixing", ["birwkv", "global_vit"])
def test_global_mixing_reaches_other_windows_of_the_latent(mixing: str) -> None:
    erf = effective_receptive_field(_model(mixing), IMG, target="tokens", wrt="latent")
    assert erf.outside_window(1e-3) > 0.5


def test_no_mixing_stays_inside_the_window_of_the_latent() -> None:
    """Without cross-window mixing a window's tokens depend only on its own latent cells."""
    erf = effective_receptive_field(_model("none"), IMG, target="tokens", wrt="latent")
    assert erf.map.max() == pytest.approx(1.0)
    assert erf.outside_window(0.0) == 0.0


def test_pixel_target_and_picture() -> None:
    model = _model("birwkv")
    erf = effective_receptive_field(model, IMG, window=(0, 0), target="pixels")
    assert erf.extent(0.01) > 0
    pic = erf_image(erf, IMG)
    assert pic.shape == IMG.shape and pic.dtype == np.uint8
    with pytest.raises(ValueError, match="outside"):
        effective_receptive_field(model, IMG, window=(3, 0))
