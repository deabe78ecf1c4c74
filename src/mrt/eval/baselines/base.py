"""The interface every classical baseline implements, and bisection on its quality knob."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from mrt.errors import ImageError, MRTError
from mrt.io import check_rgb_image

__all__ = ["Availability", "Baseline", "BaselineError", "BaselineUnavailable", "bpp_of", "check_image"]


class BaselineError(MRTError):
    """A classical codec failed to encode or decode, or got an input it cannot take."""

    exit_code = 6


class BaselineUnavailable(BaselineError):
    """The library or binary that a baseline needs is not installed."""


@dataclass(frozen=True)
class Availability:
    """Whether a baseline can run here; ``reason`` says why not."""

    ok: bool
    reason: str = ""


def bpp_of(nbytes: int, height: int, width: int) -> float:
    """Bits per pixel of a file of ``nbytes`` bytes for an ``height x width`` image."""
    return nbytes * 8.0 / float(height * width)


def check_image(img: np.ndarray) -> np.ndarray:
    """An RGB uint8 ``(H, W, 3)`` image, C-contiguous; :class:`BaselineError` otherwise."""
    try:
        return check_rgb_image(img)
    except ImageError as exc:
        raise BaselineError(str(exc)) from None


class Baseline(ABC):
    """A classical image codec with one scalar quality knob.

    ``quality_range`` is ``(lowest-rate setting, highest-rate setting)``: for QP-driven codecs the
    first number is the larger one. Rate is assumed to be monotone along the knob (it is, up to
    small wobbles, for every codec here), which is what :meth:`encode_at_bpp` relies on.
    """

    name: str = ""
    description: str = ""
    file_ext: str = ""
    quality_range: tuple[float, float] = (0.0, 100.0)
    integer_quality: bool = True
    #: default sweep, chosen to span about 0.005-0.1 bpp on Kodak where the codec can
    default_qualities: tuple[float, ...] = ()

    # ---- capability -----------------------------------------------------------------------
    @abstractmethod
    def availability(self) -> Availability:
        """Whether the codec's library/binary is present (cheap; never raises)."""

    def require(self) -> None:
        """Raise :class:`BaselineUnavailable` with the reason when the codec cannot run."""
        av = self.availability()
        if not av.ok:
            raise BaselineUnavailable(f"{self.name}: unavailable ({av.reason})")

    @abstractmethod
    def encoder_version(self) -> str:
        """Library/encoder version string; part of the result cache key."""

    def settings_id(self) -> str:
        """Fixed encoder settings besides the quality knob (also part of the cache key)."""
        return ""

    # ---- coding ---------------------------------------------------------------------------
    @abstractmethod
    def encode(self, img: np.ndarray, quality: float) -> bytes:
        """Encode an RGB uint8 ``(H, W, 3)`` image at ``quality``; return the file's bytes."""

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decode file bytes back to an RGB uint8 ``(H, W, 3)`` image."""

    def quality_label(self, quality: float) -> str:
        """Human-readable setting, e.g. ``qp=45`` or ``q=30``."""
        return f"q={self.format_quality(quality)}"

    def format_quality(self, quality: float) -> str:
        """The knob value as text (integers without a decimal point)."""
        if self.integer_quality:
            return str(int(round(quality)))
        return f"{quality:g}"

    def clamp_quality(self, quality: float) -> float:
        """Clip ``quality`` into :attr:`quality_range` (rounded for integer knobs)."""
        lo, hi = sorted(self.quality_range)
        q = min(max(float(quality), lo), hi)
        return float(round(q)) if self.integer_quality else q

    def encode_at_bpp(
        self, img: np.ndarray, target_bpp: float, max_steps: int = 24, tol_bpp: float = 0.0
    ) -> tuple[bytes, float]:
        """Encode at the highest-rate setting whose bpp does not exceed ``target_bpp``.

        Bisection along the quality knob (integer knobs: exact binary search; real knobs: up to
        ``max_steps`` halvings or until within ``tol_bpp`` below the target). When even the
        lowest-rate setting is above the target, that lowest-rate encoding is returned. Returns
        ``(file bytes, quality)``.
        """
        img = check_image(img)
        if not (target_bpp > 0 and math.isfinite(target_bpp)):
            raise BaselineError(f"target bpp must be a positive number, got {target_bpp}")
        h, w = img.shape[:2]
        lo_q, hi_q = (float(q) for q in self.quality_range)  # lo_q: lowest rate
        cache: dict[float, bytes] = {}

        def enc(q: float) -> bytes:
            if q not in cache:
                cache[q] = self.encode(img, q)
            return cache[q]

        def bpp(q: float) -> float:
            return bpp_of(len(enc(q)), h, w)

        if bpp(lo_q) > target_bpp:
            return enc(lo_q), lo_q
        if bpp(hi_q) <= target_bpp:
            return enc(hi_q), hi_q
        # invariant: bpp(good) <= target < bpp(bad); good is on the low-rate side
        good, bad = lo_q, hi_q
        if self.integer_quality:
            step = 1.0 if bad > good else -1.0
            while abs(bad - good) > 1.0:
                mid = float(round((good + bad) / 2.0))
                if mid in (good, bad):
                    mid = good + step
                if bpp(mid) <= target_bpp:
                    good = mid
                else:
                    bad = mid
        else:
            for _ in range(max_steps):
                mid = (good + bad) / 2.0
                if bpp(mid) <= target_bpp:
                    good = mid
                    if target_bpp - bpp(mid) <= tol_bpp:
                        break
                else:
                    bad = mid
        return enc(good), good

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
