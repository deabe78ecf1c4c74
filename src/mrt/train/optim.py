"""Optimizer and learning-rate schedule of the training loop: AdamW with two weight-decay groups,
linear warmup, then cosine (to ``min_lr_ratio * lr``) or constant."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mrt.train.config import OptimConfig

_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.LocalResponseNorm)
_NO_DECAY_WORDS = ("token", "pos_emb")  # matched inside the last name component


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


def make_optimizer(task: nn.Module, named: list[tuple[str, nn.Parameter]], o: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the task's trainable parameters (see :func:`param_groups`)."""
    return torch.optim.AdamW(
        param_groups(task, named, o.weight_decay), lr=o.lr, betas=(o.betas[0], o.betas[1]), eps=o.eps
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, o: OptimConfig, total: Callable[[], int]
) -> torch.optim.lr_scheduler.LambdaLR:
    """The warmup + cosine/constant schedule; ``total()`` is read at every step, so a time-limited
    run can move the end of the schedule while it trains."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, o.warmup_steps, total(), o.schedule, o.min_lr_ratio)
    )
