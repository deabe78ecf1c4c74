"""Rate control arithmetic: byte budgets and the search for the most tokens that fit one.

The codec (``mrt.codec.Codec.encode``) supplies the sizes: estimated ones from the RCM's rate
(cheap, within ``RATE_TOLERANCE`` of the real payload) to narrow the search, real encodes to
decide. Nothing here knows about models; it is the container's side of "which file fits".
"""

from __future__ import annotations

import math
from collections.abc import Callable

# How far an estimated file size may be from the real one (tests/test_rate_vs_payload.py shows
# the RCM's batched rate within 1% + 4 bytes of the real payload; measured within 1 byte).
RATE_TOLERANCE = 0.01
RATE_TOLERANCE_BYTES = 4


def check_rate_options(k: int | None, max_bytes: int | None, bpp: float | None, max_tokens: int) -> None:
    """``ValueError`` unless at most one rate option is given, with a usable value."""
    given = [name for name, value in (("k", k), ("max_bytes", max_bytes), ("bpp", bpp)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of k, max_bytes and bpp, not {' and '.join(given)}")
    if k is not None and not 1 <= k <= max_tokens:
        raise ValueError(f"k must be in 1..{max_tokens}, got {k}")
    if max_bytes is not None and max_bytes < 1:
        raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
    if bpp is not None and not (math.isfinite(bpp) and bpp > 0):
        raise ValueError(f"bpp must be a positive number, got {bpp}")


def budget_bytes(height: int, width: int, max_bytes: int | None, bpp: float | None) -> int:
    """The byte budget of ``max_bytes``, or of ``bpp`` bits per pixel (rounded down) for an image."""
    if max_bytes is not None:
        return max_bytes
    if bpp is None:
        raise ValueError("give max_bytes or bpp")
    return math.floor(bpp * height * width / 8 + 1e-9)


def may_fit(estimated_size: int, budget: int) -> bool:
    """Whether a file estimated at ``estimated_size`` bytes may really be within ``budget``."""
    return estimated_size - RATE_TOLERANCE * estimated_size - RATE_TOLERANCE_BYTES <= budget


def largest_candidate(estimate: Callable[[int], int], n: int, budget: int, base: int = 0) -> int:
    """Largest ``k`` in 1..n whose estimated size ``estimate(k)`` may fit ``budget`` (0 if none).

    Sizes grow about linearly with k (``base``: the size at k = 0, the header), so the search
    probes k = 1 (the cheapest estimate), then the secant guess between the nearest sizes
    known on both sides of the budget, narrowing a bracket [may fit, does not]; then it walks
    upwards while the next k may still fit (estimates need not be strictly monotone). Typically
    3 or 4 calls of ``estimate``, at most n.
    """
    fits: dict[int, int] = {0: base}  # k -> estimated size, for the k that may fit (0: no tokens)
    over: dict[int, int] = {}  # ... and for those that do not
    lo, hi = 0, n + 1
    while hi - lo > 1:
        probe = _secant(fits, over, lo, hi, budget)
        size = estimate(probe)
        (fits if may_fit(size, budget) else over)[probe] = size
        lo, hi = max(fits), min(over, default=n + 1)
    while lo < n and may_fit(estimate(lo + 1), budget):
        lo += 1
    return lo


def _secant(fits: dict[int, int], over: dict[int, int], lo: int, hi: int, budget: int) -> int:
    """The next k to estimate: inside (lo, hi), where the line through two known sizes meets the budget."""
    if len(fits) == 1 and not over:
        return 1
    target = (budget + RATE_TOLERANCE_BYTES) / (1 - RATE_TOLERANCE)  # the largest size that may fit
    if lo in fits and hi in over:
        (k0, s0), (k1, s1) = (lo, fits[lo]), (hi, over[hi])
    else:  # nothing over yet: extrapolate from the two largest k that fit
        k0, k1 = sorted(fits)[-2:]
        s0, s1 = fits[k0], fits[k1]
    guess = k0 + (target - s0) * (k1 - k0) / (s1 - s0) if s1 > s0 else (lo + hi) / 2
    return min(max(int(guess), lo + 1), hi - 1)
