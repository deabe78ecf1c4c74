"""Coding scale: a file may code a downscaled copy of the image (format version 3).

A version-3 header stores a *scale code* ``n`` in 1 ... 7 (flag bits 1-3). The encoder codes
the image resized to ``coded_size(height, width, n)`` and the decoder restores the stored
size. The factors are exact fractions so that both sides compute the coded size with integer
arithmetic only; consecutive factors differ by 1.2x to 1.5x, i.e. 1.4x to 2.3x in area (and
so in bits at a fixed number of tokens per window). Code 0 means "not scaled" (versions 1
and 2 are always unscaled; a version-3 file always has a code of 1 or more).
"""

from __future__ import annotations

import math
from fractions import Fraction

#: scale code -> downscaling factor (numerator, denominator); code 0 is the identity
SCALE_FACTORS: dict[int, tuple[int, int]] = {
    0: (1, 1),
    1: (5, 4),
    2: (3, 2),
    3: (2, 1),
    4: (5, 2),
    5: (3, 1),
    6: (4, 1),
    7: (6, 1),
}
MAX_SCALE_CODE = max(SCALE_FACTORS)


def scale_factor(code: int) -> Fraction:
    """The downscaling factor of a scale code (``ValueError`` for an unknown code)."""
    if code not in SCALE_FACTORS:
        raise ValueError(f"scale code must be in 0..{MAX_SCALE_CODE}, got {code}")
    num, den = SCALE_FACTORS[code]
    return Fraction(num, den)


def coded_side(side: int, code: int) -> int:
    """One coded side: ``side / factor`` rounded half up, at least 1 (integer arithmetic only)."""
    num, den = SCALE_FACTORS[code]
    return max(1, (2 * side * den + num) // (2 * num))


def coded_size(height: int, width: int, code: int) -> tuple[int, int]:
    """(coded height, coded width) of a ``width`` x ``height`` image at scale code ``code``."""
    if code not in SCALE_FACTORS:
        raise ValueError(f"scale code must be in 0..{MAX_SCALE_CODE}, got {code}")
    return coded_side(height, code), coded_side(width, code)


def code_for_factor(factor: float) -> int:
    """The scale code whose factor is nearest to ``factor`` (>= 1) on a log scale."""
    if not (math.isfinite(factor) and factor >= 1):
        raise ValueError(f"a downscaling factor must be a number >= 1, got {factor}")
    return min(SCALE_FACTORS, key=lambda c: abs(math.log(float(scale_factor(c))) - math.log(factor)))
