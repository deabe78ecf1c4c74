"""Training tasks of the 2-D latent codec (``mrt.models.latent2d``): ``latent2d`` and ``latent2d_ft``.

* ``latent2d`` (phase 1, the analogue of stage 0 + the rate term): the stage-0 autoencoder (target
  encoder + LFQ at 1/16 + latent decoder, optionally initialised from a ``stage0`` run) with
  nested dropout over channel groups (a random number ``k`` of leading groups kept per step, from
  ``task_args.k_choices``), latent MSE (+ the optional pixel / perceptual / adversarial terms of
  stage 0), and the context model's rate (``w_rate`` x bpp) on the detached bits of the kept groups.
* ``latent2d_ft`` (phase 2, the analogue of stage 2): the target encoder and LFQ frozen; the
  context model, latent decoder (and with ``train_rgb_decoder`` the RGB decoder) trained with rate +
  latent + pixel + perceptual losses. Start it from phase 1 with ``run.init_from``.

Both hold the codec network as ``self.model``, so ``mrt release`` writes a model file from either.
"""

from __future__ import annotations

import random

import torch.nn.functional as F

from mrt.data.batch import Batch
from mrt.errors import ConfigError
from mrt.models.config import MRTConfig
from mrt.models.latent2d import Latent2DCodecModel
from mrt.models.light_encoder import load_pretrained_analysis
from mrt.models.rcm import Step
from mrt.models.taef2 import load_taef2
from mrt.train.checkpoint import export_weights
from mrt.train.config import TaskArgs
from mrt.train.task import LossOutput, Task
from mrt.train.tasks import _discriminator, _perceptual, _pixel_losses


class Latent2DTask(Task):
    """Phase 1: the 2-D autoencoder with nested channel groups + the context model's rate."""

    freeze_encoder = False

    def __init__(self, cfg: MRTConfig, args: TaskArgs) -> None:
        super().__init__()
        if cfg.kind != "latent2d":
            raise ConfigError(f"task latent2d needs model.kind: latent2d, got {cfg.kind!r}")
        for k in args.k_choices:
            if not 1 <= k <= cfg.n_tokens:
                raise ConfigError(f"task_args.k_choices: {k} is not in 1..{cfg.n_tokens} (channel groups)")
        self.cfg = cfg
        self.args = args
        self.model = Latent2DCodecModel(cfg)
        self._init_weights(cfg, args)
        m = self.model
        m.analysis.requires_grad_(False)
        scratch = cfg.target.pixel_generator in ("scratch", "light")  # no pretrained weights: train it
        m.generator.rgb_decoder.requires_grad_(args.train_rgb_decoder or scratch)
        m.encoder.requires_grad_(not self.freeze_encoder)
        self.lpips, self.dists = _perceptual(args)
        self.disc = _discriminator(args)

    def _init_weights(self, cfg: MRTConfig, args: TaskArgs) -> None:
        """TAEF2 analysis (+ RGB decoder) from the pretrained weights; encoder and generator from a stage-0 run."""
        if args.init_taef2:
            enc, dec = load_taef2(args.taef2_dir)
            load_pretrained_analysis(self.model.analysis, enc)
            if cfg.target.pixel_generator == "taef2":
                self.model.generator.rgb_decoder.load_state_dict(dec.state_dict())
        if args.stage0:
            state = export_weights(args.stage0, prefix="target.")  # the stage-0 TargetAutoencoder's weights
            for part in ("encoder", "generator"):
                sub = {k[len(part) + 1 :]: v for k, v in state.items() if k.startswith(part + ".")}
                getattr(self.model, part).load_state_dict(sub, strict=True)

    def sample_k(self, step: int) -> int:
        """Channel groups kept at this step (seeded by the step, so that a resumed run repeats it)."""
        if not self.args.k_choices:
            return self.cfg.n_tokens
        return random.Random(step * 7919 + 17).choice(self.args.k_choices)

    def rate_steps(self, step: int, k: int) -> list[Step] | None:
        """Context steps whose rate is computed: all (None) or a seeded random subset of the k groups' steps."""
        planned = [p.step for p in self.model.rcm.plan(k)]
        if self.args.rate_steps <= 0 or self.args.rate_steps >= len(planned):
            return None
        return random.Random(step * 104729 + 3).sample(planned, self.args.rate_steps)

    def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
        assert batch.latents is not None, "latent2d needs latents (data.with_latents: true)"
        args = self.args
        k = self.sample_k(step)
        pixel_terms = args.w_pixel > 0 or self.lpips is not None or self.dists is not None or self.disc is not None
        out = self.model(batch.latents, k, with_pixels=pixel_terms, rate_steps=self.rate_steps(step, k),
                         train_encoder=not self.freeze_encoder)
        latent_mse = F.mse_loss(out.latent_pred.float(), batch.latents)
        bpp = out.bpp
        total = args.w_latent * latent_mse + args.w_rate * bpp.mean()
        if not self.freeze_encoder:
            total = total + out.quantized.entropy_loss + out.quantized.commit_loss
        logs = {
            "latent_mse": float(latent_mse.detach()),
            "bpp": float(bpp.mean().detach()),
            "bits_per_latent": float(out.rate_bits.mean().detach()) / (out.codes.shape[-1] * out.codes.shape[-2]),
            "lfq_h": float(out.quantized.sample_entropy or 0.0),
            "k": float(k),
        }
        if pixel_terms:
            assert batch.pixels is not None, "pixel losses need data.with_pixels: true"
            assert out.recon is not None
            total = total + _pixel_losses(self, out.recon, batch.pixels, logs, step)  # type: ignore[arg-type]
        return LossOutput(total, logs)


class Latent2DFinetuneTask(Latent2DTask):
    """Phase 2: encoder and LFQ frozen; context model and generator fine-tuned (rate + pixel losses)."""

    freeze_encoder = True


def build_latent2d_task(task: str, cfg: MRTConfig, args: TaskArgs) -> Task:
    """The task ``latent2d`` or ``latent2d_ft``."""
    cls = Latent2DFinetuneTask if task == "latent2d_ft" else Latent2DTask
    return cls(cfg, args)
