"""The training loop shared by every stage: ``train(cfg) -> final checkpoint path``.

One process, or one process per rank under ``torchrun`` (DDP). Per step: fetch the step's batch
(deterministic, see :mod:`mrt.data.crops`), ``task(batch, step)`` under optional bf16 autocast,
backward, gradient-norm check and clipping, AdamW step, LR schedule step, EMA update,
``task.on_step_end(step)``. Rank 0 logs (progress bar, CSV, TensorBoard) and writes checkpoints.

Resume (``run.resume: true``) restores the task, optimizer, scheduler, EMA, RNG states (per rank)
and the data position from the newest checkpoint in ``run.out_dir``; on CPU with one thread a
resumed run is bit-identical to an uninterrupted one. ``run.init_from`` instead initialises the
task's matching tensors from another run's checkpoint (its EMA weights by default) and starts a
fresh optimizer at step 0: that is how a stage hands over to the next.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mrt.data.batch import Batch
from mrt.data.crops import CacheItemLike, TrainingCrops, make_loader
from mrt.errors import ConfigError, MRTError
from mrt.train import checkpoint as ck
from mrt.train.config import TrainConfig, config_diff
from mrt.train.distributed import (
    DistInfo,
    any_rank,
    barrier,
    dist_info_from_env,
    gather_objects,
    init_distributed,
    shutdown_distributed,
)
from mrt.train.ema import EMA
from mrt.train.logging import CSVLogger, MessageLog, RunningMean, TensorBoardLogger, merge_means
from mrt.train.task import TaskFactory, named_trainable_parameters

# keys that may change between a checkpoint and its resumption without a warning
_RESUME_FREE_KEYS = (
    "run.resume",
    "run.steps",
    "run.stop_at",
    "run.log_every",
    "run.ckpt_every",
    "run.keep_last",
    "run.progress",
    "run.tensorboard",
    "run.threads",
    "run.device",
    "run.init_from",
    "run.init_use_ema",
    "data.num_workers",
    "data.cache_dir",
    "data.sources",
    "data.taef2_dir",
    "data.max_side",
)
_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.LocalResponseNorm)
_NO_DECAY_WORDS = ("token", "pos_emb")  # matched inside the last name component


class TrainingInterrupted(MRTError):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint (``.checkpoint``)."""

    exit_code = 130

    def __init__(self, checkpoint: Path, step: int) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint written to {checkpoint} (resume with run.resume=true)")
        self.checkpoint = checkpoint
        self.step = step


class NonFiniteError(MRTError):
    """The loss or the gradient norm became NaN/inf."""


def default_task_factory(cfg: TrainConfig) -> TaskFactory:
    """``task: toy`` -> the built-in toy task; anything else -> ``mrt.train.tasks.build_task``."""
    if cfg.task == "toy":
        from mrt.train.toy import build_toy_task

        return build_toy_task
    try:
        from mrt.train.tasks import build_task
    except ModuleNotFoundError as exc:
        if exc.name == "mrt.train.tasks":
            raise ConfigError(f"task {cfg.task!r}: no task factory (mrt.train.tasks is not installed)") from None
        raise
    return build_task


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` -> CUDA when available else CPU; under DDP on CUDA, GPU ``LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("run.device=cuda but no CUDA device is available")
        return torch.device("cuda", info.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def lr_factor(step: int, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the base LR for 0-based step ``step``: linear warmup, then cosine or constant."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(task: nn.Module, named: list[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: with decay (matrices/kernels) and without (biases, norms, embeddings, tokens).

    No decay for: parameters with ``ndim <= 1`` (biases, norm gains, per-channel vectors such as the
    RWKV decay/bonus); parameters of norm layers and ``nn.Embedding``; parameters whose own name
    (last dotted component) contains ``token`` or ``pos_emb`` (learned latent/mask tokens, position
    embeddings); full names in the task's optional ``no_weight_decay()`` set.
    """
    owner: dict[int, nn.Module] = {}
    for mod in task.modules():
        for p in mod.parameters(recurse=False):
            owner[id(p)] = mod
    extra = set(getattr(task, "no_weight_decay", lambda: set())())
    decay, no_decay = [], []
    for name, p in named:
        leaf = name.rsplit(".", 1)[-1].lower()
        skip = (
            p.ndim <= 1
            or isinstance(owner.get(id(p)), (*_NORM_TYPES, nn.Embedding))
            or any(w in leaf for w in _NO_DECAY_WORDS)
            or name in extra
        )
        (no_decay if skip else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


@dataclass
class _StopFlag:
    requested: bool = False
    signum: int = 0
    since: float = 0.0


def train(
    cfg: TrainConfig,
    task_factory: TaskFactory | None = None,
    items: Sequence[CacheItemLike] | None = None,
) -> Path:
    """Train ``cfg``; return the path of the last checkpoint written (the final one).

    ``task_factory(cfg) -> nn.Module`` overrides the default (``mrt.train.tasks.build_task``);
    ``items`` overrides the cache (tests pass :func:`mrt.data.synthetic.synthetic_items`).
    Entry point: sets the torch thread count from ``run.threads`` and joins the process group
    when launched by torchrun. Raises :class:`TrainingInterrupted` after saving on SIGINT/SIGTERM.
    """
    cfg.validate()
    if not cfg.task:
        raise ConfigError("config key 'task' is required (stage0, stage1, stage2, ... or toy)")
    if not cfg.run.out_dir:
        raise ConfigError("config key 'run.out_dir' is required")
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    info = dist_info_from_env()
    device = resolve_device(cfg.run.device, info)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = init_distributed(info, device)
    try:
        trainer = _Trainer(cfg, info, device, task_factory or default_task_factory(cfg), items)
        return trainer.run()
    finally:
        shutdown_distributed(created)


class _Trainer:
    """State of one training run (one per process)."""

    def __init__(
        self,
        cfg: TrainConfig,
        info: DistInfo,
        device: torch.device,
        factory: TaskFactory,
        items: Sequence[CacheItemLike] | None,
    ) -> None:
        self.cfg = cfg
        self.info = info
        self.device = device
        self.factory = factory
        self.items = items
        self.out_dir = Path(cfg.run.out_dir)
        self.log = MessageLog(None, enabled=info.is_main)
        self.stop = _StopFlag()
        self.elapsed_before = 0.0
        # the code this process runs: taken once at start, not at each save (the checkout may move)
        self.git_rev, self.git_dirty = ck.git_info() if info.is_main else ("", None)

    # ------------------------------------------------------------------ setup

    def _find_resume(self) -> Path | None:
        latest = ck.latest_checkpoint(self.out_dir)
        if latest is not None and not self.cfg.run.resume:
            raise ConfigError(
                f"{self.out_dir} already holds checkpoints (newest {latest.name}): "
                "set run.resume=true to continue it, or choose another run.out_dir"
            )
        return latest if self.cfg.run.resume else None

    def _load_data(self) -> TrainingCrops:
        d = self.cfg.data
        items = self.items
        if items is None:
            from mrt.data.cache import load_cache

            items = load_cache(d.cache_dir, need_latents=d.with_latents)
        ds = TrainingCrops(
            items,
            crop=d.crop,
            with_pixels=d.with_pixels,
            with_latents=d.with_latents,
            seed=self.cfg.run.seed,
            small=d.small,
            flip=d.flip,
            latent_flip=d.latent_flip,
        )
        self.log(f"data: {len(ds)} images of {len(items)} usable at crop {d.crop}; flips on {ds.n_flippable}")
        if d.flip and ds.n_flippable < len(ds):
            self.log(
                f"note: {len(ds) - ds.n_flippable} images are never flipped (no cached latent of the mirrored "
                "image, or narrower than the crop); build it with data.flip_latents=true --build-cache"
            )
        return ds

    def _init_from(self, task: nn.Module) -> None:
        if str(self.cfg.run.init_from).endswith(".mrtm"):
            self._init_from_model_file(task, Path(str(self.cfg.run.init_from)))
            return
        path = ck.resolve_checkpoint(self.cfg.run.init_from)  # type: ignore[arg-type]
        src = ck.load_checkpoint(path)
        state = ck.task_weights(src, use_ema=self.cfg.run.init_use_ema)
        report = ck.load_matching(task, state)
        which = "EMA" if self.cfg.run.init_use_ema and src.get("ema_state") is not None else "raw"
        self.log(f"init_from {path} (task {src.get('task')!r}, step {src.get('step')}, {which} weights): {report.summary()}")
        if not report.loaded:
            raise MRTError(f"init_from {path}: no tensor of that checkpoint matches this task")

    def _init_from_model_file(self, task: nn.Module, path: Path) -> None:
        """Fine-tune a released model: its weights initialise the task's ``model.*`` tensors."""
        from mrt.models.modelfile import load_model_file

        model, info, _ = load_model_file(path)
        state = {f"model.{k}": v for k, v in model.state_dict().items()}
        report = ck.load_matching(task, state)
        self.log(f"init_from model file {path} ({info.default_variant}): {report.summary()}")
        if not report.loaded:
            raise MRTError(f"init_from {path}: no tensor of that model file matches this task")

    # ------------------------------------------------------------------ main

    def run(self) -> Path:
        cfg, info, device = self.cfg, self.info, self.device
        resume_path = self._find_resume()
        barrier()  # every rank has looked at out_dir before rank 0 writes into it
        if info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.log = MessageLog(self.out_dir / "train.log", enabled=True)
            (self.out_dir / "config.yaml").write_text(cfg.to_yaml())
        dataset = self._load_data()

        ck.seed_everything(cfg.run.seed)  # identical initialisation on every rank
        task = self.factory(cfg)
        if not isinstance(task, nn.Module):
            raise MRTError(f"task factory returned {type(task).__name__}, not an nn.Module")
        task.to(device)
        task.train()
        named = named_trainable_parameters(task)
        if not named:
            raise MRTError(f"task {cfg.task!r} has no trainable parameters")
        n_train = sum(p.numel() for _, p in named)
        n_all = sum(p.numel() for p in task.parameters())
        self.log(f"task {cfg.task}: {n_train:,} trainable / {n_all:,} parameters; device {device}, world {info.world_size}")

        o = cfg.optim
        optimizer = torch.optim.AdamW(
            param_groups(task, named, o.weight_decay), lr=o.lr, betas=(o.betas[0], o.betas[1]), eps=o.eps
        )
        self.schedule_total = cfg.run.steps  # shortened by run.time_limit_s (see _fit_time_limit)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, o.warmup_steps, self.schedule_total, o.schedule, o.min_lr_ratio)
        )
        ema = EMA(named, cfg.run.ema_decay, cfg.run.ema_start) if cfg.run.ema_decay is not None else None

        start_step = 0
        if resume_path is not None:
            start_step = self._resume(resume_path, task, optimizer, scheduler, ema)
        else:
            if cfg.run.resume:
                self.log(f"run.resume=true but {self.out_dir} has no checkpoint: starting at step 0")
            if cfg.run.init_from:
                self._init_from(task)
                if ema is not None:
                    ema.update(0)  # averages start from the initialised weights
            ck.seed_everything(_rank_seed(cfg.run.seed, info.rank))

        model: nn.Module = task
        if info.enabled:
            model = DistributedDataParallel(
                task,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=cfg.run.find_unused_parameters,
            )

        steps = cfg.run.steps
        end_step = steps if cfg.run.stop_at is None else min(steps, cfg.run.stop_at)
        if start_step >= end_step:
            if resume_path is not None:
                self.log(f"nothing to do: checkpoint step {start_step} >= {end_step}")
                return resume_path
            return self._save(start_step, task, optimizer, scheduler, ema)
        return self._loop(model, task, named, optimizer, scheduler, ema, dataset, start_step, end_step, resume_path)

    def _resume(
        self,
        path: Path,
        task: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        ema: EMA | None,
    ) -> int:
        cfg, info = self.cfg, self.info
        state = ck.load_checkpoint(path)
        if "optimizer" not in state:
            raise ConfigError(f"cannot resume {path}: it is a weights-only (slim) checkpoint; use run.init_from")
        old_cfg = state.get("config", {})
        diff = [k for k in config_diff(old_cfg, cfg.to_dict()) if k not in _RESUME_FREE_KEYS]
        hard = [k for k in diff if k == "task" or k.startswith("model.")]
        if hard:
            raise ConfigError(f"cannot resume {path}: the config changed {', '.join(hard)}")
        if diff:
            self.log(f"warning: resuming with changed config keys: {', '.join(diff)}")
        task.load_state_dict(state["task_state"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            if state.get("ema_state") is not None:
                ema.load_state_dict(state["ema_state"])
            else:
                self.log("warning: checkpoint has no EMA; averages restart from the current weights")
                ema.update(0)
        rng = state.get("rng") or []
        if state.get("world_size", 1) != info.world_size:
            self.log(f"warning: checkpoint world size {state.get('world_size')} != {info.world_size}: "
                     "the data stream and RNG continue, but not bit-exactly")
        if info.rank < len(rng):
            ck.restore_rng_state(rng[info.rank])
        else:
            ck.seed_everything(_rank_seed(cfg.run.seed, info.rank) + int(state["step"]))
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        if cfg.run.time_limit_s is not None and state.get("schedule_total") is not None:
            # a time-limited run continues on the end it had fitted (not on run.steps)
            self.schedule_total = int(state["schedule_total"])
        step = int(state["step"])
        self.log(f"resumed from {path} at step {step}")
        return step

    # ------------------------------------------------------------------ checkpoints

    def _save(
        self,
        step: int,
        task: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        ema: EMA | None,
        elapsed: float = 0.0,
    ) -> Path:
        """Collective: every rank contributes its RNG state and parameter digest; rank 0 writes."""
        cfg, info = self.cfg, self.info
        named = named_trainable_parameters(task)
        rng_all = gather_objects(ck.capture_rng_state())
        digests = gather_objects(ck.params_digest([(n, p) for n, p in named]) if info.enabled else None)
        path = ck.checkpoint_path(self.out_dir, step)
        if info.is_main:
            if info.enabled and len(set(digests)) > 1:
                self.log(f"WARNING: DDP replicas differ at step {step}: {digests}")
            rev, dirty = self.git_rev, self.git_dirty
            payload = {
                "format": "mrt-train",
                "version": 1,
                "step": step,
                "task": cfg.task,
                "task_state": {k: v.detach().cpu() for k, v in task.state_dict().items()},
                "ema_state": ema.state_dict() if ema is not None else None,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng_all,
                "data": {
                    "seed": cfg.run.seed,
                    "next_step": step,
                    "batch_size": cfg.data.batch_size,
                    "world_size": info.world_size,
                },
                "world_size": info.world_size,
                "elapsed_s": self.elapsed_before + elapsed,
                "schedule_total": self.schedule_total,
                "replica_sha256": digests if info.enabled else None,
                "config": cfg.to_dict(),
                "git_rev": rev,
                "git_dirty": dirty,
                "torch_version": str(torch.__version__),
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            ck.save_checkpoint(path, payload)
            for old in ck.prune_checkpoints(self.out_dir, cfg.run.keep_last):
                self.log(f"removed old checkpoint {old.name}")
        return path

    # ------------------------------------------------------------------ signals

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: FrameType | None) -> None:
            now = time.monotonic()
            if self.stop.requested:
                # a second Ctrl-C aborts without a checkpoint; the copy torchrun relays right after the
                # terminal's own SIGINT (same key press) must not count as a second one
                if signum == signal.SIGINT and now - self.stop.since > 2.0:
                    raise KeyboardInterrupt
                return
            self.stop.requested = True
            self.stop.signum = signum
            self.stop.since = now
            self.log(f"signal {signal.Signals(signum).name}: finishing the step, then saving a checkpoint "
                     "(Ctrl-C again to abort without saving)")

        old = {}
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, handler)
        return old

    @staticmethod
    def _restore_signals(old: dict[int, Any]) -> None:
        for s, h in old.items():
            signal.signal(s, h)

    # ------------------------------------------------------------------ time limit

    _CALIB_SKIP = 5  # first steps of a run (allocator, autotuning) are not timed
    _CALIB_STEPS = 20  # timed steps before the first estimate
    _REFIT_EVERY = 200  # steps between later estimates

    def _fit_time_limit(
        self, step: int, end_step: int, max_end: int, t_start: float, t_calib: float, n_timed: int
    ) -> int:
        """New end step so that the loop ends inside ``run.time_limit_s`` (rank 0 decides for all).

        Uses the mean step time since ``t_calib`` (``n_timed`` steps); never beyond ``max_end`` (the
        end the data loader was built for) nor below the current step + 1. The cosine schedule is re-targeted to the new end.
        """
        limit = self.cfg.run.time_limit_s
        assert limit is not None
        now = time.perf_counter()
        per_step = (now - t_calib) / max(1, n_timed)
        remaining = limit - self.elapsed_before - (now - t_start)  # the budget spans resumed invocations
        proposal = step + max(1, int(remaining / max(per_step, 1e-9)))
        proposal = gather_objects(proposal)[0]  # every rank takes rank 0's decision
        new_end = max(step + 1, min(max_end, proposal))
        if new_end != end_step:
            self.log(f"time limit {limit:.0f} s: {per_step:.3f} s/step -> ending at step {new_end}")
        self.schedule_total = new_end
        return new_end

    # ------------------------------------------------------------------ loop

    def _loop(
        self,
        model: nn.Module,
        task: nn.Module,
        named: list[tuple[str, nn.Parameter]],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        ema: EMA | None,
        dataset: TrainingCrops,
        start_step: int,
        end_step: int,
        resume_path: Path | None,
    ) -> Path:
        cfg, info, device = self.cfg, self.info, self.device
        params = [p for _, p in named]
        loader = make_loader(
            dataset,
            cfg.data.batch_size,
            start_step,
            end_step,
            rank=info.rank,
            world_size=info.world_size,
            num_workers=cfg.data.num_workers,
            pin_memory=device.type == "cuda",
            seed=_rank_seed(cfg.run.seed, info.rank),
        )
        csv_log = tb = None
        if info.is_main:
            resumed_at = start_step if resume_path is not None else None
            csv_log = CSVLogger(self.out_dir / "metrics.csv", resume_step=resumed_at)
            tb = TensorBoardLogger(self.out_dir / "tb", purge_step=resumed_at, enabled=cfg.run.tensorboard)
        pbar = None
        if info.is_main and cfg.run.progress:
            from tqdm import tqdm

            pbar = tqdm(total=end_step, initial=start_step, desc=cfg.task, unit="step", dynamic_ncols=True)
        on_step_end: Callable[[int], None] | None = getattr(task, "on_step_end", None)
        autocast = (
            torch.autocast(device_type=device.type, dtype=torch.bfloat16) if cfg.run.bf16 else nullcontext()
        )
        clip = cfg.optim.grad_clip or 0.0
        images_per_step = cfg.data.batch_size * info.world_size
        meter = RunningMean()
        t_start = t_last = time.perf_counter()
        t_calib, calib_from = t_start, None  # time-limit calibration window
        max_end = end_step
        if cfg.run.time_limit_s is not None and resume_path is not None:
            end_step = max(start_step + 1, min(max_end, self.schedule_total))  # continue the fitted schedule
        steps_since_log = 0
        last_path: Path | None = None
        step = start_step
        old_handlers = self._install_signals()
        it = iter(loader)
        try:
            while step < end_step:
                try:
                    batch: Batch = next(it)
                except StopIteration:  # pragma: no cover - the sampler yields exactly end-start batches
                    break
                except Exception:
                    if self.stop.requested:  # a worker died on the same Ctrl-C
                        break
                    raise
                batch = batch.to(device, non_blocking=True)
                lr_used = optimizer.param_groups[0]["lr"]
                with autocast:
                    out = model(batch, step)
                loss = getattr(out, "total", None)
                if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
                    raise MRTError(f"task forward must return LossOutput(total=<scalar tensor>, logs), got {type(out).__name__}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip > 0:
                    gnorm = torch.nn.utils.clip_grad_norm_(params, clip)
                else:
                    grads = [p.grad for p in params if p.grad is not None]
                    gnorm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
                loss_value = float(loss.detach())
                gnorm_value = float(gnorm)
                if not (math.isfinite(loss_value) and math.isfinite(gnorm_value)):
                    raise NonFiniteError(
                        f"non-finite loss ({loss_value}) or gradient norm ({gnorm_value}) at step {step}; "
                        f"last checkpoint: {ck.latest_checkpoint(self.out_dir)}"
                    )
                optimizer.step()
                scheduler.step()
                step += 1
                if ema is not None:
                    ema.update(step)
                if on_step_end is not None:
                    on_step_end(step - 1)
                if cfg.run.time_limit_s is not None:
                    done = step - start_step
                    if done == self._CALIB_SKIP:
                        t_calib, calib_from = time.perf_counter(), step
                    elif calib_from is not None and (
                        step - calib_from == self._CALIB_STEPS or (step - calib_from) % self._REFIT_EVERY == 0
                    ):
                        end_step = self._fit_time_limit(step, end_step, max_end, t_start, t_calib, step - calib_from)
                        if pbar is not None:
                            pbar.total = end_step
                            pbar.refresh()
                meter.add({"loss": loss_value, "grad_norm": gnorm_value, **out.logs})
                steps_since_log += 1
                if pbar is not None:
                    pbar.update(1)

                if step % cfg.run.log_every == 0 or step == end_step:
                    means = merge_means(gather_objects(meter.state()))
                    now = time.perf_counter()
                    ips = steps_since_log * images_per_step / max(now - t_last, 1e-9)
                    t_last, steps_since_log = now, 0
                    meter.reset()
                    if info.is_main:
                        row = {
                            "step": step,
                            "time": round(self.elapsed_before + now - t_start, 3),
                            "lr": lr_used,
                            "img_per_s": ips,
                        }
                        row.update(means)
                        assert csv_log is not None and tb is not None
                        csv_log.log(row)
                        tb.log(step, {k: float(v) for k, v in row.items() if k not in ("step", "time")})
                        if pbar is not None:
                            post = {"loss": f"{means.get('loss', float('nan')):.4g}"}
                            if "bpp" in means:
                                post["bpp"] = f"{means['bpp']:.4f}"
                            post["img/s"] = f"{ips:.1f}"
                            pbar.set_postfix(post, refresh=False)

                stop_now = any_rank(self.stop.requested, device) if info.enabled else self.stop.requested
                if step % cfg.run.ckpt_every == 0 or step == end_step or stop_now:
                    last_path = self._save(
                        step, task, optimizer, scheduler, ema, elapsed=time.perf_counter() - t_start
                    )
                if stop_now:
                    self.stop.requested = True
                    break
            if self.stop.requested:
                if last_path is None or not last_path.name.endswith(f"{step:08d}.pt"):
                    last_path = self._save(step, task, optimizer, scheduler, ema, time.perf_counter() - t_start)
                raise TrainingInterrupted(last_path, step)
        finally:
            self._restore_signals(old_handlers)
            if pbar is not None:
                pbar.close()
            if tb is not None:
                tb.close()
            del it
        barrier()
        assert last_path is not None
        self.log(f"done: step {step}, checkpoint {last_path}")
        return last_path


def _rank_seed(seed: int, rank: int) -> int:
    """Seed of a rank's training-time randomness (distinct per rank, fixed per run)."""
    return (seed * 1_000_003 + 7919 * (rank + 1)) % (2**63 - 1)
