"""SIGINT/SIGTERM during training: finish the step, save a checkpoint, stop (a second Ctrl-C aborts)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any


@dataclass
class StopFlag:
    """Set by the handlers of :func:`install_stop_handlers`; the loop polls ``requested``."""

    requested: bool = False
    signum: int = 0
    since: float = 0.0


def install_stop_handlers(stop: StopFlag, log: Callable[[str], None]) -> dict[int, Any]:
    """Route SIGINT and SIGTERM to ``stop``; returns the previous handlers (for :func:`restore_handlers`).

    Only the main thread may install handlers; elsewhere nothing is installed (``{}``).
    """
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if stop.requested:
            # a second Ctrl-C aborts without a checkpoint; the copy torchrun relays right after the
            # terminal's own SIGINT (same key press) must not count as a second one
            if signum == signal.SIGINT and now - stop.since > 2.0:
                raise KeyboardInterrupt
            return
        stop.requested = True
        stop.signum = signum
        stop.since = now
        log(f"signal {signal.Signals(signum).name}: finishing the step, then saving a checkpoint "
            "(Ctrl-C again to abort without saving)")

    old = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        old[s] = signal.signal(s, handler)
    return old


def restore_handlers(old: dict[int, Any]) -> None:
    """Put back the handlers :func:`install_stop_handlers` replaced."""
    for s, h in old.items():
        signal.signal(s, h)
