"""Bjontegaard deltas (BD-rate, BD-metric) with piecewise cubic Hermite (PCHIP) interpolation.

BD-rate: interpolate ``log(rate)`` as a function of the metric for the anchor and the test
curve (PCHIP, shape preserving, no overshoot), integrate both exactly over the metric interval
where the two curves overlap, and turn the mean log-rate difference into a percentage::

    BD-rate = (exp(mean_{m in overlap} [log R_test(m) - log R_anchor(m)]) - 1) * 100

Negative means the test codec needs fewer bits than the anchor for the same quality.
Lower-is-better metrics (LPIPS, DISTS, FID, KID: the direction comes from
:mod:`mrt.metrics.registry`) are negated first, which leaves the rate difference at each quality
level unchanged.

BD-metric: the same with the roles swapped, i.e. the metric as a function of ``log(rate)``,
averaged over the overlapping ``log(rate)`` interval, reported as ``test - anchor`` in the
metric's own units (for lower-is-better metrics negative is better).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mrt.errors import MRTError
from mrt.metrics.registry import find_metric

__all__ = [
    "BDError",
    "BDResult",
    "bd_metric",
    "bd_rate",
    "bd_rate_or_none",
    "bjontegaard",
    "is_lower_better",
]

class BDError(MRTError):
    """The two curves cannot be compared (too few points, bad values, no overlap)."""


def is_lower_better(metric: str) -> bool:
    """Whether a metric (``psnr``, ``ms-ssim``, ``lpips``, ...; any case) is lower-is-better.

    Names that are not in the registry count as higher-is-better.
    """
    spec = find_metric(metric)
    return spec is not None and not spec.higher_is_better


@dataclass(frozen=True)
class BDResult:
    """A Bjontegaard delta and the interval it was integrated over."""

    value: float  # percent for BD-rate, metric units for BD-metric
    lo: float  # overlap interval (metric units for BD-rate, bpp for BD-metric)
    hi: float
    kind: str  # "rate" or "metric"


def _clean(rate: Sequence[float], metric: Sequence[float], sign: float) -> tuple[np.ndarray, np.ndarray]:
    """Validate one curve; return ``(log_rate, signed_metric)`` as float arrays."""
    r = np.asarray(rate, dtype=np.float64).ravel()
    m = np.asarray(metric, dtype=np.float64).ravel()
    if r.shape != m.shape:
        raise BDError(f"rate and metric lengths differ ({r.size} vs {m.size})")
    keep = np.isfinite(r) & np.isfinite(m)
    r, m = r[keep], m[keep]
    if np.any(r <= 0):
        raise BDError("rates must be positive")
    if r.size < 2:
        raise BDError(f"need at least 2 finite rate points per curve, got {r.size}")
    return np.log(r), sign * m


def _monotone(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort by ``x`` and drop repeated ``x`` values (keeping the smallest ``y``)."""
    order = np.lexsort((y, x))
    x, y = x[order], y[order]
    first = np.concatenate(([True], np.diff(x) > 0))
    x, y = x[first], y[first]
    if x.size < 2:
        raise BDError("a curve has fewer than 2 distinct points")
    return x, y


def _mean_over(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray) -> tuple[float, float, float]:
    """Mean of ``f2 - f1`` over the overlap of the two x ranges (PCHIP, exact integrals)."""
    from scipy.interpolate import PchipInterpolator  # noqa: PLC0415

    x1, y1 = _monotone(x1, y1)
    x2, y2 = _monotone(x2, y2)
    lo = max(float(x1[0]), float(x2[0]))
    hi = min(float(x1[-1]), float(x2[-1]))
    if not hi > lo:
        raise BDError(
            f"the curves do not overlap (anchor [{x1[0]:.4g}, {x1[-1]:.4g}], "
            f"test [{x2[0]:.4g}, {x2[-1]:.4g}])"
        )
    f1 = PchipInterpolator(x1, y1, extrapolate=False)
    f2 = PchipInterpolator(x2, y2, extrapolate=False)
    diff = (float(f2.integrate(lo, hi)) - float(f1.integrate(lo, hi))) / (hi - lo)
    return diff, lo, hi


def bjontegaard(
    anchor_rate: Sequence[float],
    anchor_metric: Sequence[float],
    test_rate: Sequence[float],
    test_metric: Sequence[float],
    *,
    lower_is_better: bool = False,
    kind: str = "rate",
) -> BDResult:
    """BD-rate (``kind="rate"``, percent) or BD-metric (``kind="metric"``) of test vs anchor.

    Raises :class:`BDError` when a curve has fewer than two usable points or when the curves'
    ranges do not overlap.
    """
    sign = -1.0 if lower_is_better else 1.0
    la, ma = _clean(anchor_rate, anchor_metric, sign)
    lt, mt = _clean(test_rate, test_metric, sign)
    if kind == "rate":
        diff, lo, hi = _mean_over(ma, la, mt, lt)
        value = (math.exp(diff) - 1.0) * 100.0
        lo, hi = sign * lo, sign * hi
        return BDResult(value=value, lo=min(lo, hi), hi=max(lo, hi), kind="rate")
    if kind == "metric":
        diff, lo, hi = _mean_over(la, ma, lt, mt)
        return BDResult(value=sign * diff, lo=math.exp(lo), hi=math.exp(hi), kind="metric")
    raise BDError(f"kind must be 'rate' or 'metric', got {kind!r}")


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_metric: Sequence[float],
    test_rate: Sequence[float],
    test_metric: Sequence[float],
    *,
    lower_is_better: bool = False,
) -> float:
    """BD-rate of the test curve against the anchor in percent (negative = test saves bits)."""
    return bjontegaard(anchor_rate, anchor_metric, test_rate, test_metric,
                       lower_is_better=lower_is_better, kind="rate").value


def bd_metric(
    anchor_rate: Sequence[float],
    anchor_metric: Sequence[float],
    test_rate: Sequence[float],
    test_metric: Sequence[float],
    *,
    lower_is_better: bool = False,
) -> float:
    """BD-metric: mean ``test - anchor`` metric difference over the common log-rate range."""
    return bjontegaard(anchor_rate, anchor_metric, test_rate, test_metric,
                       lower_is_better=lower_is_better, kind="metric").value


def bd_rate_or_none(
    anchor_rate: Sequence[float],
    anchor_metric: Sequence[float],
    test_rate: Sequence[float],
    test_metric: Sequence[float],
    *,
    lower_is_better: bool = False,
    kind: str = "rate",
) -> BDResult | None:
    """Like :func:`bjontegaard` but ``None`` instead of :class:`BDError` (for report tables)."""
    try:
        return bjontegaard(anchor_rate, anchor_metric, test_rate, test_metric,
                           lower_is_better=lower_is_better, kind=kind)
    except BDError:
        return None
