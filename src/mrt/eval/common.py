"""Small pieces shared by the evaluation modules: the error type, progress logging, file names."""

from __future__ import annotations

import sys
from collections.abc import Callable

from mrt.errors import MRTError

__all__ = ["EvalError", "Log", "safe_name", "stderr_log"]

#: where progress lines go (``None`` in the APIs means silent)
Log = Callable[[str], None]


class EvalError(MRTError):
    """An evaluation could not run (no images, a codec returned the wrong shape, ...)."""


def stderr_log(msg: str) -> None:
    """Print one progress line on stderr."""
    print(msg, file=sys.stderr, flush=True)


def safe_name(s: str) -> str:
    """``s`` with every character other than letters, digits, ``-_.`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s) or "x"
