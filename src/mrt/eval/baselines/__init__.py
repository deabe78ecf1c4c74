"""Classical image codecs behind one interface (:class:`Baseline`), for rate-distortion baselines.

Every baseline turns an RGB ``uint8`` image ``(H, W, 3)`` into the bytes of a real file (the
exact bytes a user would store, container included where the format has one) and back.
One module per codec; :mod:`.base` has the interface, :mod:`.ffmpeg` and :mod:`.pil` the
engines they share.

=========  ===============================================  ===============================
name       encoder / decoder                                 quality knob (low -> high rate)
=========  ===============================================  ===============================
vvc        VVenC (libvvenc in imageio-ffmpeg's FFmpeg),      QP 63 -> 20, preset medium,
           raw Annex-B ``.266``, decoded by FFmpeg's          4:2:0 10-bit, QPA off
           native ``vvc`` decoder
hevc       x265 (libx265 in the same FFmpeg), raw Annex-B    QP 51 -> 20, preset medium,
           ``.265``, decoded by FFmpeg's ``hevc`` decoder     4:2:0 10-bit (Main 10)
heic       pillow-heif (libheif + x265), ``.heic`` file      quality 0 -> 100
avif       Pillow AVIF (libavif + libaom), ``.avif`` file    quality 0 -> 100, speed 4
jpeg2000   imagecodecs ``jpeg2k`` (OpenJPEG), raw ``.j2k``   target PSNR (dB) 16 -> 40
           codestream, irreversible 9/7 wavelet
webp       Pillow (libwebp), ``.webp``                       quality 0 -> 100, method 6
jpeg       Pillow (libjpeg-turbo), ``.jpg`` 4:2:0            quality 1 -> 95
=========  ===============================================  ===============================

A codec whose library or encoder is missing reports it through :meth:`Baseline.availability`
(``ok=False`` plus a reason) instead of failing at import time.
"""

from __future__ import annotations

from collections.abc import Callable

from mrt.eval.baselines.avif import AVIFBaseline
from mrt.eval.baselines.base import Availability, Baseline, BaselineError, BaselineUnavailable, bpp_of
from mrt.eval.baselines.heic import HEICBaseline
from mrt.eval.baselines.hevc import HEVCBaseline
from mrt.eval.baselines.jpeg import JPEGBaseline
from mrt.eval.baselines.jpeg2000 import JPEG2000Baseline
from mrt.eval.baselines.vvc import VVCBaseline
from mrt.eval.baselines.webp import WebPBaseline

__all__ = [
    "AVIFBaseline",
    "Availability",
    "Baseline",
    "BaselineError",
    "BaselineUnavailable",
    "HEICBaseline",
    "HEVCBaseline",
    "JPEG2000Baseline",
    "JPEGBaseline",
    "VVCBaseline",
    "WebPBaseline",
    "all_baselines",
    "baseline_names",
    "bpp_of",
    "get_baseline",
]

_REGISTRY: dict[str, Callable[[], Baseline]] = {
    "vvc": VVCBaseline,
    "hevc": HEVCBaseline,
    "avif": AVIFBaseline,
    "jpeg2000": JPEG2000Baseline,
    "webp": WebPBaseline,
    "jpeg": JPEGBaseline,
    "heic": HEICBaseline,
}
_ALIASES = {"h266": "vvc", "vtm": "vvc", "vvenc": "vvc", "h265": "hevc", "x265": "hevc",
            "av1": "avif", "j2k": "jpeg2000", "jp2": "jpeg2000", "jpeg-2000": "jpeg2000",
            "jpg": "jpeg", "heif": "heic"}


def baseline_names() -> list[str]:
    """Names of every baseline known here (available or not)."""
    return list(_REGISTRY)


def get_baseline(name: str) -> Baseline:
    """Instantiate a baseline by name (aliases such as ``h266``, ``x265``, ``j2k`` accepted)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise BaselineError(f"unknown baseline codec {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[key]()


def all_baselines() -> list[Baseline]:
    """One instance of every known baseline."""
    return [factory() for factory in _REGISTRY.values()]
