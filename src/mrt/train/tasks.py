"""The training stages of DESIGN.md section 4 as tasks for the shared loop.

* ``stage0``: 2-D discrete-target autoencoder on the frozen TAEF2 latent (target encoder + LFQ at
  1/16 + pixel generator). Its LFQ codes are the discrete targets of stage 1.
* ``stage1``: MRT encoder -> LFQ 1-D tokens -> MRT decoder aligned to stage 0's targets with
  cross-entropy, plus the RCM rate term, the LFQ terms and a latent reconstruction term through
  the (frozen) stage-0 pixel generator. Nested token dropout (a random number of leading tokens
  per window) trains every rate point of a model family at once.
* ``stage2``: end-to-end fine-tuning of RCM, MRT decoder and pixel generator with rate + latent +
  pixel + perceptual (LPIPS / DISTS) losses; encoder and LFQ frozen.

Every task is an ``nn.Module`` whose ``forward(batch, step)`` returns a ``LossOutput``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mrt.data.batch import Batch
from mrt.errors import ConfigError
from mrt.models.codec_model import CodecOutput, ImageCodecModel, MRTCodecModel
from mrt.models.config import MRTConfig
from mrt.models.generator import TargetAutoencoder
from mrt.models.light_encoder import load_pretrained_analysis
from mrt.models.modelfile import build_codec_model
from mrt.models.rcm import Step
from mrt.models.taef2 import load_taef2
from mrt.train.checkpoint import export_weights, load_checkpoint
from mrt.train.config import TaskArgs, TrainConfig
from mrt.train.task import LossOutput, Task


def _psnr_log(mse: torch.Tensor) -> float:
    return float(-10.0 * torch.log10(mse.detach().float().clamp_min(1e-10)))


def _perceptual(args: TaskArgs) -> tuple[nn.Module | None, nn.Module | None]:
    """LPIPS-alex and DISTS modules when their weights are used (lazily imported: heavy), built from
    ``task_args.loss_pack`` when one is given (leased machines), else from the verified metric weights."""
    lpips = dists = None
    if args.loss_pack and (args.w_lpips > 0 or args.w_dists > 0):
        from mrt.train.loss_pack import perceptual_from_pack

        return perceptual_from_pack(args.loss_pack, lpips=args.w_lpips > 0, dists=args.w_dists > 0)
    if args.w_lpips > 0:
        from mrt.metrics import LPIPS

        lpips = LPIPS(net="alex").requires_grad_(False).eval()
    if args.w_dists > 0:
        from mrt.metrics import DISTS

        dists = DISTS().requires_grad_(False).eval()
    return lpips, dists


DISCRIMINATORS = ("patch", "features")


def _discriminator(args: TaskArgs) -> nn.Module | None:
    """The discriminator of the adversarial term (``task_args.disc``), when it is used (``w_adv > 0``)."""
    if args.disc not in DISCRIMINATORS:
        raise ConfigError(f"task_args.disc must be one of {', '.join(DISCRIMINATORS)}, got {args.disc!r}")
    if args.adv_start < 0 or args.adv_ramp < 0:
        raise ConfigError("task_args.adv_start and task_args.adv_ramp must be >= 0")
    if args.w_adv <= 0:
        return None
    if args.disc == "features":
        from mrt.models.feature_discriminator import FeatureDiscriminator

        if args.disc_width <= 0 or args.disc_width % 8:
            raise ConfigError(f"task_args.disc_width must be a positive multiple of 8, got {args.disc_width}")

        if not args.loss_pack:
            return FeatureDiscriminator(args.disc_width)
        from mrt.train.loss_pack import load_lite1_from_pack

        disc = FeatureDiscriminator(args.disc_width, pretrained=False)
        load_lite1_from_pack(disc.backbone, args.loss_pack)
        return disc
    from mrt.models.discriminator import PatchDiscriminator

    return PatchDiscriminator(args.disc_width)


def adv_weight(args: TaskArgs, step: int) -> float:
    """Weight of the generator's adversarial term at ``step``: 0 before ``adv_start``, then a linear
    ramp to ``w_adv`` over ``adv_ramp`` steps (``adv_ramp: 0``: ``w_adv`` at once)."""
    if step < args.adv_start:
        return 0.0
    if args.adv_ramp <= 0:
        return args.w_adv
    return args.w_adv * min(1.0, (step - args.adv_start + 1) / args.adv_ramp)


def adversarial_term(
    disc: nn.Module, args: TaskArgs, fake: torch.Tensor, real: torch.Tensor, logs: dict[str, float], step: int
) -> torch.Tensor:
    """Discriminator hinge loss (every step; its gradient reaches only ``disc``) + the scheduled
    generator term (its gradient reaches only ``fake``); logs both and the discriminator's scores."""
    from mrt.models.discriminator import adversarial_losses

    adv = adversarial_losses(disc, fake, real)
    weight = adv_weight(args, step)
    logs.update(d_loss=float(adv.discriminator.detach()), g_adv=float(adv.generator.detach()),
                d_real=adv.real_score, d_fake=adv.fake_score, w_adv=weight)
    return adv.discriminator + weight * adv.generator if weight > 0 else adv.discriminator


def _pixel_losses(
    task: "Stage0Task | Stage2Task", recon: torch.Tensor, pixels: torch.Tensor, logs: dict[str, float], step: int
) -> torch.Tensor:
    """Weighted pixel MSE + LPIPS + DISTS (+ adversarial) of an RGB reconstruction (in fp32).

    With ``w_adv > 0`` the discriminator's hinge loss is added from step 0 (its gradient reaches
    only the discriminator) and the generator's from ``adv_start`` on (see :func:`adversarial_term`).
    """
    args = task.args
    recon = recon.float()
    mse = F.mse_loss(recon.clamp(0, 1), pixels)
    logs["psnr"] = _psnr_log(mse)
    total = args.w_pixel * F.mse_loss(recon, pixels)
    if task.lpips is not None:
        value = task.lpips(recon.clamp(0, 1), pixels).mean()
        logs["lpips"] = float(value.detach())
        total = total + args.w_lpips * value
    if task.dists is not None:
        value = task.dists(recon.clamp(0, 1), pixels).mean()
        logs["dists"] = float(value.detach())
        total = total + args.w_dists * value
    if task.disc is not None:
        total = total + adversarial_term(task.disc, args, recon.clamp(0, 1), pixels, logs, step)
    return total


class Stage0Task(Task):
    """Discrete-target autoencoder on TAEF2 latents (and optionally pixels)."""

    def __init__(self, cfg: MRTConfig, args: TaskArgs) -> None:
        super().__init__()
        self.args = args
        self.target = TargetAutoencoder(cfg.target)
        if args.init_taef2 and cfg.target.pixel_generator == "taef2":
            _, dec = load_taef2(args.taef2_dir)
            self.target.generator.rgb_decoder.load_state_dict(dec.state_dict())
        scratch = cfg.target.pixel_generator in ("scratch", "light")  # no pretrained weights: train it
        self.target.generator.rgb_decoder.requires_grad_(args.train_rgb_decoder or scratch)
        self.lpips, self.dists = _perceptual(args)
        self.disc = _discriminator(args)

    def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
        assert batch.latents is not None, "stage0 needs latents (data.with_latents: true)"
        q = self.target.quantize(batch.latents)
        codes = q.quantized.permute(0, 3, 1, 2)  # [B, bits, h/2, w/2]
        latent_pred = self.target.generator.latent_decoder(codes)
        latent_mse = F.mse_loss(latent_pred.float(), batch.latents)
        total = self.args.w_latent * latent_mse + q.entropy_loss + q.commit_loss
        logs = {"latent_mse": float(latent_mse.detach()), "lfq_h": float(q.sample_entropy or 0.0)}
        if self.args.w_pixel > 0 or self.lpips is not None or self.dists is not None or self.disc is not None:
            assert batch.pixels is not None, "pixel losses need data.with_pixels: true"
            recon = self.target.generator.rgb_decoder(latent_pred)
            total = total + _pixel_losses(self, recon, batch.pixels, logs, step)
        return LossOutput(total, logs)


class _CodecTask(Task):
    """Shared parts of stages 1 and 2: the codec model and the nested-token / rate-step sampling."""

    def __init__(self, cfg: MRTConfig, args: TaskArgs) -> None:
        super().__init__()
        self.cfg = cfg
        self.args = args
        self.model = MRTCodecModel(cfg)
        for k in args.k_choices:
            if not 1 <= k <= cfg.n_tokens:
                raise ConfigError(f"task_args.k_choices: {k} is not in 1..{cfg.n_tokens}")

    def sample_k(self, step: int) -> int:
        if not self.args.k_choices:
            return self.cfg.n_tokens
        return random.Random(step * 7919 + 17).choice(self.args.k_choices)

    def preview_loss(self, out: CodecOutput, batch: Batch) -> torch.Tensor:
        """MSE of the decoder's 1/4-resolution RGB preview against the 4x4-pooled pixels (0 without pixels)."""
        if self.args.w_preview <= 0:
            return out.features.new_zeros(())
        assert batch.pixels is not None, "w_preview needs data.with_pixels: true"
        target = F.avg_pool2d(batch.pixels, 4)
        geo = out.geometry
        return F.mse_loss(self.model.decoder.preview(out.features, geo.rows, geo.cols).float(), target)

    def rate_steps(self, step: int) -> list[Step] | None:
        """RCM steps whose rate is computed at this training step: all (None) or a seeded random subset."""
        rcm = self.model.rcm
        if self.args.rate_steps <= 0 or self.args.rate_steps >= rcm.n_steps:
            return None
        return random.Random(step * 104729 + 3).sample(rcm.steps(), self.args.rate_steps)


class Stage1Task(_CodecTask):
    """Align the 1-D tokens to stage 0's discrete targets (cross-entropy) + rate + latent terms."""

    def __init__(self, cfg: MRTConfig, args: TaskArgs) -> None:
        super().__init__(cfg, args)
        self.target_encoder = TargetAutoencoder(cfg.target)
        if args.stage0:
            self.target_encoder.load_state_dict(export_weights(args.stage0, prefix="target."), strict=True)
            self.model.generator.load_state_dict(self.target_encoder.generator.state_dict())
        if args.init_taef2:
            enc, _ = load_taef2(args.taef2_dir)
            load_pretrained_analysis(self.model.analysis, enc)
        del self.target_encoder.generator  # only its encoder + LFQ give targets
        self.target_encoder.requires_grad_(False)
        self.model.generator.requires_grad_(False)
        self.model.generator.latent_decoder.requires_grad_(args.train_latent_decoder)
        self.model.analysis.requires_grad_(False)

    def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
        assert batch.latents is not None, "stage1 needs latents (data.with_latents: true)"
        latents = batch.latents
        k = self.sample_k(step)
        targets = self.target_encoder.targets(latents).float()  # [B, bits, h/2, w/2] in {0,1}
        out = self.model(latents, k, rate_steps=self.rate_steps(step), rate_to_encoder=self.args.rate_to_encoder)
        ce = F.binary_cross_entropy_with_logits(out.target_logits.float(), targets)
        preview = self.preview_loss(out, batch)
        latent_mse = F.mse_loss(out.latent_pred.float(), latents)
        bpp = out.bpp
        tokens = out.tokens
        total = (
            self.args.w_ce * ce
            + self.args.w_preview * preview
            + self.args.w_latent * latent_mse
            + self.args.w_rate * bpp.mean()
            + tokens.entropy_loss
            + tokens.commit_loss
        )
        with torch.no_grad():
            acc = ((out.target_logits > 0).float() == targets).float().mean()
        logs = {
            "ce": float(ce.detach()),
            "bit_acc": float(acc),
            "latent_mse": float(latent_mse.detach()),
            "preview_psnr": _psnr_log(preview),
            "bpp": float(bpp.mean().detach()),
            "bits_per_token": float(out.rate_bits.mean().detach()) / (tokens.bits.shape[1] * k),
            "k": float(k),
        }
        return LossOutput(total, logs)


class Stage2Task(_CodecTask):
    """End-to-end fine-tuning of RCM, MRT decoder and pixel generator; the MRT encoder too with
    ``train_encoder`` (frozen by default, as in stage 2 of the paper's reading)."""

    def __init__(self, cfg: MRTConfig, args: TaskArgs) -> None:
        super().__init__(cfg, args)
        if args.stage1:
            self.model.load_state_dict(export_weights(args.stage1, prefix="model."), strict=True)
        elif args.init_taef2:
            enc, dec = load_taef2(args.taef2_dir)
            load_pretrained_analysis(self.model.analysis, enc)
            self.model.generator.rgb_decoder.load_state_dict(dec.state_dict())
        self.model.analysis.requires_grad_(False)
        self.model.encoder.requires_grad_(args.train_encoder)
        self.model.generator.rgb_decoder.requires_grad_(args.train_rgb_decoder)
        if not args.train_decoder:  # only the encoder learns, against the frozen decoder side
            for part in (self.model.rcm, self.model.decoder, self.model.generator):
                part.requires_grad_(False)
        self.lpips, self.dists = _perceptual(args)
        self.disc = _discriminator(args)

    def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
        assert batch.latents is not None, "stage2 needs latents (data.with_latents: true)"
        latents = batch.latents
        k = self.sample_k(step)
        pixel_terms = self.args.w_pixel > 0 or self.lpips is not None or self.dists is not None or self.disc is not None
        source = latents
        if self.args.encode_from_pixels:
            # what the encoder sees in use: the model's own analysis (say, the light one) of the
            # crop; the latent term below still aims at the true TAEF2 latent
            assert batch.pixels is not None, "task_args.encode_from_pixels needs data.with_pixels: true"
            with torch.no_grad():
                source = self.model.analysis(batch.pixels).float()  # [B, 32, H/8, W/8]
        out = self.model(source, k, with_pixels=pixel_terms, rate_steps=self.rate_steps(step),
                         train_encoder=self.args.train_encoder, rate_to_encoder=self.args.rate_to_encoder)
        preview = self.preview_loss(out, batch)
        latent_mse = F.mse_loss(out.latent_pred.float(), latents)
        bpp = out.bpp
        total = self.args.w_latent * latent_mse + self.args.w_preview * preview + self.args.w_rate * bpp.mean()
        logs = {"latent_mse": float(latent_mse.detach()), "bpp": float(bpp.mean().detach()), "k": float(k)}
        if pixel_terms:
            assert batch.pixels is not None, "pixel losses need data.with_pixels: true"
            assert out.recon is not None
            total = total + _pixel_losses(self, out.recon, batch.pixels, logs, step)
        return LossOutput(total, logs)


STAGES: dict[str, type[Task]] = {"stage0": Stage0Task, "stage1": Stage1Task, "stage2": Stage2Task}
LATENT2D_TASKS = ("latent2d", "latent2d_ft")  # the 2-D latent codec's tasks (mrt.train.latent2d_task)


def build_task(cfg: TrainConfig) -> nn.Module:
    """The task named by ``cfg.task``, built from the config's (typed, checked) model and task arguments."""
    if cfg.task == "distill_light":
        from mrt.train.distill import build_distill_task

        return build_distill_task(cfg)
    if cfg.task == "distill_analysis":
        from mrt.train.distill import build_distill_analysis_task

        return build_distill_analysis_task(cfg)
    if cfg.task in LATENT2D_TASKS:
        from mrt.train.latent2d_task import build_latent2d_task

        return build_latent2d_task(cfg.task, cfg.model, cfg.task_args)
    if cfg.task not in STAGES:
        raise ConfigError(f"unknown task {cfg.task!r}; choose one of {', '.join((*STAGES, *LATENT2D_TASKS))}, distill_light, distill_analysis")
    if cfg.model.kind != "mrt" and cfg.task != "stage0":
        raise ConfigError(f"task {cfg.task} trains MRT models; model.kind {cfg.model.kind} trains with {', '.join(LATENT2D_TASKS)}")
    return STAGES[cfg.task](cfg.model, cfg.task_args)  # type: ignore[call-arg]


def codec_model_from_checkpoint(path: str | Path, use_ema: bool = True) -> tuple[ImageCodecModel, dict[str, Any]]:
    """The codec model of a stage-1/2, distill_light or latent2d(_ft) checkpoint (EMA weights by default) and the config dict it stores.

    Missing ``model`` keys (older checkpoints stored only the keys the YAML set) take their defaults.
    """
    config = load_checkpoint(path)["config"]
    if config.get("task") not in ("stage1", "stage2", "distill_light", "distill_analysis", *LATENT2D_TASKS):
        raise ConfigError(
            f"{path} is a {config.get('task')!r} checkpoint; release needs stage1, stage2, distill_light, distill_analysis or latent2d(_ft)"
        )
    model = build_codec_model(MRTConfig.from_dict(dict(config["model"])))
    model.load_state_dict(export_weights(path, use_ema=use_ema, prefix="model."), strict=True)
    return model.eval(), config

