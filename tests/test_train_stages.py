"""Stages 0 -> 1 -> 2 on synthetic data with a tiny model through the real loop, then release and code.

Each stage must lower its loss within a few dozen steps; the released file must compress and
decompress through the real codec path.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _synthetic import synthetic_items
from conftest import structured_image, tiny_config
from mrt.cli.main import main
from mrt.codec import Codec
from mrt.train.config import TrainConfig
from mrt.train.loop import train

ITEMS = synthetic_items(6, 128, 128, seed=0)


def _cfg(
    task: str, out: Path, task_args: dict[str, Any], steps: int = 40, pixels: bool = False, lr: float = 2e-3
) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "task": task,
            "model": tiny_config().to_dict(),
            "task_args": {"init_taef2": False, **task_args},
            "data": {"crop": 64, "batch_size": 4, "with_pixels": pixels, "with_latents": True},
            "optim": {"lr": lr, "warmup_steps": 2, "schedule": "constant", "grad_clip": 1.0},
            "run": {
                "out_dir": str(out),
                "steps": steps,
                "log_every": 10,
                "ckpt_every": 1000,
                "threads": 1,
                "ema_decay": None,
                "progress": False,
                "tensorboard": False,
            },
        }
    )


def _first_last(out: Path, key: str) -> tuple[float, float]:
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return float(rows[0][key]), float(rows[-1][key])


@pytest.mark.slow
def test_stages_learn_and_release(tmp_path: Path) -> None:
    s0 = tmp_path / "s0"
    train(_cfg("stage0", s0, {}), items=ITEMS)
    first, last = _first_last(s0, "latent_mse")
    assert last < first

    s1 = tmp_path / "s1"
    train(_cfg("stage1", s1, {"stage0": str(s0), "k_choices": [4, 8], "rate_steps": 2, "w_rate": 1.0}), items=ITEMS)
    first, last = _first_last(s1, "ce")
    assert last < first
    first, last = _first_last(s1, "loss")
    assert last < first

    s2 = tmp_path / "s2"
    train(
        _cfg("stage2", s2, {"stage1": str(s1), "k_choices": [8], "w_latent": 0.0, "w_pixel": 10.0, "w_rate": 1.0},
             steps=30, pixels=True, lr=5e-4),
        items=ITEMS,
    )
    first, last = _first_last(s2, "psnr")
    assert last > first

    model_file = tmp_path / "fam.mrtm"
    rc = main(["release", str(s2), "-o", str(model_file), "--name", "fam", "--tokens", "4,8", "--description", "test"])
    assert rc == 0
    codec = Codec.load(str(model_file))
    assert codec.name == "fam-k8"
    img = structured_image(100, 70)
    data = codec.compress(img)
    assert np.array_equal(codec.decompress(data), codec.reconstruct(img))
    # releasing again over an existing file needs --force
    assert main(["release", str(s2), "-o", str(model_file), "--name", "fam", "--tokens", "4,8"]) != 0
    # a model soup (here the run's checkpoint mixed with itself) releases too, and says what it mixed
    import json

    from mrt.models.modelfile import load_model_file
    from mrt.train.checkpoint import average_checkpoints

    ckpts = sorted((s2 / "checkpoints").glob("*.pt"))[-1:] * 2
    soup = average_checkpoints(ckpts, tmp_path / "soup.pt")
    assert main(["release", str(soup), "-o", str(tmp_path / "soup.mrtm"), "--name", "soup", "--tokens", "8"]) == 0
    _, info, _ = load_model_file(tmp_path / "soup.mrtm")
    mixed = json.loads(info.provenance)["average"]
    assert mixed["sources"] == [str(p) for p in ckpts] and mixed["weights"] == [0.5, 0.5]


@pytest.mark.slow
def test_adversarial_term_trains_the_discriminator_only_through_its_own_loss(tmp_path: Path) -> None:
    """Stage 0 with w_adv: the discriminator learns (its real/fake scores separate), the
    generator term starts at adv_start, and a release-style export leaves the discriminator out."""
    import torch

    from mrt.train.checkpoint import export_weights, load_checkpoint

    out = tmp_path / "adv"
    cfg = _cfg("stage0", out, {"w_pixel": 1.0, "w_adv": 0.1, "adv_start": 10, "disc_width": 16},
               steps=20, pixels=True, lr=1e-3)
    train(cfg, items=ITEMS)
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"d_loss", "g_adv", "d_real", "d_fake"} <= set(rows[0])
    first, last = float(rows[0]["d_loss"]), float(rows[-1]["d_loss"])
    assert last < first  # hinge loss starts near 2 and falls as D separates real from fake
    assert float(rows[-1]["d_real"]) > float(rows[-1]["d_fake"])
    state = load_checkpoint(out)["task_state"]
    assert any(k.startswith("disc.") for k in state)
    assert not any(k.startswith("disc.") for k in export_weights(out, prefix="target."))
    assert torch.isfinite(torch.tensor(float(rows[-1]["loss"])))


@pytest.mark.slow
def test_stage0_trains_a_from_scratch_pixel_generator(tmp_path: Path) -> None:
    """``pixel_generator: scratch`` trains the RGB decoder (TAEF2's stays frozen); pixels improve."""
    from mrt.train.config import load_config
    from mrt.train.tasks import build_task

    shipped = load_config(Path(__file__).resolve().parents[1] / "configs" / "stage0_scratch.yaml")
    assert shipped.model.target.pixel_generator == "scratch" and shipped.data.with_pixels

    def cfg(kind: str) -> TrainConfig:
        tree = _cfg("stage0", tmp_path / kind, {"w_pixel": 10.0}, steps=20, pixels=True, lr=2e-3).to_dict()
        tree["model"]["target"]["pixel_generator"] = kind
        return TrainConfig.from_dict(tree)

    for kind, trained in (("scratch", True), ("taef2", False)):
        rgb = build_task(cfg(kind)).target.generator.rgb_decoder
        assert all(p.requires_grad == trained for p in rgb.parameters()), kind
    train(cfg("scratch"), items=ITEMS)
    first, last = _first_last(tmp_path / "scratch", "psnr")
    assert last > first + 1.0
