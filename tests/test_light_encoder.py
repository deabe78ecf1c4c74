"""The light analysis transform (issue 10): shapes, TAEF2 tail, config, codec round trip, distillation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mrt.codec import Codec
from mrt.data.batch import Batch
from mrt.errors import ConfigError
from mrt.models.config import MRTConfig, model_id
from mrt.models.light_encoder import LightEncoder, build_analysis
from mrt.models.modelfile import save_model_file
from mrt.models.taef2 import TAEF2Encoder
from mrt.train.config import TaskArgs
from mrt.train.distill import DistillAnalysisTask

from conftest import make_tiny_model, structured_image, tiny_config


@pytest.mark.parametrize("hw", [(8, 8), (64, 96), (136, 72)])
def test_shapes_match_the_taef2_encoder(hw: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        assert LightEncoder()(x).shape == TAEF2Encoder()(x).shape == (2, 32, hw[0] // 8, hw[1] // 8)


def test_student_starts_from_the_teacher_tail_and_costs_far_less() -> None:
    torch.manual_seed(0)
    teacher = TAEF2Encoder().eval()
    student = LightEncoder.from_taef2(teacher).eval()
    tail = list(teacher)[7:]
    for a, b in zip(student.tail, tail, strict=True):
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(pa, pb)
    # the student's 1/4-resolution input feeds the teacher's own 1/4 layers: same output
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        quarter = torch.nn.Sequential(*list(teacher)[:7])(x)
        assert torch.allclose(student.tail(quarter), teacher(x), atol=1e-5)

    def macs(net: torch.nn.Module, size: int = 256) -> int:
        total = 0

        def hook(m: torch.nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            nonlocal total
            if isinstance(m, torch.nn.Conv2d):
                total += out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups

        hs = [m.register_forward_hook(hook) for m in net.modules()]
        with torch.no_grad():
            net(torch.rand(1, 3, size, size))
        for h in hs:
            h.remove()
        return total

    assert macs(student) < macs(teacher) / 4


def test_config_field_keeps_old_ids_and_is_checked() -> None:
    cfg = tiny_config()
    assert "analysis" not in cfg.to_dict()
    light = cfg.replace(analysis="light")
    assert light.to_dict()["analysis"] == "light" and MRTConfig.from_dict(light.to_dict()) == light
    assert model_id(light, "0" * 64) != model_id(cfg, "0" * 64)
    with pytest.raises(ConfigError, match="analysis"):
        tiny_config(analysis="huge")
    assert isinstance(build_analysis("light"), LightEncoder) and isinstance(build_analysis("taef2"), TAEF2Encoder)
    assert isinstance(make_tiny_model(0, analysis="light").analysis, LightEncoder)


def test_codec_with_the_light_analysis_round_trips(tmp_path: Path) -> None:
    model = make_tiny_model(2, analysis="light")
    path = tmp_path / "light.mrtm"
    save_model_file(model, path, variants={"la-k8": 8}, default_variant="la-k8", description="test")
    codec = Codec.load(str(path))
    assert isinstance(codec.model.analysis, LightEncoder)
    img = structured_image(72, 136)
    data = codec.compress(img)
    assert np.array_equal(Codec.load(str(path)).decompress(data), codec.reconstruct(img))


def _distill_task(**args: object) -> DistillAnalysisTask:
    torch.manual_seed(0)
    return DistillAnalysisTask(tiny_config(analysis="light"), TaskArgs(init_taef2=False, **args))  # type: ignore[arg-type]


def test_distill_analysis_trains_only_the_analysis_and_its_loss_goes_down() -> None:
    task = _distill_task(w_token=1.0)
    trainable = {n for n, p in task.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("model.analysis.") for n in trainable)
    torch.manual_seed(1)
    teacher = TAEF2Encoder().eval()
    pix = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        lat = teacher(pix)  # a reachable target: the tail is the teacher's, only the stem must learn
    opt = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=2e-3)
    losses = []
    for step in range(40):
        out = task.train()(Batch(pixels=pix, latents=lat), step)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        losses.append(float(out.total.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert "bit_agree" in task(Batch(pixels=pix, latents=lat), 10).logs
    frozen = [p for n, p in task.named_parameters() if not n.startswith("model.analysis.")]
    assert all(p.grad is None for p in frozen)


def test_distill_analysis_refuses_a_config_without_the_light_analysis() -> None:
    with pytest.raises(ConfigError, match="analysis: light"):
        DistillAnalysisTask(tiny_config(), TaskArgs(init_taef2=False))


def test_stage2_encode_from_pixels_feeds_the_models_own_analysis() -> None:
    """``encode_from_pixels``: the encoder reads the (frozen) light analysis of the crop, not the
    cached latent; the latent term still aims at the cached latent; the analysis gets no gradient."""
    import dataclasses

    from mrt.train.tasks import Stage2Task

    base = tiny_config(analysis="light")
    cfg = base.replace(target=dataclasses.replace(base.target, pixel_generator="light"))
    torch.manual_seed(0)
    args = dict(init_taef2=False, w_latent=1.0, w_rate=0.0, w_pixel=1.0, train_rgb_decoder=True)
    on = Stage2Task(cfg, TaskArgs(encode_from_pixels=True, **args))  # type: ignore[arg-type]
    off = Stage2Task(cfg, TaskArgs(**args))  # type: ignore[arg-type]
    off.load_state_dict(on.state_dict())
    pix = torch.rand(2, 3, 64, 64)
    latents = torch.randn(2, 32, 8, 8)
    seen: list[torch.Tensor] = []
    hook = on.model.encoder.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    out = on.train()(Batch(pixels=pix, latents=latents), 0)
    hook.remove()
    with torch.no_grad():
        own = on.model.analysis(pix)
    assert torch.allclose(seen[0], own, atol=1e-6) and not torch.allclose(seen[0], latents)
    out.total.backward()
    assert all(p.grad is None for p in on.model.analysis.parameters())
    assert any(p.grad is not None for p in on.model.generator.rgb_decoder.parameters())
    # the cached latent is the encoder's input without the flag, so the losses differ
    assert float(off.train()(Batch(pixels=pix, latents=latents), 0).total.detach()) != float(out.total.detach())
    with pytest.raises(AssertionError, match="encode_from_pixels needs"):
        on(Batch(pixels=None, latents=latents), 0)


@pytest.mark.parametrize("train_encoder", [False, True])
def test_stage2_trains_the_mrt_encoder_only_when_asked(train_encoder: bool) -> None:
    """``train_encoder``: the pixel loss reaches the MRT encoder through LFQ's straight-through;
    without it the encoder is frozen and gets no gradient. The analysis never does."""
    from mrt.train.tasks import Stage2Task

    torch.manual_seed(0)
    task = Stage2Task(tiny_config(), TaskArgs(init_taef2=False, w_latent=1.0, w_rate=1.0, w_pixel=1.0,
                                              train_encoder=train_encoder))
    out = task.train()(Batch(pixels=torch.rand(2, 3, 64, 64), latents=torch.randn(2, 32, 8, 8)), 0)
    out.total.backward()
    enc = list(task.model.encoder.parameters())
    assert all(p.requires_grad == train_encoder for p in enc)
    grads = [p.grad for p in enc if p.grad is not None]
    if train_encoder:
        assert len(grads) == len(enc) and any(float(g.abs().sum()) > 0 for g in grads)
    else:
        assert grads == []
    assert all(p.grad is None for p in task.model.analysis.parameters())


def test_stage2_encoder_only_freezes_the_decoder_side() -> None:
    """``train_decoder: false`` (an amortised token search): only the MRT encoder is trainable and
    gets gradients; RCM, decoder and generator are frozen; it needs ``train_encoder``."""
    from mrt.errors import ConfigError
    from mrt.train.config import TrainConfig
    from mrt.train.tasks import Stage2Task

    torch.manual_seed(0)
    task = Stage2Task(tiny_config(), TaskArgs(init_taef2=False, w_latent=1.0, w_rate=1.0, w_pixel=1.0,
                                              train_encoder=True, train_decoder=False, train_rgb_decoder=True))
    trainable = {n for n, _ in task.named_trainable_parameters()}
    assert trainable and all(n.startswith("model.encoder.") for n in trainable)
    assert trainable == {f"model.encoder.{n}" for n, _ in task.model.encoder.named_parameters()}
    out = task.train()(Batch(pixels=torch.rand(2, 3, 64, 64), latents=torch.randn(2, 32, 8, 8)), 0)
    out.total.backward()
    assert any(float(p.grad.abs().sum()) > 0 for p in task.model.encoder.parameters() if p.grad is not None)
    for part in (task.model.rcm, task.model.decoder, task.model.generator):
        assert all(p.grad is None for p in part.parameters())
    with pytest.raises(ConfigError, match="train_decoder: false needs task_args.train_encoder"):
        TrainConfig.from_dict({"task": "stage2", "model": tiny_config().to_dict(),
                               "task_args": {"train_decoder": False}})


def test_stage2_rate_to_encoder_lets_only_the_rate_reach_the_encoder() -> None:
    """``rate_to_encoder`` in stage 2: with the rate as the only loss term, the encoder gets a
    gradient only when asked (before, stage 2 ignored the flag); it needs ``train_encoder``."""
    from mrt.errors import ConfigError
    from mrt.train.config import TrainConfig
    from mrt.train.tasks import Stage2Task

    def encoder_grad(rate_to_encoder: bool) -> float:
        torch.manual_seed(0)
        task = Stage2Task(tiny_config(), TaskArgs(init_taef2=False, w_latent=0.0, w_rate=1.0, train_encoder=True,
                                                  rate_to_encoder=rate_to_encoder))
        out = task.train()(Batch(pixels=torch.rand(2, 3, 64, 64), latents=torch.randn(2, 32, 8, 8)), 0)
        out.total.backward()
        return sum(float(p.grad.abs().sum()) for p in task.model.encoder.parameters() if p.grad is not None)

    assert encoder_grad(False) == 0.0
    assert encoder_grad(True) > 0.0
    with pytest.raises(ConfigError, match="rate_to_encoder: true needs task_args.train_encoder"):
        TrainConfig.from_dict({"task": "stage2", "model": tiny_config().to_dict(),
                               "task_args": {"rate_to_encoder": True}})
