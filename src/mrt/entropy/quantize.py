"""Deterministic quantization of probability tables to integer frequency tables.

Algorithm (the same on every platform, bit for bit):

1. The input is cast to float32 and clipped to ``[0, 1]``. Each entry is multiplied by
   ``2**24`` and floored. Multiplying a float32 in ``[0, 1]`` by a power of two is exact and so
   is the floor, so this single float->int step has no rounding at all: ``w = floor(p * 2**24)``
   is an integer in ``[0, 2**24]``. Everything after this step is integer arithmetic.
2. A row whose weights are all zero becomes uniform (``w = 1`` everywhere).
3. Every symbol is first given frequency 1 (so any symbol stays codable). The remaining
   ``free = 2**precision - A`` units are shared in proportion to ``w`` with the largest-remainder
   method: symbol ``i`` gets ``floor(w_i * free / W)`` (``W = sum(w)``) and the
   ``free - sum(floor(...))`` leftover units (fewer than ``A``) go, one each, to the symbols with
   the largest remainders ``(w_i * free) mod W``; ties go to the lower symbol index.

Rows therefore sum to exactly ``2**precision`` and every entry is ``>= 1``. The reserved unit per
symbol costs about ``-log2(1 - A / 2**precision)`` bits per coded symbol, so choose
``precision >= log2(A) + 8`` for large alphabets (e.g. 16 for ``A <= 256``, 20 for ``A <= 4096``).
"""

from __future__ import annotations

import numpy as np

#: Largest supported table precision (totals up to 2**24; the range coder needs no more).
MAX_PRECISION = 24
_KEY_LIMIT = 1 << 19  # alphabets up to this size rank remainders with unique int64 keys
_WEIGHT_BITS = 24  # float32 has a 24-bit significand: p * 2**24 keeps every representable step


def quantize_pmf(probs: np.ndarray, precision: int = 16) -> np.ndarray:
    """Turn probabilities ``(..., A)`` into integer frequencies ``(..., A)`` (int32).

    Every entry is ``>= 1`` and every row sums to exactly ``2**precision``. Rows need not be
    normalized (they are renormalized in integer arithmetic); entries must be finite and
    ``>= 0``; values above 1 are clipped to 1. See the module docstring for the algorithm.
    """
    if not 0 <= precision <= MAX_PRECISION:
        raise ValueError(f"precision must be in [0, {MAX_PRECISION}], got {precision}")
    p = np.asarray(probs)
    if p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"probs must have shape (..., A) with A >= 1, got {p.shape}")
    p = p.astype(np.float32, copy=False)
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contain NaN or infinity")
    if np.any(p < 0):
        raise ValueError("probs contain negative values")
    n_sym = p.shape[-1]
    total = 1 << precision
    if n_sym > total:
        raise ValueError(f"alphabet of {n_sym} symbols does not fit precision {precision}")
    weights = _integer_weights(p)
    return _share_largest_remainder(weights, total - n_sym) + 1


def _integer_weights(p: np.ndarray) -> np.ndarray:
    """The single float->int step: ``floor(min(p, 1) * 2**24)`` (exact), zero rows -> uniform."""
    scaled = np.minimum(p, np.float32(1.0)) * np.float32(1 << _WEIGHT_BITS)  # exact in float32
    weights = np.floor(scaled).astype(np.int64)
    empty = weights.sum(axis=-1, keepdims=True) == 0
    return np.where(empty, np.int64(1), weights)


def _share_largest_remainder(weights: np.ndarray, free: int) -> np.ndarray:
    """Split ``free`` units over each row in proportion to ``weights`` (integers, exact)."""
    row_sum = weights.sum(axis=-1, keepdims=True)  # (..., 1), >= 1
    scaled = weights * np.int64(free)  # < 2**24 * 2**24: no int64 overflow
    base = scaled // row_sum
    remainder = scaled % row_sum
    missing = free - base.sum(axis=-1, keepdims=True)  # (..., 1), in [0, A)
    return (base + _largest(remainder, missing)).astype(np.int32)


def _largest(remainder: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Mask of the ``count`` largest remainders per row (ties: lower index first)."""
    n_sym = remainder.shape[-1]
    index = np.arange(n_sym, dtype=np.int64)
    if n_sym <= _KEY_LIMIT:  # unique keys fit in int64 (remainder < 2**24 * n_sym)
        keys = remainder * np.int64(n_sym) + (n_sym - 1 - index)  # larger key = earlier pick
        ordered = np.sort(keys, axis=-1)
        pick = np.clip(n_sym - count, 0, n_sym - 1)
        threshold = np.take_along_axis(ordered, pick, axis=-1)
        return (keys >= threshold) & (count > 0)
    order = np.argsort(-remainder, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(index, order.shape), axis=-1)
    return ranks < count
