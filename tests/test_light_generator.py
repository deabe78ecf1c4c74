"""The light pixel generator (issue 10): shapes, tiling, config choice, and its distillation task."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn

from _synthetic import synthetic_items
from conftest import tiny_config
from mrt.errors import ConfigError
from mrt.models.codec_model import HALO, TILE, MRTCodecModel, apply_tiled, tile_halo, tile_side
from mrt.models.config import MRTConfig, TargetConfig, canonical_json
from mrt.models.generator import PixelGenerator
from mrt.models.light_decoder import DEFAULT_SPEC, LightDecoder, LightSpec, conv_macs
from mrt.models.modelfile import save_model_file
from mrt.models.taef2 import TAEF2Decoder
from mrt.train.config import TrainConfig
from mrt.train.loop import train


def _busy_light_decoder(seed: int = 0, spec: LightSpec = DEFAULT_SPEC) -> LightDecoder:
    """A light decoder whose residual blocks are not the identity (their last conv starts at zero)."""
    torch.manual_seed(seed)
    net = LightDecoder(spec)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.5 / (m.in_channels * m.kernel_size[0] * m.kernel_size[1]) ** 0.5)
    return net.eval()


@pytest.mark.parametrize("h,w", [(1, 1), (3, 5), (7, 12)])
def test_light_decoder_shapes_for_odd_sizes(h: int, w: int) -> None:
    net = _busy_light_decoder()
    with torch.no_grad():
        out = net(torch.randn(2, 32, h, w))
    assert out.shape == (2, 3, 8 * h, 8 * w)
    assert torch.isfinite(out).all()


def test_light_decoder_is_much_lighter_than_taef2() -> None:
    shape = (1, 32, 64, 96)  # a 768x512 image
    assert conv_macs(LightDecoder(), shape) * 5 < conv_macs(TAEF2Decoder(), shape)


def test_light_decoder_tiles_exactly_with_the_codec_halo() -> None:
    """Its receptive field fits the codec's 64-px halo: tiled rendering equals the untiled one."""
    net = _busy_light_decoder(1)
    assert net.spec.receptive_radius + 7 < HALO
    assert tile_side(net) == 1024 and tile_side(TAEF2Decoder()) == TILE == 512  # the codec's tiles for each
    latent = torch.randn(1, 32, 136, 70)  # > one 1024-px tile down, > one 512-px tile across
    with torch.no_grad():
        whole = net(latent)
        for tile in (TILE, tile_side(net)):
            tiled = apply_tiled(net, latent, 8, 8, tile)
            assert tiled.shape == whole.shape
            torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)


def test_light_is_a_config_choice_that_leaves_existing_configs_unchanged() -> None:
    assert isinstance(PixelGenerator(TargetConfig(pixel_generator="light")).rgb_decoder, LightDecoder)
    assert isinstance(PixelGenerator(TargetConfig()).rgb_decoder, TAEF2Decoder)
    light = MRTConfig.from_dict({**MRTConfig().to_dict(), "target": {"pixel_generator": "light"}})
    assert canonical_json(light.to_dict()) == canonical_json(MRTConfig().to_dict()).replace('"taef2"', '"light"')
    model = MRTCodecModel(tiny_config(target=TargetConfig(bits=8, dim=16, depth=1, pixel_generator="light"))).eval()
    with torch.no_grad():
        assert model.render(torch.randn(1, 32, 3, 5)).shape == (1, 3, 24, 40)


def _teacher_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "teacher.mrtm"
    save_model_file(MRTCodecModel(tiny_config()), path, {"t-k8": 8}, "t-k8", dtype=torch.float32)
    return path


def _distill_cfg(out: Path, teacher: Path, steps: int = 30) -> TrainConfig:
    model = tiny_config(target=TargetConfig(bits=8, dim=16, depth=1, pixel_generator="light")).to_dict()
    return TrainConfig.from_dict(
        {
            "task": "distill_light",
            "model": model,
            "task_args": {"teacher": str(teacher), "w_lpips": 0.0, "w_pixel": 0.1, "p_codec": 0.5, "k_choices": [4, 8]},
            "data": {"crop": 64, "batch_size": 4, "with_pixels": True, "with_latents": True},
            "optim": {"lr": 2e-3, "warmup_steps": 2, "schedule": "constant", "grad_clip": 1.0},
            "run": {"out_dir": str(out), "steps": steps, "log_every": 10, "ckpt_every": 1000, "threads": 1,
                    "ema_decay": None, "progress": False, "tensorboard": False},
        }
    )


@pytest.mark.slow
def test_distillation_lowers_the_loss_and_trains_only_the_light_decoder(tmp_path: Path) -> None:
    from mrt.train.checkpoint import export_weights
    from mrt.train.distill import build_distill_task

    teacher = _teacher_file(tmp_path)
    cfg = _distill_cfg(tmp_path / "run", teacher)
    task = build_distill_task(cfg)
    trainable = {n for n, p in task.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.generator.rgb_decoder.") for n in trainable)
    train(cfg, items=synthetic_items(6, 128, 128, seed=0))
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["l1_teacher"]) < float(rows[0]["l1_teacher"])
    assert {"psnr_teacher_codec", "psnr_teacher_taef2", "psnr_pixels"} <= set(rows[0])
    # the checkpoint's model.* is a whole codec with the light generator and the teacher's other weights
    light = MRTCodecModel(cfg.model)
    light.load_state_dict(export_weights(tmp_path / "run", prefix="model."), strict=True)
    from mrt.models.modelfile import load_model_file

    base, _, _ = load_model_file(teacher)
    torch.testing.assert_close(light.decoder.state_dict(), base.decoder.state_dict())


def test_distillation_refuses_a_model_config_that_is_not_the_teachers(tmp_path: Path) -> None:
    from mrt.train.distill import build_distill_task

    teacher = _teacher_file(tmp_path)
    tree = _distill_cfg(tmp_path / "run", teacher).to_dict()
    tree["model"]["dim"] = 64
    with pytest.raises(ConfigError, match="teacher"):
        build_distill_task(TrainConfig.from_dict(tree))
    tree = _distill_cfg(tmp_path / "run", teacher).to_dict()
    tree["model"]["target"]["pixel_generator"] = "taef2"
    with pytest.raises(ConfigError, match="light"):
        build_distill_task(TrainConfig.from_dict(tree))


def test_light_blocks_are_a_config_choice_whose_default_keeps_ids() -> None:
    """``target.light_blocks`` sizes the light decoder; at its default the canonical JSON (and so
    every released model id) is unchanged; bad counts are refused."""
    from mrt.models.config import DEFAULT_LIGHT_BLOCKS

    assert DEFAULT_LIGHT_BLOCKS == LightSpec().blocks
    default = MRTConfig(target=TargetConfig(pixel_generator="light"))
    assert "light_blocks" not in default.to_dict()["target"]
    deeper = MRTConfig.from_dict({**default.to_dict(), "target": {"pixel_generator": "light", "light_blocks": [3, 2, 3]}})
    assert deeper.target.light_blocks == (3, 2, 3) and deeper.to_dict()["target"]["light_blocks"] == (3, 2, 3)
    assert MRTConfig.from_dict(deeper.to_dict()) == deeper
    net = PixelGenerator(deeper.target).rgb_decoder
    assert isinstance(net, LightDecoder) and len(net.level2) == 3 and len(net.level8) == 3
    for bad in ([3, 2], [3, -1, 1], [3, 2, 17]):
        with pytest.raises(ConfigError, match="light_blocks"):
            TargetConfig(pixel_generator="light", light_blocks=tuple(bad))  # type: ignore[arg-type]


def test_deeper_light_decoder_starts_as_the_one_it_grows_from_and_tiles_with_a_wider_halo() -> None:
    """Blocks added to a trained light decoder start as the identity (their last conv is zero), so
    loading the smaller decoder's weights gives the same pixels; the wider reach gets a wider halo."""
    small = _busy_light_decoder(2)
    torch.manual_seed(3)
    deep = LightDecoder(LightSpec(blocks=(3, 2, 3))).eval()
    missing, unexpected = deep.load_state_dict(small.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith(("level2.1.", "level2.2.")) for k in missing)
    latent = torch.randn(1, 32, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(deep(latent), small(latent))
    assert small.halo == HALO == 64 and deep.spec.receptive_radius == 60 and deep.halo == 80
    deep = _busy_light_decoder(4, LightSpec(blocks=(3, 2, 3)))
    latent = torch.randn(1, 32, 136, 70)
    with torch.no_grad():
        whole = deep(latent)
        tiled = apply_tiled(deep, latent, 8, 8, tile_side(deep), tile_halo(deep))
        torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)
        narrow = apply_tiled(deep, latent, 8, 8, tile_side(deep), 32)  # a margin short of its reach shows
        assert (narrow - whole).abs().max() > 1e-4


def _noisy_light_decoder(seed: int) -> LightDecoder:
    net = _busy_light_decoder(seed, LightSpec(noise=True))
    assert net.noise is not None
    with torch.no_grad():
        for inj in net.noise:
            inj.strength.normal_(0.0, 0.01)
    return net


def test_position_noise_is_a_fixed_field_of_unit_variance() -> None:
    from mrt.models.light_decoder import position_noise

    field = position_noise(64, 96, (0, 0), 1)
    assert field.shape == (1, 1, 64, 96) and field.dtype == torch.float32
    assert abs(float(field.mean())) < 0.05 and abs(float(field.std()) - 1.0) < 0.05
    # any window is the same numbers: a window at (10, 20) is the field cut there
    torch.testing.assert_close(position_noise(30, 40, (10, 20), 1), field[:, :, 10:40, 20:60], rtol=0, atol=0)
    assert not torch.equal(position_noise(64, 96, (0, 0), 2), field)  # another level, another field
    # not periodic, not correlated with its neighbours
    f = field[0, 0]
    assert abs(float((f[:, 1:] * f[:, :-1]).mean())) < 0.05 and abs(float((f[1:] * f[:-1]).mean())) < 0.05
    assert not torch.equal(f[:, :8], f[:, 8:16]) and not torch.equal(f[:16], f[16:32])
    # pinned numbers: a released noise decoder's pixels depend on them (integer hash: any machine)
    assert [round(v, 4) for v in field[0, 0, 0, :3].tolist()] == [-1.2811, 0.045, -1.6695]
    assert [round(v, 4) for v in position_noise(1, 2, (5000, 7), 3)[0, 0, 0].tolist()] == [-1.1114, -0.0997]


def test_noise_decoder_starts_as_the_plain_one_and_loads_its_weights() -> None:
    """Zero strengths at start: a noise decoder given a plain decoder's weights draws the same
    pixels (training can start from a released model); its only new tensors are the strengths."""
    plain = _busy_light_decoder(5)
    noisy = LightDecoder(LightSpec(noise=True)).eval()
    missing, unexpected = noisy.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and sorted(missing) == [f"noise.{i}.strength" for i in range(3)]
    latent = torch.randn(1, 32, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(noisy(latent), plain(latent), rtol=0, atol=0)
        assert noisy.positional and not plain.positional


def test_noise_decoder_is_deterministic_and_tiles_exactly() -> None:
    """The noise is a function of the position in the image: the same latent decodes to the same
    pixels, a tile told its origin draws the whole image's pixels there, and a wrong origin does not."""
    net = _noisy_light_decoder(6)
    latent = torch.randn(1, 32, 136, 70)
    with torch.no_grad():
        whole = net(latent)
        torch.testing.assert_close(net(latent), whole, rtol=0, atol=0)
        assert (whole - _busy_light_decoder(6)(latent)).abs().mean() > 1e-3  # the noise shows
        tiled = apply_tiled(net, latent, 8, 8, tile_side(net), tile_halo(net), with_origin=True)
        torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)
        part = net(latent[:, :, 40:60, 10:30], (40, 10))
        torch.testing.assert_close(part[:, :, 64:96, 64:96], whole[:, :, 384:416, 144:176], atol=1e-5, rtol=1e-5)
        wrong = net(latent[:, :, 40:60, 10:30], (0, 0))
        assert (wrong[:, :, 64:96, 64:96] - whole[:, :, 384:416, 144:176]).abs().max() > 1e-3
    # the codec's render tiles such a decoder with origins (a 2400x1400 image: over TILE_PIXELS)
    model = MRTCodecModel(tiny_config(target=TargetConfig(bits=8, dim=16, depth=1, pixel_generator="light",
                                                          light_noise=True))).eval()
    model.generator.rgb_decoder.load_state_dict(net.state_dict())
    big = torch.randn(1, 32, 300, 175)
    with torch.no_grad():
        torch.testing.assert_close(model.render(big), net(big), atol=1e-5, rtol=1e-5)


def test_noise_decoder_draws_new_noise_in_training_and_is_a_config_choice() -> None:
    net = _noisy_light_decoder(7).train()
    latent = torch.randn(1, 32, 6, 6)
    torch.manual_seed(0)
    a, b = net(latent), net(latent)
    assert (a - b).abs().max() > 1e-3  # a random origin each call: no one noise image to learn
    net.eval()
    torch.testing.assert_close(net(latent), net(latent, (0, 0)), rtol=0, atol=0)
    default = MRTConfig(target=TargetConfig(pixel_generator="light"))
    assert "light_noise" not in default.to_dict()["target"]  # released ids unchanged
    noisy = MRTConfig.from_dict({**default.to_dict(), "target": {"pixel_generator": "light", "light_noise": True}})
    assert noisy.to_dict()["target"]["light_noise"] is True and MRTConfig.from_dict(noisy.to_dict()) == noisy
    assert isinstance(PixelGenerator(noisy.target).rgb_decoder, LightDecoder)
    with pytest.raises(ConfigError, match="light_noise needs"):
        TargetConfig(light_noise=True)
