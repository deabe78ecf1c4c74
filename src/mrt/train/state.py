"""What a training checkpoint holds, and how a run starts from one.

:func:`checkpoint_payload` is the dict :func:`mrt.train.checkpoint.save_checkpoint` writes (its
keys are listed in :mod:`mrt.train.checkpoint`); :func:`restore` puts one back into a run that
resumes (``run.resume``); :func:`init_from` loads the matching weights of another run's
checkpoint, or of a released model file, into a fresh task (``run.init_from``, the stage hand-over).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mrt.errors import ConfigError, MRTError
from mrt.train import checkpoint as ck
from mrt.train.config import TrainConfig, config_diff
from mrt.train.ema import EMA

# keys that may change between a checkpoint and its resumption without a warning
RESUME_FREE_KEYS = (
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


@dataclass
class TrainState:
    """The objects a run trains and checkpoints; ``model`` is ``task`` or its DDP wrapper."""

    task: nn.Module
    model: nn.Module
    named: list[tuple[str, nn.Parameter]]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    ema: EMA | None


def normalised_config(data: dict[str, Any]) -> dict[str, Any]:
    """A stored config dict with every default filled in, as :meth:`TrainConfig.to_dict` writes it.

    Older checkpoints stored only the ``model`` / ``task_args`` keys their YAML set; comparing
    both sides after this step shows only real changes. A dict that no longer builds (keys
    since removed) is returned unchanged.
    """
    try:
        return TrainConfig.from_dict(data).to_dict()
    except ConfigError:
        return data


def resume_changes(path: Path, old: dict[str, Any], cfg: TrainConfig) -> list[str]:
    """Config keys changed since checkpoint ``path`` (leaving out :data:`RESUME_FREE_KEYS`).

    Raises ``ConfigError`` when ``task`` or a ``model.*`` key changed: the weights would not fit.
    """
    diff = [k for k in config_diff(normalised_config(old), cfg.to_dict()) if k not in RESUME_FREE_KEYS]
    hard = [k for k in diff if k == "task" or k.startswith("model.")]
    if hard:
        raise ConfigError(f"cannot resume {path}: the config changed {', '.join(hard)}")
    return diff


def restore(state: dict[str, Any], st: TrainState, log: Callable[[str], None]) -> None:
    """Load the task, optimizer, scheduler and EMA of checkpoint dict ``state`` into ``st``."""
    st.task.load_state_dict(state["task_state"], strict=True)
    st.optimizer.load_state_dict(state["optimizer"])
    st.scheduler.load_state_dict(state["scheduler"])
    if st.ema is not None:
        if state.get("ema_state") is not None:
            st.ema.load_state_dict(state["ema_state"])
        else:
            log("warning: checkpoint has no EMA; averages restart from the current weights")
            st.ema.update(0)


@dataclass(frozen=True)
class RunFacts:
    """Facts about the run a checkpoint records beside the training state."""

    world_size: int
    elapsed_s: float
    schedule_total: int
    git_rev: str
    git_dirty: bool | None


def checkpoint_payload(
    cfg: TrainConfig,
    step: int,
    st: TrainState,
    rng: list[Any],
    digests: list[Any] | None,
    facts: RunFacts,
) -> dict[str, Any]:
    """The checkpoint dict after ``step`` completed optimizer steps (CPU tensors, weights-only types)."""
    return {
        "format": "mrt-train",
        "version": 1,
        "step": step,
        "task": cfg.task,
        "task_state": {k: v.detach().cpu() for k, v in st.task.state_dict().items()},
        "ema_state": st.ema.state_dict() if st.ema is not None else None,
        "optimizer": st.optimizer.state_dict(),
        "scheduler": st.scheduler.state_dict(),
        "rng": rng,
        "data": {
            "seed": cfg.run.seed,
            "next_step": step,
            "batch_size": cfg.data.batch_size,
            "world_size": facts.world_size,
        },
        "world_size": facts.world_size,
        "elapsed_s": facts.elapsed_s,
        "schedule_total": facts.schedule_total,
        "replica_sha256": digests,
        "config": cfg.to_dict(),
        "git_rev": facts.git_rev,
        "git_dirty": facts.git_dirty,
        "torch_version": str(torch.__version__),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def init_from(task: nn.Module, source: str, use_ema: bool, log: Callable[[str], None]) -> None:
    """Load every tensor of checkpoint / run folder / model file ``source`` whose name and shape
    match into ``task``; fails when nothing matches. A comma-separated list loads each source in
    turn, later ones overwriting what they share with earlier ones (say, a released model file
    and then a slim checkpoint with the parts distilled for it)."""
    sources = [s.strip() for s in source.split(",") if s.strip()]
    if not sources:
        raise MRTError(f"run.init_from names no source: {source!r}")
    for one in sources:
        if one.endswith(".mrtm"):
            _init_from_model_file(task, Path(one), log)
        else:
            _init_from_checkpoint(task, one, use_ema, log)


def _init_from_checkpoint(task: nn.Module, source: str, use_ema: bool, log: Callable[[str], None]) -> None:
    """Initialise the task's matching tensors from a checkpoint file or run folder."""
    path = ck.resolve_checkpoint(source)
    src = ck.load_checkpoint(path)
    state = ck.task_weights(src, use_ema=use_ema)
    report = ck.load_matching(task, state)
    which = "EMA" if use_ema and src.get("ema_state") is not None else "raw"
    log(f"init_from {path} (task {src.get('task')!r}, step {src.get('step')}, {which} weights): {report.summary()}")
    if not report.loaded:
        raise MRTError(f"init_from {path}: no tensor of that checkpoint matches this task")


def _init_from_model_file(task: nn.Module, path: Path, log: Callable[[str], None]) -> None:
    """Fine-tune a released model: its weights initialise the task's ``model.*`` tensors."""
    from mrt.models.modelfile import load_model_file

    model, info, _ = load_model_file(path)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    report = ck.load_matching(task, state)
    log(f"init_from model file {path} ({info.default_variant}): {report.summary()}")
    if not report.loaded:
        raise MRTError(f"init_from {path}: no tensor of that model file matches this task")
