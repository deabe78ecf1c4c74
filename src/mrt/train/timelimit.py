"""``run.time_limit_s``: measure the step time, then end the run (and its LR schedule) inside the budget."""

from __future__ import annotations

import time
from collections.abc import Callable

from mrt.train.distributed import gather_objects


class TimeBudget:
    """Fits the end step of a run to a wall-clock budget that spans resumed invocations.

    The first ``CALIB_SKIP`` steps of an invocation (allocator, autotuning) are not timed; the
    end is first estimated after ``CALIB_STEPS`` timed steps, then every ``REFIT_EVERY`` steps.
    Rank 0 decides for every rank (a collective call: every rank calls :meth:`after_step`).
    """

    CALIB_SKIP = 5
    CALIB_STEPS = 20
    REFIT_EVERY = 200

    def __init__(
        self,
        limit_s: float,
        elapsed_before: float,
        start_step: int,
        max_end: int,
        t_start: float,
        log: Callable[[str], None],
    ) -> None:
        self.limit_s = limit_s
        self.elapsed_before = elapsed_before  # seconds spent by earlier invocations of the run
        self.start_step = start_step
        self.max_end = max_end  # the end the data loader was built for
        self.t_start = t_start
        self.t_calib = t_start
        self.calib_from: int | None = None
        self.log = log

    def after_step(self, step: int, end_step: int) -> int | None:
        """The new end step when the budget is (re-)estimated after step ``step``, else ``None``."""
        if step - self.start_step == self.CALIB_SKIP:
            self.t_calib, self.calib_from = time.perf_counter(), step
            return None
        if self.calib_from is None:
            return None
        timed = step - self.calib_from
        if timed == self.CALIB_STEPS or timed % self.REFIT_EVERY == 0:
            return self._fit(step, end_step, timed)
        return None

    def _fit(self, step: int, end_step: int, n_timed: int) -> int:
        """End step so that the loop ends inside the budget: never beyond ``max_end`` nor below
        ``step + 1``; from the mean step time since the calibration started."""
        now = time.perf_counter()
        per_step = (now - self.t_calib) / max(1, n_timed)
        remaining = self.limit_s - self.elapsed_before - (now - self.t_start)
        proposal = step + max(1, int(remaining / max(per_step, 1e-9)))
        proposal = gather_objects(proposal)[0]  # every rank takes rank 0's decision
        new_end = max(step + 1, min(self.max_end, proposal))
        if new_end != end_step:
            self.log(f"time limit {self.limit_s:.0f} s: {per_step:.3f} s/step -> ending at step {new_end}")
        return new_end
