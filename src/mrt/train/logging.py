"""Run logs (rank 0 only): CSV metrics, TensorBoard scalars, and a plain-text message log.

``out_dir/metrics.csv``: one row per log step with ``step, time, lr, img_per_s, loss,
grad_norm`` and then every key the task logs (the header grows when new keys appear).
``out_dir/tb/``: the same scalars for TensorBoard (skipped with one warning when
``torch.utils.tensorboard`` cannot be imported). ``out_dir/train.log``: messages.
On resume, rows/events after the resumed step are dropped so the logs match the state.
"""

from __future__ import annotations

import csv
import sys
import time
import warnings
from pathlib import Path
from typing import Any

FIXED_COLUMNS = ("step", "time", "lr", "img_per_s", "loss", "grad_norm")


class CSVLogger:
    """Append-only CSV of scalar rows keyed by ``step``; rewrites itself when the header grows."""

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.fields: list[str] = list(FIXED_COLUMNS)
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames:
                    self.fields = list(reader.fieldnames)
                self.rows = [r for r in reader if r.get("step") and int(float(r["step"])) <= resume_step]
        self._rewrite()

    def _rewrite(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, restval="")
            w.writeheader()
            w.writerows(self.rows)
        tmp.replace(self.path)

    def log(self, row: dict[str, Any]) -> None:
        """Write one row (new keys extend the header)."""
        row = {k: _fmt(v) for k, v in row.items()}
        self.rows.append(row)
        new = [k for k in row if k not in self.fields]
        if new:
            self.fields.extend(new)
            self._rewrite()
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields, restval="").writerow(row)


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


class TensorBoardLogger:
    """``SummaryWriter`` wrapper that degrades to a no-op (with one warning) when unavailable."""

    def __init__(self, log_dir: str | Path, purge_step: int | None = None, enabled: bool = True) -> None:
        self.writer: Any = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception as exc:  # noqa: BLE001 - any import failure only disables TensorBoard
            warnings.warn(f"TensorBoard logging disabled ({type(exc).__name__}: {exc})", stacklevel=2)
            return
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """Add every scalar at ``step``."""
        if self.writer is None:
            return
        for k, v in scalars.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MessageLog:
    """Rank-0 messages: printed to stderr (without breaking a tqdm bar) and appended to a file."""

    def __init__(self, path: str | Path | None, enabled: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self.enabled = enabled

    def __call__(self, msg: str) -> None:
        """Print and record one message."""
        if not self.enabled:
            return
        try:
            from tqdm import tqdm

            tqdm.write(msg, file=sys.stderr)
        except ImportError:  # pragma: no cover
            print(msg, file=sys.stderr)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")


class RunningMean:
    """Per-key running means of floats between two log steps."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: dict[str, float]) -> None:
        """Accumulate one step's values."""
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
            self.counts[k] = self.counts.get(k, 0) + 1

    def state(self) -> dict[str, tuple[float, int]]:
        """(sum, count) per key, for merging across ranks."""
        return {k: (self.sums[k], self.counts[k]) for k in self.sums}

    def reset(self) -> None:
        """Forget everything."""
        self.sums.clear()
        self.counts.clear()


def merge_means(states: list[dict[str, tuple[float, int]]]) -> dict[str, float]:
    """Mean per key over several :meth:`RunningMean.state` dicts (e.g. one per rank)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for st in states:
        for k, (s, c) in st.items():
            sums[k] = sums.get(k, 0.0) + s
            counts[k] = counts.get(k, 0) + c
    return {k: sums[k] / counts[k] for k in sums if counts[k]}
