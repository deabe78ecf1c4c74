"""Classical baselines: real bytes, round trips, availability, bisection on the quality knob."""

from __future__ import annotations

import numpy as np
import pytest

from mrt.eval.baselines import (
    Availability,
    Baseline,
    BaselineError,
    BaselineUnavailable,
    all_baselines,
    bpp_of,
    get_baseline,
)


def _synthetic(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus an edge and some texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255.0 / w, yy * 255.0 / h, 128 + 60 * np.sin(xx / 5.0)], axis=-1)
    img[h // 3 : 2 * h // 3, w // 4 : w // 2] = (220, 40, 40)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


MAGIC = {
    "jpeg": lambda d: d[:2] == b"\xff\xd8",
    "webp": lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP",
    "avif": lambda d: d[4:8] == b"ftyp",
    "heic": lambda d: d[4:8] == b"ftyp",
    "jpeg2000": lambda d: d[:4] == b"\xff\x4f\xff\x51",
    "vvc": lambda d: d[:4] == b"\x00\x00\x00\x01" or d[:3] == b"\x00\x00\x01",
    "hevc": lambda d: d[:4] == b"\x00\x00\x00\x01" or d[:3] == b"\x00\x00\x01",
}


@pytest.mark.parametrize("name", [b.name for b in all_baselines()])
def test_round_trip_real_bytes(name: str) -> None:
    b = get_baseline(name)
    av = b.availability()
    if not av.ok:
        pytest.skip(f"{name} unavailable: {av.reason}")
    img = _synthetic()
    lo_q, hi_q = b.quality_range
    hi_bytes = b.encode(img, hi_q)  # highest-rate end
    lo_bytes = b.encode(img, lo_q)  # lowest-rate end
    assert isinstance(hi_bytes, bytes) and len(hi_bytes) > 0
    assert MAGIC[name](hi_bytes), f"{name}: not a real {b.file_ext} file: {hi_bytes[:12]!r}"
    assert len(lo_bytes) < len(hi_bytes)
    # nothing but the bitstream (libvvenc prints warnings on stdout; they must not leak in)
    assert b"warning" not in hi_bytes.lower() and b"warning" not in lo_bytes.lower()
    out = b.decode(hi_bytes)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert _psnr(img, out) > 25.0
    assert b.decode(lo_bytes).shape == img.shape
    assert b.encoder_version()
    assert b.quality_label(hi_q)


def test_registry_and_aliases() -> None:
    assert get_baseline("h266").name == "vvc"
    assert get_baseline("X265").name == "hevc"
    assert get_baseline("j2k").name == "jpeg2000"
    with pytest.raises(BaselineError, match="unknown baseline"):
        get_baseline("nope")


def test_vvc_refuses_odd_sizes_clearly() -> None:
    b = get_baseline("vvc")
    if not b.availability().ok:
        pytest.skip("vvc unavailable")
    with pytest.raises(BaselineError, match="even width and height"):
        b.encode(_synthetic(17, 33), 40)


def test_bad_input_image() -> None:
    with pytest.raises(BaselineError, match="8-bit RGB image"):
        get_baseline("jpeg").encode(np.zeros((8, 8), np.uint8), 50)


class _Missing(Baseline):
    name = "missing"

    def availability(self) -> Availability:
        return Availability(False, "libmissing is not installed")

    def encoder_version(self) -> str:
        return "none"

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        self.require()
        return b""

    def decode(self, data: bytes) -> np.ndarray:
        raise AssertionError


def test_unavailable_codec_says_why() -> None:
    with pytest.raises(BaselineUnavailable, match="libmissing is not installed"):
        _Missing().encode(_synthetic(), 1)


class _Synthetic(Baseline):
    """A monotone fake: the file length grows with the quality knob (decreasing for QP-like)."""

    name = "fake"
    file_ext = ".bin"

    def __init__(self, qp_like: bool, integer: bool) -> None:
        self.quality_range = (50.0, 0.0) if qp_like else (0.0, 50.0)
        self.integer_quality = integer
        self.calls = 0

    def availability(self) -> Availability:
        return Availability(True)

    def encoder_version(self) -> str:
        return "1"

    def _rate(self, q: float) -> float:
        return (50.0 - q) if self.quality_range[0] > self.quality_range[1] else q

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        self.calls += 1
        q = self.clamp_quality(quality)
        return bytes(10 + int(round(self._rate(q) * 20)))

    def decode(self, data: bytes) -> np.ndarray:
        return np.zeros((48, 64, 3), np.uint8)


@pytest.mark.parametrize("qp_like", [False, True])
def test_bisection_integer_knob(qp_like: bool) -> None:
    img = _synthetic()
    b = _Synthetic(qp_like=qp_like, integer=True)
    target_bytes = 10 + 20 * 17 + 5  # between the rates of knob 17 and 18 (rate units)
    target = bpp_of(target_bytes, 48, 64)
    data, q = b.encode_at_bpp(img, target)
    assert bpp_of(len(data), 48, 64) <= target
    assert b._rate(q) == 17  # the closest setting not above the target
    assert b.calls <= 10  # bisection, not a scan


def test_bisection_real_knob_and_limits() -> None:
    img = _synthetic()
    b = _Synthetic(qp_like=False, integer=False)
    target = bpp_of(10 + 20 * 17.3, 48, 64)
    data, q = b.encode_at_bpp(img, target)
    assert bpp_of(len(data), 48, 64) <= target
    assert 17.2 < q <= 17.3
    # below the lowest rate: the lowest-rate setting; above the highest: the highest
    data, q = b.encode_at_bpp(img, 1e-6)
    assert q == 0.0
    data, q = b.encode_at_bpp(img, 1e3)
    assert q == 50.0
    with pytest.raises(BaselineError):
        b.encode_at_bpp(img, -1.0)


def test_bisection_hits_target_with_a_real_codec() -> None:
    b = get_baseline("webp")
    if not b.availability().ok:
        pytest.skip("webp unavailable")
    img = _synthetic(96, 128)
    lo = bpp_of(len(b.encode(img, 0)), 96, 128)
    hi = bpp_of(len(b.encode(img, 100)), 96, 128)
    target = (lo + hi) / 4
    data, q = b.encode_at_bpp(img, target)
    got = bpp_of(len(data), 96, 128)
    assert got <= target
    assert bpp_of(len(b.encode(img, q + 1)), 96, 128) > target or q == 100

