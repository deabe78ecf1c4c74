"""Shared fixtures: a tiny randomly initialised codec model (no ../shared needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from mrt.models.codec_model import MRTCodecModel
from mrt.models.config import MRTConfig, RCMConfig, TargetConfig


def tiny_config(**changes: object) -> MRTConfig:
    cfg = MRTConfig(
        name="tiny",
        window=64,
        dim=32,
        heads=2,
        enc_depth=1,
        dec_depth=1,
        mlp_ratio=2.0,
        n_tokens=8,
        token_bits=8,
        rcm=RCMConfig(dim=16, depth=1, groups=2, passes=2),
        target=TargetConfig(bits=8, dim=16, depth=1),
    )
    return cfg.replace(**changes) if changes else cfg


def make_tiny_model(seed: int = 0, k_code: int | None = None, **changes: object) -> MRTCodecModel:
    torch.manual_seed(seed)
    model = MRTCodecModel(tiny_config(**changes), k_code=k_code)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model() -> MRTCodecModel:
    return make_tiny_model()


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory: pytest.TempPathFactory, tiny_model: MRTCodecModel) -> Path:
    from mrt.models.modelfile import save_model_file

    folder = tmp_path_factory.mktemp("models")
    path = folder / "tiny.mrtm"
    save_model_file(tiny_model, path, variants={"tiny-k4": 4, "tiny-k8": 8}, default_variant="tiny-k8",
                    description="tiny random test model")
    return path


def structured_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful image with edges (more realistic than noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack(
        [
            127 + 100 * np.sin(x / (7 + 5 * rng.random()) + y / 23),
            127 + 100 * np.cos(y / (11 + 5 * rng.random())),
            255 * ((x // 16 + y // 16) % 2),
        ],
        axis=-1,
    )
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Run the test with one torch thread (the golden files' checksums were recorded so)."""
    from mrt.models.threads import one_thread as fixed_threads

    with fixed_threads():
        yield
