"""The task interface: one ``nn.Module`` per training stage that computes its whole loss in forward.

The loop is stage-agnostic: it builds a task, optimises ``trainable_parameters()`` against
``forward(batch, step).total`` and logs ``forward(...).logs``. Everything a stage needs (models,
frozen TAEF2 parts, metric networks, loss weights) lives inside the task module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import Tensor, nn

from mrt.data.batch import Batch

if TYPE_CHECKING:
    from mrt.train.config import TrainConfig


@dataclass
class LossOutput:
    """What a task returns: the scalar to minimise and floats to log (averaged over log steps).

    Conventional ``logs`` keys: ``bpp`` (shown in the progress bar as the rate), ``psnr``,
    ``mse``, ``ce``, ... Every rank must report the same keys.
    """

    total: Tensor
    logs: dict[str, float] = field(default_factory=dict)


class Task(nn.Module, ABC):
    """Base class of training tasks (subclassing is optional; the loop duck-types).

    ``forward(batch, step)`` receives a :class:`~mrt.data.batch.Batch` already on the training
    device and the 0-based index of the optimizer step being computed; it runs under
    ``torch.autocast(bfloat16)`` when ``run.bf16`` is set. Compute every loss inside forward so
    that DDP sees every used parameter. Frozen parts set ``requires_grad=False``.
    """

    @abstractmethod
    def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
        """Compute the training loss of one batch."""

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the optimizer updates and the EMA tracks; default: those with ``requires_grad``."""
        for p in self.parameters():
            if p.requires_grad:
                yield p

    def named_trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """(name, parameter) pairs of :meth:`trainable_parameters` (override either one)."""
        chosen = {id(p) for p in self.trainable_parameters()}
        for name, p in self.named_parameters():
            if id(p) in chosen:
                yield name, p

    def no_weight_decay(self) -> set[str]:
        """Extra parameter names excluded from weight decay (beyond the default rule)."""
        return set()

    def on_step_end(self, step: int) -> None:
        """Called after optimizer step ``step`` (0-based) on every rank, outside autocast."""


TaskFactory = Callable[["TrainConfig"], nn.Module]


def named_trainable_parameters(task: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The task's trainable (name, parameter) pairs, honouring its hooks when it defines them."""
    hook = getattr(task, "named_trainable_parameters", None)
    if callable(hook):
        return list(hook())
    hook = getattr(task, "trainable_parameters", None)
    if callable(hook):
        chosen = {id(p) for p in hook()}
        return [(n, p) for n, p in task.named_parameters() if id(p) in chosen]
    return [(n, p) for n, p in task.named_parameters() if p.requires_grad]
