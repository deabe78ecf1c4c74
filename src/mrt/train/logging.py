"""Run logs (rank 0 only): CSV metrics, TensorBoard scalars, and a plain-text message log.

``out_dir/metrics.csv``: one row per log step with ``step, time, lr, img_per_s, loss,
grad_norm`` and then every key the task logs (the header grows when new keys appear).
``out_dir/tb/``: the same scalars for TensorBoard (skipped with one warning when
``torch.utils.tensorboard`` cannot be imported). ``out_dir/train.log``: messages.
On resume, rows/events after the resumed step are dropped so the logs match the state.
:class:`StepLog` ties them to the loop (with the progress bar).
"""

from __future__ import annotations

import csv
import io
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from mrt.io import atomic_write_text
from mrt.train.distributed import gather_objects

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
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=self.fields, restval="")
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue(), force=True)

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
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)
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


class StepLog:
    """What the loop reports every ``run.log_every`` steps: per-step values averaged over the steps
    since the last report and over the ranks, written by rank 0 to ``metrics.csv``, TensorBoard
    and the progress bar (step, loss, bpp, images/s)."""

    def __init__(
        self,
        out_dir: Path,
        is_main: bool,
        start_step: int,
        end_step: int,
        resumed: bool,
        desc: str,
        progress: bool,
        tensorboard: bool,
    ) -> None:
        self.is_main = is_main
        self.csv: CSVLogger | None = None
        self.tb: TensorBoardLogger | None = None
        self.pbar: Any = None
        if is_main:
            resumed_at = start_step if resumed else None
            self.csv = CSVLogger(out_dir / "metrics.csv", resume_step=resumed_at)
            self.tb = TensorBoardLogger(out_dir / "tb", purge_step=resumed_at, enabled=tensorboard)
        if is_main and progress:
            from tqdm import tqdm

            self.pbar = tqdm(total=end_step, initial=start_step, desc=desc, unit="step", dynamic_ncols=True)
        self.meter = RunningMean()
        self.steps_since_log = 0
        self.t_start = self.t_last = 0.0

    def start(self, t_start: float) -> None:
        """Clock origin of the ``time`` column and of the first images/s window."""
        self.t_start = self.t_last = t_start

    def add(self, values: dict[str, float]) -> None:
        """Accumulate one step's values (every rank)."""
        self.meter.add(values)
        self.steps_since_log += 1
        if self.pbar is not None:
            self.pbar.update(1)

    def set_total(self, end_step: int) -> None:
        """The run's (new) end, for the progress bar."""
        if self.pbar is not None:
            self.pbar.total = end_step
            self.pbar.refresh()

    def report(self, step: int, lr: float, images_per_step: int, elapsed_before: float) -> None:
        """Merge the values over the ranks (collective) and write one row on rank 0."""
        means = merge_means(gather_objects(self.meter.state()))
        now = time.perf_counter()
        ips = self.steps_since_log * images_per_step / max(now - self.t_last, 1e-9)
        self.t_last, self.steps_since_log = now, 0
        self.meter.reset()
        if not self.is_main:
            return
        row = {"step": step, "time": round(elapsed_before + now - self.t_start, 3), "lr": lr, "img_per_s": ips}
        row.update(means)
        assert self.csv is not None and self.tb is not None
        self.csv.log(row)
        self.tb.log(step, {k: float(v) for k, v in row.items() if k not in ("step", "time")})
        if self.pbar is not None:
            post = {"loss": f"{means.get('loss', float('nan')):.4g}"}
            if "bpp" in means:
                post["bpp"] = f"{means['bpp']:.4f}"
            post["img/s"] = f"{ips:.1f}"
            self.pbar.set_postfix(post, refresh=False)

    def close(self) -> None:
        """Close the progress bar and the TensorBoard writer."""
        if self.pbar is not None:
            self.pbar.close()
        if self.tb is not None:
            self.tb.close()
