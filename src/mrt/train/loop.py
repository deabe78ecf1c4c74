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

Pieces: :mod:`~mrt.train.optim` (AdamW, LR schedule), :mod:`~mrt.train.state` (checkpoint
contents, resume, init_from), :mod:`~mrt.train.logging` (CSV, TensorBoard, progress bar),
:mod:`~mrt.train.timelimit` (``run.time_limit_s``), :mod:`~mrt.train.signals` (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mrt.data.batch import Batch
from mrt.data.crops import CacheItemLike, TrainingCrops, make_loader
from mrt.errors import ConfigError, MRTError
from mrt.io import atomic_write_text
from mrt.train import checkpoint as ck
from mrt.train import state as run_state
from mrt.train.config import TrainConfig
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
from mrt.train.logging import MessageLog, StepLog
from mrt.train.optim import make_optimizer, make_scheduler
from mrt.train.signals import StopFlag, install_stop_handlers, restore_handlers
from mrt.train.state import RunFacts, TrainState
from mrt.train.task import TaskFactory, named_trainable_parameters
from mrt.train.timelimit import TimeBudget


class TrainingInterrupted(MRTError):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint (``.checkpoint``)."""

    exit_code = 130

    def __init__(self, checkpoint: Path, step: int) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint written to {checkpoint} (resume with run.resume=true)")
        self.checkpoint = checkpoint
        self.step = step


class NonFiniteError(MRTError):
    """The loss or the gradient norm became NaN/inf."""


def default_task_factory() -> TaskFactory:
    """The stage tasks' factory, :func:`mrt.train.tasks.build_task` (imported when first needed)."""
    from mrt.train.tasks import build_task

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


def train(
    cfg: TrainConfig,
    task_factory: TaskFactory | None = None,
    items: Sequence[CacheItemLike] | None = None,
) -> Path:
    """Train ``cfg``; return the path of the last checkpoint written (the final one).

    ``task_factory(cfg) -> nn.Module`` overrides the default (``mrt.train.tasks.build_task``);
    ``items`` overrides the cache (the tests pass synthetic items).
    Entry point: sets the torch thread count from ``run.threads`` and joins the process group
    when launched by torchrun. Raises :class:`TrainingInterrupted` after saving on SIGINT/SIGTERM.
    """
    cfg.validate()
    if not cfg.task:
        raise ConfigError("config key 'task' is required (stage0, stage1 or stage2)")
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
        trainer = _Trainer(cfg, info, device, task_factory or default_task_factory(), items)
        return trainer.run()
    finally:
        shutdown_distributed(created)


def _rank_seed(seed: int, rank: int) -> int:
    """Seed of a rank's training-time randomness (distinct per rank, fixed per run)."""
    return (seed * 1_000_003 + 7919 * (rank + 1)) % (2**63 - 1)


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
        self.stop = StopFlag()
        self.elapsed_before = 0.0
        self.schedule_total = cfg.run.steps  # the LR schedule's end; run.time_limit_s may shorten it
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

    def _build(self) -> TrainState:
        """The task (identically initialised on every rank), its optimizer, schedule and EMA."""
        cfg, device = self.cfg, self.device
        ck.seed_everything(cfg.run.seed)
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
        self.log(f"task {cfg.task}: {n_train:,} trainable / {n_all:,} parameters; "
                 f"device {device}, world {self.info.world_size}")
        optimizer = make_optimizer(task, named, cfg.optim)
        scheduler = make_scheduler(optimizer, cfg.optim, lambda: self.schedule_total)
        ema = EMA(named, cfg.run.ema_decay, cfg.run.ema_start) if cfg.run.ema_decay is not None else None
        return TrainState(task, task, named, optimizer, scheduler, ema)

    def _wrap_ddp(self, st: TrainState) -> None:
        if self.info.enabled:
            st.model = DistributedDataParallel(
                st.task,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.cfg.run.find_unused_parameters,
            )

    # ------------------------------------------------------------------ main

    def run(self) -> Path:
        cfg, info = self.cfg, self.info
        resume_path = self._find_resume()
        barrier()  # every rank has looked at out_dir before rank 0 writes into it
        if info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.log = MessageLog(self.out_dir / "train.log", enabled=True)
            atomic_write_text(self.out_dir / "config.yaml", cfg.to_yaml(), force=True)
        dataset = self._load_data()
        st = self._build()
        start_step = 0
        if resume_path is not None:
            start_step = self._resume(resume_path, st)
        else:
            if cfg.run.resume:
                self.log(f"run.resume=true but {self.out_dir} has no checkpoint: starting at step 0")
            if cfg.run.init_from:
                run_state.init_from(st.task, str(cfg.run.init_from), cfg.run.init_use_ema, self.log)
                if st.ema is not None:
                    st.ema.update(0)  # averages start from the initialised weights
            ck.seed_everything(_rank_seed(cfg.run.seed, info.rank))
        self._wrap_ddp(st)
        steps = cfg.run.steps
        end_step = steps if cfg.run.stop_at is None else min(steps, cfg.run.stop_at)
        if start_step >= end_step:
            if resume_path is not None:
                self.log(f"nothing to do: checkpoint step {start_step} >= {end_step}")
                return resume_path
            return self._save(start_step, st)
        return self._loop(st, dataset, start_step, end_step, resume_path)

    def _resume(self, path: Path, st: TrainState) -> int:
        cfg, info = self.cfg, self.info
        state = ck.load_checkpoint(path)
        if "optimizer" not in state:
            raise ConfigError(f"cannot resume {path}: it is a weights-only (slim) checkpoint; use run.init_from")
        diff = run_state.resume_changes(path, state.get("config", {}), cfg)
        if diff:
            self.log(f"warning: resuming with changed config keys: {', '.join(diff)}")
        run_state.restore(state, st, self.log)
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

    def _save(self, step: int, st: TrainState, elapsed: float = 0.0) -> Path:
        """Collective: every rank contributes its RNG state and parameter digest; rank 0 writes."""
        info = self.info
        named = named_trainable_parameters(st.task)
        rng_all = gather_objects(ck.capture_rng_state())
        digests = gather_objects(ck.params_digest([(n, p) for n, p in named]) if info.enabled else None)
        path = ck.checkpoint_path(self.out_dir, step)
        if info.is_main:
            if info.enabled and len(set(digests)) > 1:
                self.log(f"WARNING: DDP replicas differ at step {step}: {digests}")
            facts = RunFacts(info.world_size, self.elapsed_before + elapsed, self.schedule_total,
                             self.git_rev, self.git_dirty)
            replicas = digests if info.enabled else None
            ck.save_checkpoint(path, run_state.checkpoint_payload(self.cfg, step, st, rng_all, replicas, facts))
            for old in ck.prune_checkpoints(self.out_dir, self.cfg.run.keep_last):
                self.log(f"removed old checkpoint {old.name}")
        return path

    # ------------------------------------------------------------------ loop

    def _step(
        self, st: TrainState, batch: Batch, step: int, autocast: AbstractContextManager[Any]
    ) -> tuple[Any, float, float]:
        """Forward, backward, clip, optimizer and schedule step: (task output, loss, grad norm)."""
        with autocast:
            out = st.model(batch, step)
        loss = getattr(out, "total", None)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise MRTError(f"task forward must return LossOutput(total=<scalar tensor>, logs), got {type(out).__name__}")
        st.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for _, p in st.named]
        clip = self.cfg.optim.grad_clip or 0.0
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
        st.optimizer.step()
        st.scheduler.step()
        return out, loss_value, gnorm_value

    def _next_batch(self, it: Iterator[Batch]) -> Batch | None:
        """The next batch on the device; ``None`` when the stream ended or a worker died on Ctrl-C."""
        try:
            batch = next(it)
        except StopIteration:  # pragma: no cover - the sampler yields exactly end-start batches
            return None
        except Exception:
            if self.stop.requested:  # a worker died on the same Ctrl-C
                return None
            raise
        return batch.to(self.device, non_blocking=True)

    def _loop(
        self, st: TrainState, dataset: TrainingCrops, start_step: int, end_step: int, resume_path: Path | None
    ) -> Path:
        cfg, info, device = self.cfg, self.info, self.device
        loader = make_loader(
            dataset, cfg.data.batch_size, start_step, end_step, rank=info.rank, world_size=info.world_size,
            num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda",
            seed=_rank_seed(cfg.run.seed, info.rank),
        )  # fmt: skip
        steplog = StepLog(self.out_dir, info.is_main, start_step, end_step, resume_path is not None, cfg.task,
                          cfg.run.progress, cfg.run.tensorboard)  # fmt: skip
        on_step_end: Callable[[int], None] | None = getattr(st.task, "on_step_end", None)
        autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16) if cfg.run.bf16 else nullcontext()
        images_per_step = cfg.data.batch_size * info.world_size
        t_start = time.perf_counter()
        steplog.start(t_start)
        budget = None
        if cfg.run.time_limit_s is not None:
            budget = TimeBudget(cfg.run.time_limit_s, self.elapsed_before, start_step, end_step, t_start, self.log)
            if resume_path is not None:  # continue the fitted schedule
                end_step = max(start_step + 1, min(end_step, self.schedule_total))
        last_path: Path | None = None
        step = start_step
        old_handlers = install_stop_handlers(self.stop, self.log)
        it = iter(loader)
        try:
            while step < end_step:
                batch = self._next_batch(it)
                if batch is None:
                    break
                lr_used = st.optimizer.param_groups[0]["lr"]
                out, loss_value, gnorm_value = self._step(st, batch, step, autocast)
                step += 1
                if st.ema is not None:
                    st.ema.update(step)
                if on_step_end is not None:
                    on_step_end(step - 1)
                new_end = budget.after_step(step, end_step) if budget is not None else None
                if new_end is not None:
                    end_step = self.schedule_total = new_end
                    steplog.set_total(end_step)
                steplog.add({"loss": loss_value, "grad_norm": gnorm_value, **out.logs})
                if step % cfg.run.log_every == 0 or step == end_step:
                    steplog.report(step, lr_used, images_per_step, self.elapsed_before)
                stop_now = any_rank(self.stop.requested, device) if info.enabled else self.stop.requested
                if step % cfg.run.ckpt_every == 0 or step == end_step or stop_now:
                    last_path = self._save(step, st, elapsed=time.perf_counter() - t_start)
                if stop_now:
                    self.stop.requested = True
                    break
            if self.stop.requested:
                if last_path is None or not last_path.name.endswith(f"{step:08d}.pt"):
                    last_path = self._save(step, st, time.perf_counter() - t_start)
                raise TrainingInterrupted(last_path, step)
        finally:
            restore_handlers(old_handlers)
            steplog.close()
            del it
        barrier()
        assert last_path is not None
        self.log(f"done: step {step}, checkpoint {last_path}")
        return last_path
