"""Portable integer tables: the same frequencies on every machine, from float64 logits.

Why: :func:`~mrt.entropy.quantize.quantize_pmf` turns float32 *probabilities* into tables
exactly, but the probabilities themselves come from a network whose float32 results differ in
the last bits between CPUs (another SIMD width or BLAS kernel sums in another order). With
2**16-unit tables, such a difference moves some table entry by one unit in nearly every file,
and a file then fails to decode on another machine (measured: files written on an AVX2 machine
fail their checksum on an AVX-512 one). Version-4 files therefore build their tables from the
context model's *logits* computed in float64 (errors ~1e-15, relative) and rounded to a coarse
grid, after which everything is integer arithmetic:

1. ``q = rint(logit * 16)`` (round half to even; multiplying a float64 by 16 is exact), so a
   table can only differ between machines when a logit lies within ~1e-14 of a multiple of
   1/32: about 1e-12 per logit, 1e-7 per file of 100k logits.
2. ``d = max(q) - q`` per row; the weight of a symbol is ``EXP_TABLE[d]`` =
   ``round(2**24 * exp(-d / 16))`` (computed exactly with :mod:`decimal`, round half to even;
   0 beyond the table, i.e. for probabilities under 2**-25 of the largest).
3. The weights are shared out exactly as in :func:`quantize_pmf` (one unit per symbol, the rest
   by largest remainder), so rows sum to ``2**precision`` and every symbol stays codable.

The grid costs nothing measurable: a logit is off by at most 1/32 nat, so a probability by at
most ~6.5% relative; the mean Kullback-Leibler loss is about (1/16)**2 / 24 nat, 0.0003 bit per
symbol.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

import numpy as np

from mrt.entropy.quantize import MAX_PRECISION, _share_largest_remainder

LOGIT_SCALE = 16  # logits are rounded to multiples of 1 / LOGIT_SCALE
WEIGHT_BITS = 24  # EXP_TABLE[0] = 2**24


def _exp_table() -> np.ndarray:
    """``round(2**24 * exp(-d / 16))`` for d = 0, 1, ... while it is >= 1 (exact decimal arithmetic)."""
    ctx = Context(prec=60)
    scale = Decimal(1 << WEIGHT_BITS)
    values: list[int] = []
    d = 0
    while True:
        w = int((ctx.exp(Decimal(-d) / LOGIT_SCALE) * scale).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        if w < 1:
            break
        values.append(w)
        d += 1
    return np.asarray(values, dtype=np.int64)


#: weights by distance from the row's largest rounded logit (278 entries, from 2**24 down to 1)
EXP_TABLE = _exp_table()
EXP_TABLE.setflags(write=False)


def portable_tables(logits: np.ndarray, precision: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """float64 logits ``(..., A)`` -> (float32 probabilities, int32 frequency tables).

    The frequencies are a function of ``rint(logits * 16)`` only (see the module docstring); the
    probabilities (the softmax of the rounded logits) are for size estimates. Raises ``ValueError`` for non-float64 or non-finite
    logits, or an alphabet that does not fit ``precision``.
    """
    x = np.asarray(logits)
    if x.dtype != np.float64:
        raise ValueError(f"portable tables need float64 logits, got {x.dtype}")
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"logits must have shape (..., A) with A >= 1, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("logits contain NaN or infinity")
    if not 0 <= precision <= MAX_PRECISION or x.shape[-1] > 1 << precision:
        raise ValueError(f"alphabet of {x.shape[-1]} symbols does not fit precision {precision}")
    q = np.rint(x * LOGIT_SCALE)  # float64 integers
    gap = q.max(axis=-1, keepdims=True) - q  # >= 0
    d = np.minimum(gap, len(EXP_TABLE)).astype(np.int64)
    weights = np.concatenate([EXP_TABLE, [0]])[d]  # [..., A], the largest is 2**24
    freqs = _share_largest_remainder(weights, (1 << precision) - x.shape[-1]) + 1
    # for size estimates: the softmax of the rounded logits (never 0, unlike the weights)
    e = np.exp(-np.minimum(gap, 1000.0) / LOGIT_SCALE)
    probs = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    return probs, freqs
