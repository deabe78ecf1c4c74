"""Distillation tasks of issue 10: the light RGB decoder and the light analysis transform.

``task: distill_analysis`` (:class:`DistillAnalysisTask`): the model config is the teacher's with
``analysis: light`` (``target.pixel_generator`` may differ too, so that it chains after
``distill_light`` through ``run.init_from``); every part but the analysis keeps the teacher file's
weights and stays frozen. The light encoder (``mrt.models.light_encoder``, its TAEF2 tail
initialised from the pretrained encoder) learns the cached TAEF2 latent of each crop from its
pixels: MSE on the latent away from the crop border (the cached latent was computed on the whole
image, so its border cells saw pixels the crop lacks) + ``w_token`` x MSE between the MRT
encoder's pre-quantisation token values on the student's and on the true latent (so the student
is exact where the tokens look). Logged: latent PSNR (peak 3, the latent's soft-clamp range) and
the share of token bits that agree.

``task: distill_light``: distil a shipped model's RGB decoder into the light decoder.

The task holds a complete codec model (``self.model``) whose config is the teacher's except
``target.pixel_generator: light``: every part but the RGB decoder carries the teacher file's
weights and stays frozen; the light RGB decoder (``model.generator.rgb_decoder``) is the only
trainable part. So a checkpoint's ``model.*`` weights are a whole codec with the light generator,
ready for ``run.init_from`` of a stage-2 fine-tuning. The teacher is the model file's own
(stage-2 fine-tuned) TAEF2-architecture RGB decoder (``self.teacher``, frozen).

Each batch renders two kinds of latents: the cached TAEF2 latents of the crops, and, for a share
``p_codec`` of the samples, the latents the codec itself decodes from its tokens
(``model.forward(latent, k).latent_pred``: the MRT encoder, LFQ, MRT decoder and latent decoder
of the teacher file, with a random number of tokens k per step), which is what the generator sees
in use. Loss: L1 (+ MSE) to the teacher's RGB + LPIPS-alex to the teacher's RGB + a smaller L1 to
the real pixels (+ with ``w_adv > 0`` an adversarial term: the discriminator of
``task_args.disc`` judges the student's RGB against the real pixels).
"""

from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F
from torch import nn

from mrt.data.batch import Batch
from mrt.errors import ConfigError
from mrt.models.codec_model import MRTCodecModel
from mrt.models.config import MRTConfig
from mrt.models.taef2 import TAEF2Decoder
from mrt.train.config import TaskArgs, TrainConfig
from mrt.train.task import LossOutput, Task
from mrt.train.tasks import _discriminator, adversarial_term

RGB_PREFIX = "generator.rgb_decoder."


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two RGB batches after clamping to [0, 1] (for the logs)."""
    mse = F.mse_loss(a.detach().float().clamp(0, 1), b.detach().float().clamp(0, 1))
    return float(-10.0 * torch.log10(mse.clamp_min(1e-10)))


def _load_teacher(cfg: MRTConfig, path: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(codec weights without the RGB decoder, RGB decoder weights) of a model file whose config
    matches ``cfg`` except for ``target.pixel_generator`` (which must be ``taef2`` or ``scratch``)."""
    from mrt.models.modelfile import load_model_file

    shipped, _, _ = load_model_file(path)
    expected = dataclasses.replace(shipped.cfg, target=dataclasses.replace(shipped.cfg.target, pixel_generator="light"))
    if shipped.cfg.target.pixel_generator == "light" or expected != cfg:
        raise ConfigError(f"task distill_light: model config must be the teacher's ({path}) with pixel_generator: light")
    state = shipped.state_dict()
    rgb = {k[len(RGB_PREFIX) :]: v for k, v in state.items() if k.startswith(RGB_PREFIX)}
    rest = {k: v for k, v in state.items() if not k.startswith(RGB_PREFIX)}
    return rest, rgb


class DistillLightTask(Task):
    """Light RGB decoder trained to render like the teacher's RGB decoder; everything else frozen."""

    def __init__(self, cfg: MRTConfig, args: TaskArgs) -> None:
        super().__init__()
        if cfg.target.pixel_generator != "light":
            raise ConfigError("task distill_light needs model.target.pixel_generator: light")
        for k in args.k_choices:
            if not 1 <= k <= cfg.n_tokens:
                raise ConfigError(f"task_args.k_choices: {k} is not in 1..{cfg.n_tokens}")
        if not 0.0 <= args.p_codec <= 1.0:
            raise ConfigError("task_args.p_codec must be in [0, 1]")
        self.cfg = cfg
        self.args = args
        self.model = MRTCodecModel(cfg)
        self.teacher = TAEF2Decoder()
        if args.teacher:
            rest, rgb = _load_teacher(cfg, args.teacher)
            missing, unexpected = self.model.load_state_dict(rest, strict=False)
            assert not unexpected and all(k.startswith(RGB_PREFIX) for k in missing), (missing, unexpected)
            self.teacher.load_state_dict(rgb, strict=True)
        self.model.requires_grad_(False)
        self.model.generator.rgb_decoder.requires_grad_(True)
        self.teacher.requires_grad_(False)
        self.lpips: nn.Module | None = None
        if args.w_lpips > 0:
            from mrt.metrics import LPIPS

            self.lpips = LPIPS(net="alex").requires_grad_(False).eval()
        self.disc = _discriminator(args)  # w_adv > 0: adversarial term, student vs real pixels

    def train(self, mode: bool = True) -> "DistillLightTask":
        """Only the light decoder (and the discriminator's heads) follow ``mode``; frozen parts stay in eval mode."""
        super().train(False)
        self.model.generator.rgb_decoder.train(mode)
        if self.disc is not None:
            self.disc.train(mode)
        return self

    def inputs(self, latents: torch.Tensor, step: int) -> tuple[torch.Tensor, int]:
        """The batch's latents with the first ``round(B * p_codec)`` replaced by the codec's own
        decoded latents (k tokens per window, drawn per step); returns (latents, n_codec)."""
        n_codec = round(latents.shape[0] * self.args.p_codec)
        if n_codec == 0:
            return latents, 0
        rng = random.Random(step * 7919 + 101)
        k = rng.choice(self.args.k_choices) if self.args.k_choices else self.cfg.n_tokens
        with torch.no_grad():
            decoded = self.model(latents[:n_codec], k=k).latent_pred.float()
        return torch.cat([decoded, latents[n_codec:]]), n_codec

    def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
        assert batch.latents is not None, "distill_light needs latents (data.with_latents: true)"
        latents, n_codec = self.inputs(batch.latents, step)
        with torch.no_grad():
            target = self.teacher(latents).float()  # [B, 3, 8h, 8w]
        student = self.model.generator.rgb_decoder(latents).float()
        a = self.args
        total = a.w_l1 * (student - target).abs().mean()
        if a.w_mse > 0:
            total = total + a.w_mse * F.mse_loss(student, target)
        logs = {"l1_teacher": float((student - target).abs().mean().detach()), "psnr_teacher": _psnr(student, target)}
        if n_codec:
            logs["psnr_teacher_codec"] = _psnr(student[:n_codec], target[:n_codec])
        if n_codec < latents.shape[0]:
            logs["psnr_teacher_taef2"] = _psnr(student[n_codec:], target[n_codec:])
        if self.lpips is not None:
            value = self.lpips(student.clamp(0, 1), target.clamp(0, 1)).mean()
            logs["lpips_teacher"] = float(value.detach())
            total = total + a.w_lpips * value
        if a.w_pixel > 0:
            assert batch.pixels is not None, "task_args.w_pixel needs data.with_pixels: true"
            total = total + a.w_pixel * (student - batch.pixels).abs().mean()
            logs["psnr_pixels"] = _psnr(student, batch.pixels)
            logs["psnr_pixels_teacher"] = _psnr(target, batch.pixels)
        if self.disc is not None:
            assert batch.pixels is not None, "task_args.w_adv needs data.with_pixels: true"
            total = total + adversarial_term(self.disc, a, student.clamp(0, 1), batch.pixels, logs, step)
        return LossOutput(total, logs)


BORDER_CELLS = 2  # latent cells at each crop border left out of the latent loss (16 px)


class DistillAnalysisTask(Task):
    """Light analysis trained to output the TAEF2 latent of its pixels; everything else frozen."""

    def __init__(self, cfg: MRTConfig, args: TaskArgs) -> None:
        super().__init__()
        if cfg.analysis != "light":
            raise ConfigError("task distill_analysis needs model.analysis: light")
        self.cfg = cfg
        self.args = args
        self.model = MRTCodecModel(cfg)
        if args.init_taef2:
            from mrt.models.light_encoder import load_pretrained_analysis
            from mrt.models.taef2 import load_taef2

            load_pretrained_analysis(self.model.analysis, load_taef2(args.taef2_dir)[0])
        if args.teacher:
            self._load_teacher(args.teacher)
        self.model.requires_grad_(False)
        self.model.analysis.requires_grad_(True)

    def _load_teacher(self, path: str) -> None:
        """Every weight of the teacher file but its analysis (and, for another pixel generator, its RGB decoder)."""
        from mrt.models.modelfile import load_model_file

        shipped, _, _ = load_model_file(path)
        same_gen = shipped.cfg.target.pixel_generator == self.cfg.target.pixel_generator
        expected = dataclasses.replace(shipped.cfg, analysis="light", target=self.cfg.target)
        if shipped.cfg.analysis != "taef2" or expected != self.cfg:
            raise ConfigError(f"task distill_analysis: model config must be the teacher's ({path}) with analysis: light")
        skip = ("analysis.",) if same_gen else ("analysis.", RGB_PREFIX)
        state = {k: v for k, v in shipped.state_dict().items() if not k.startswith(skip)}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        assert not unexpected and all(k.startswith(skip) for k in missing), (missing, unexpected)

    def train(self, mode: bool = True) -> "DistillAnalysisTask":
        """Only the analysis follows ``mode``; the frozen parts stay in eval mode."""
        super().train(False)
        self.model.analysis.train(mode)
        return self

    def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
        assert batch.latents is not None and batch.pixels is not None, "distill_analysis needs pixels and latents"
        target = batch.latents
        pred = self.model.analysis(batch.pixels).float()  # [B, 32, h, w]
        b = BORDER_CELLS if min(target.shape[-2:]) > 4 * BORDER_CELLS else 0
        inner = (slice(None), slice(None), slice(b, target.shape[-2] - b), slice(b, target.shape[-1] - b))
        mse = F.mse_loss(pred[inner], target[inner])
        total = self.args.w_latent * mse
        logs = {"latent_mse": float(mse.detach()), "latent_psnr": float(10 * torch.log10(9.0 / mse.detach().clamp_min(1e-10)))}
        if self.args.w_token > 0 or step % 10 == 0:
            tok_pred = self.model.encoder(pred)  # [B, nW, K, d] pre-quantisation values
            with torch.no_grad():
                tok_true = self.model.encoder(target)
            if self.args.w_token > 0:
                tok_mse = F.mse_loss(tok_pred.float(), tok_true.float())
                total = total + self.args.w_token * tok_mse
                logs["token_mse"] = float(tok_mse.detach())
            logs["bit_agree"] = float(((tok_pred > 0) == (tok_true > 0)).float().mean())
        return LossOutput(total, logs)


def build_distill_analysis_task(cfg: TrainConfig) -> DistillAnalysisTask:
    """Task factory for ``task: distill_analysis`` (crops must be whole windows for the token term)."""
    if cfg.data.crop % cfg.model.window:
        raise ConfigError(f"distill_analysis needs data.crop a multiple of the window ({cfg.model.window})")
    if not (cfg.data.with_pixels and cfg.data.with_latents):
        raise ConfigError("distill_analysis needs data.with_pixels and data.with_latents")
    return DistillAnalysisTask(cfg.model, cfg.task_args)


def build_distill_task(cfg: TrainConfig) -> DistillLightTask:
    """Task factory for ``task: distill_light`` (dispatched by :func:`mrt.train.tasks.build_task`)."""
    if cfg.task_args.p_codec > 0 and cfg.data.crop % cfg.model.window:
        raise ConfigError(f"distill_light with p_codec > 0 needs data.crop a multiple of the window ({cfg.model.window})")
    return DistillLightTask(cfg.model, cfg.task_args)
