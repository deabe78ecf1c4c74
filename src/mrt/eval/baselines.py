"""Classical image codecs behind one interface, for rate-distortion baselines.

Every baseline turns an RGB ``uint8`` image ``(H, W, 3)`` into the bytes of a real file (the
exact bytes a user would store, container included where the format has one) and back.

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

Colour for ``vvc``/``hevc``: FFmpeg itself converts RGB -> Y'CbCr BT.709 full range 4:2:0
(10-bit) and back (swscale, bicubic, accurate rounding); those two codecs need even width and
height (4:2:0) and refuse other sizes with :class:`BaselineError`.

A codec whose library or encoder is missing reports it through :meth:`Baseline.availability`
(``ok=False`` plus a reason) instead of failing at import time.
"""

from __future__ import annotations

import functools
import io
import math
import re
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrt.errors import MRTError

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
    "bpp_of",
    "get_baseline",
]


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


def _check_image(img: np.ndarray) -> np.ndarray:
    """Validate an RGB uint8 ``(H, W, 3)`` image and return it C-contiguous."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise BaselineError(
            f"expected an RGB uint8 image of shape (H, W, 3), got "
            f"{getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')}"
        )
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise BaselineError(f"empty image {img.shape}")
    return np.ascontiguousarray(img)


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
        img = _check_image(img)
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


# ---------------------------------------------------------------------------------------------
# FFmpeg-driven codecs (VVC via VVenC, HEVC via x265)
# ---------------------------------------------------------------------------------------------

_FFMPEG_TIMEOUT_S = 600.0
_COLOR_ARGS = ["-color_range", "pc", "-colorspace", "bt709", "-color_primaries", "bt709",
               "-color_trc", "iec61966-2-1"]
_SWS_FLAGS = "bicubic+accurate_rnd+full_chroma_int"


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str | None:
    """Path of the FFmpeg binary shipped with imageio-ffmpeg, or ``None`` when absent."""
    try:
        import imageio_ffmpeg  # noqa: PLC0415 (optional dependency)

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception:  # noqa: BLE001 (any failure means "not available")
        return None


@functools.lru_cache(maxsize=4)
def _ffmpeg_list(kind: str) -> str:
    """Output of ``ffmpeg -encoders`` / ``-decoders`` (empty when FFmpeg is missing)."""
    exe = ffmpeg_exe()
    if exe is None:
        return ""
    try:
        res = subprocess.run([exe, "-hide_banner", f"-{kind}"], capture_output=True, text=True,
                             timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return res.stdout


def _ffmpeg_has(kind: str, codec: str) -> bool:
    return any(line.split()[1:2] == [codec] for line in _ffmpeg_list(kind).splitlines()
               if len(line.split()) > 1)


def _run_ffmpeg(args: Sequence[str], stdin: bytes, what: str, out_name: str) -> tuple[bytes, str]:
    """Run FFmpeg with ``args`` feeding ``stdin``; return ``(output file bytes, log)``.

    The output goes to a temporary file (``out_name`` inside a private folder), never to a
    pipe: libvvenc prints configuration warnings on stdout, which would otherwise end up
    inside the bitstream.
    """
    exe = ffmpeg_exe()
    if exe is None:
        raise BaselineUnavailable("FFmpeg (imageio-ffmpeg) is not installed")
    with tempfile.TemporaryDirectory(prefix="mrt-ffmpeg-") as tmp:
        out_path = Path(tmp) / out_name
        cmd = [exe, "-hide_banner", "-nostdin", "-y", *args, str(out_path)]
        try:
            res = subprocess.run(cmd, input=stdin, capture_output=True, timeout=_FFMPEG_TIMEOUT_S,
                                 check=False)
        except subprocess.TimeoutExpired as exc:
            raise BaselineError(f"{what}: FFmpeg timed out after {_FFMPEG_TIMEOUT_S:.0f} s") from exc
        err = res.stderr.decode("utf-8", "replace")
        data = out_path.read_bytes() if out_path.is_file() else b""
    if res.returncode != 0 or not data:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        tail = lines[-1] if lines else f"exit code {res.returncode}"
        raise BaselineError(f"{what}: FFmpeg failed: {tail}")
    return data, err


def _decode_png(data: bytes) -> np.ndarray:
    from PIL import Image  # noqa: PLC0415

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


class _FFmpegVideoIntra(Baseline):
    """Single-frame intra coding of a 4:2:0 10-bit picture through FFmpeg."""

    encoder: str = ""
    decoder: str = ""
    muxer: str = ""
    pix_fmt = "yuv420p10le"
    preset = "medium"

    def availability(self) -> Availability:
        if ffmpeg_exe() is None:
            return Availability(False, "imageio-ffmpeg is not installed")
        if not _ffmpeg_has("encoders", self.encoder):
            return Availability(False, f"this FFmpeg build lists no '{self.encoder}' encoder")
        if not _ffmpeg_has("decoders", self.decoder):
            return Availability(False, f"this FFmpeg build lists no '{self.decoder}' decoder")
        return Availability(True)

    def quality_label(self, quality: float) -> str:
        return f"qp={int(round(quality))}"

    @abstractmethod
    def _codec_args(self, qp: int) -> list[str]:
        """Encoder-specific FFmpeg output options."""

    def _version_probe(self) -> str:
        """Encode a tiny picture and read the encoder's version line from FFmpeg's log."""
        self.require()
        img = np.full((64, 64, 3), 128, np.uint8)
        _, log = self._encode_raw(img, int(self.quality_range[0]), loglevel="info")
        return self._parse_version(log)

    @abstractmethod
    def _parse_version(self, log: str) -> str:
        """Pull the encoder version out of an FFmpeg log."""

    def _encode_raw(self, img: np.ndarray, qp: int, loglevel: str = "error") -> tuple[bytes, str]:
        img = _check_image(img)
        h, w = img.shape[:2]
        if h % 2 or w % 2:
            raise BaselineError(f"{self.name}: 4:2:0 coding needs even width and height, got {w}x{h}")
        self.require()
        vf = (f"scale=out_color_matrix=bt709:out_range=full:flags={_SWS_FLAGS},"
              f"format={self.pix_fmt}")
        args = ["-loglevel", loglevel,
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "pipe:0",
                "-vf", vf, "-frames:v", "1", *_COLOR_ARGS,
                "-c:v", self.encoder, *self._codec_args(qp), "-threads", "1",
                "-f", self.muxer]
        return _run_ffmpeg(args, img.tobytes(), f"{self.name} encode", "out" + self.file_ext)

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        qp = int(round(self.clamp_quality(quality)))
        return self._encode_raw(img, qp)[0]

    def decode(self, data: bytes) -> np.ndarray:
        if not data:
            raise BaselineError(f"{self.name}: empty bitstream")
        vf = f"scale=in_color_matrix=bt709:in_range=full:flags={_SWS_FLAGS},format=rgb24"
        args = ["-loglevel", "error", "-threads", "1", "-f", self.muxer, "-c:v", self.decoder,
                "-i", "pipe:0", "-frames:v", "1", "-vf", vf, "-c:v", "png", "-f", "image2",
                "-update", "1"]
        out, _ = _run_ffmpeg(args, bytes(data), f"{self.name} decode", "out.png")
        return _decode_png(out)


class VVCBaseline(_FFmpegVideoIntra):
    """H.266/VVC intra: VVenC through FFmpeg, raw ``.266`` Annex-B bitstream, 4:2:0 10-bit.

    All-intra configuration (``IntraPeriod=1``), no AUD / HRD. QPA (VVenC's perceptual QP adaptation) is off so the encoder optimises plain MSE, as the
    VTM reference anchors used in learned-compression papers do.
    """

    name = "vvc"
    description = "VVC all-intra (VVenC, preset medium, 4:2:0 10-bit, QPA off, raw .266)"
    file_ext = ".266"
    encoder = "libvvenc"
    decoder = "vvc"
    muxer = "vvc"
    quality_range = (63.0, 20.0)
    default_qualities = (63, 62, 61, 60, 58, 56, 54, 52, 50, 48, 46, 44)

    def __init__(self, preset: str = "medium", qpa: bool = False) -> None:
        self.preset = preset
        self.qpa = qpa

    #: all-intra configuration (as VTM's encoder_intra): no GOP reference-picture lists in the
    #: SPS, no access-unit delimiter, no HRD; ~130 bytes less per file than FFmpeg's defaults
    vvenc_params = "IntraPeriod=1:AccessUnitDelimiter=0:HrdParametersPresent=0"

    def _codec_args(self, qp: int) -> list[str]:
        return ["-preset", self.preset, "-qp", str(qp), "-qpa", "1" if self.qpa else "0",
                "-vvenc-params", self.vvenc_params]

    def settings_id(self) -> str:
        return f"preset={self.preset};qpa={int(self.qpa)};yuv420p10le;bt709-full;{self.vvenc_params}"

    def _parse_version(self, log: str) -> str:
        m = re.search(r"libvvenc version:\s*(\S+)", log)
        return f"vvenc {m.group(1)}" if m else "vvenc (unknown version)"

    @functools.cache  # noqa: B019 (one probe per instance is intended)
    def encoder_version(self) -> str:
        return self._version_probe()


class HEVCBaseline(_FFmpegVideoIntra):
    """H.265/HEVC intra: x265 through FFmpeg, raw ``.265`` Annex-B bitstream, Main 10 4:2:0."""

    name = "hevc"
    description = "HEVC intra (x265, preset medium, 4:2:0 10-bit, raw .265)"
    file_ext = ".265"
    encoder = "libx265"
    decoder = "hevc"
    muxer = "hevc"
    quality_range = (51.0, 20.0)
    default_qualities = (51, 49, 47, 45)

    def __init__(self, preset: str = "medium") -> None:
        self.preset = preset

    def _codec_args(self, qp: int) -> list[str]:
        params = "log-level=error:keyint=1:info=0"  # info=0: no SEI with the encoder's settings
        return ["-preset", self.preset, "-qp", str(qp), "-x265-params", params]

    def settings_id(self) -> str:
        return f"preset={self.preset};yuv420p10le;bt709-full;info=0"

    def _parse_version(self, log: str) -> str:
        m = re.search(r"HEVC encoder version\s*(\S+)", log)
        return f"x265 {m.group(1)}" if m else "x265 (unknown version)"

    def _version_probe(self) -> str:
        self.require()
        exe = ffmpeg_exe()
        assert exe is not None
        # x265 prints its version at log level "info" only when its own log-level allows it
        img = np.full((64, 64, 3), 128, np.uint8)
        args = ["-loglevel", "info", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x64",
                "-i", "pipe:0", "-frames:v", "1", "-pix_fmt", self.pix_fmt, "-c:v", self.encoder,
                "-qp", "40", "-threads", "1", "-f", self.muxer]
        _, log = _run_ffmpeg(args, img.tobytes(), "x265 version probe", "probe.265")
        return self._parse_version(log)

    @functools.cache  # noqa: B019
    def encoder_version(self) -> str:
        return self._version_probe()


# ---------------------------------------------------------------------------------------------
# Library-driven codecs
# ---------------------------------------------------------------------------------------------


def _pil_save(img: np.ndarray, fmt: str, **kwargs: object) -> bytes:
    from PIL import Image  # noqa: PLC0415

    buf = io.BytesIO()
    Image.fromarray(_check_image(img), "RGB").save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _pil_load(data: bytes, what: str) -> np.ndarray:
    from PIL import Image  # noqa: PLC0415

    if not data:
        raise BaselineError(f"{what}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError) as exc:
        raise BaselineError(f"{what}: cannot decode ({exc})") from exc


def _pil_feature(name: str) -> tuple[bool, str]:
    try:
        from PIL import features  # noqa: PLC0415

        ok = bool(features.check(name))
        return ok, (features.version(name) or "") if ok else ""
    except Exception:  # noqa: BLE001
        return False, ""


class JPEGBaseline(Baseline):
    """Baseline JPEG through Pillow (libjpeg-turbo), 4:2:0, optimised Huffman tables."""

    name = "jpeg"
    description = "JPEG (Pillow/libjpeg-turbo, 4:2:0, optimize)"
    file_ext = ".jpg"
    quality_range = (1.0, 95.0)
    default_qualities = (1, 2, 3, 5, 8)

    def availability(self) -> Availability:
        ok, _ = _pil_feature("jpg")
        return Availability(ok, "" if ok else "Pillow was built without JPEG support")

    def encoder_version(self) -> str:
        from PIL import __version__ as pil_version  # noqa: PLC0415
        from PIL import features  # noqa: PLC0415

        turbo = features.version("libjpeg_turbo") if features.check("libjpeg_turbo") else None
        lib = f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}"
        return f"Pillow {pil_version} / {lib}"

    def settings_id(self) -> str:
        return "subsampling=4:2:0;optimize"

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        self.require()
        q = int(round(self.clamp_quality(quality)))
        return _pil_save(img, "JPEG", quality=q, subsampling=2, optimize=True)

    def decode(self, data: bytes) -> np.ndarray:
        return _pil_load(data, "jpeg")


class WebPBaseline(Baseline):
    """Lossy WebP through Pillow (libwebp), slowest/best method 6."""

    name = "webp"
    description = "WebP lossy (Pillow/libwebp, method 6)"
    file_ext = ".webp"
    quality_range = (0.0, 100.0)
    default_qualities = (0, 3, 6, 10)

    def availability(self) -> Availability:
        ok, _ = _pil_feature("webp")
        return Availability(ok, "" if ok else "Pillow was built without WebP support")

    def encoder_version(self) -> str:
        from PIL import __version__ as pil_version  # noqa: PLC0415

        return f"Pillow {pil_version} / libwebp {_pil_feature('webp')[1]}"

    def settings_id(self) -> str:
        return "method=6"

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        self.require()
        q = int(round(self.clamp_quality(quality)))
        return _pil_save(img, "WEBP", quality=q, method=6, lossless=False, exact=False)

    def decode(self, data: bytes) -> np.ndarray:
        return _pil_load(data, "webp")


class AVIFBaseline(Baseline):
    """AVIF still image through Pillow (libavif with libaom), 4:2:0 8-bit, full range."""

    name = "avif"
    description = "AVIF (Pillow/libavif + libaom, 4:2:0, speed 4)"
    file_ext = ".avif"
    quality_range = (0.0, 100.0)
    default_qualities = (0, 3, 6, 10, 15)

    def __init__(self, speed: int = 4) -> None:
        self.speed = speed

    def availability(self) -> Availability:
        ok, _ = _pil_feature("avif")
        if not ok:
            return Availability(False, "Pillow was built without AVIF support")
        try:
            from PIL.AvifImagePlugin import _avif  # noqa: PLC0415

            if not _avif.encoder_codec_available("aom"):
                return Availability(False, "libavif has no aom encoder")
        except Exception as exc:  # noqa: BLE001
            return Availability(False, f"Pillow AVIF plugin unusable ({exc})")
        return Availability(True)

    def encoder_version(self) -> str:
        from PIL import __version__ as pil_version  # noqa: PLC0415
        from PIL import AvifImagePlugin  # noqa: PLC0415

        aom = AvifImagePlugin.get_codec_version("aom")
        return f"Pillow {pil_version} / libavif {_pil_feature('avif')[1]} / aom {aom}"

    def settings_id(self) -> str:
        return f"speed={self.speed};4:2:0;codec=aom;range=full"

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        self.require()
        q = int(round(self.clamp_quality(quality)))
        return _pil_save(img, "AVIF", quality=q, speed=self.speed, subsampling="4:2:0",
                         codec="aom", max_threads=1, range="full")

    def decode(self, data: bytes) -> np.ndarray:
        return _pil_load(data, "avif")


class HEICBaseline(Baseline):
    """HEIF/HEIC still image through pillow-heif (libheif with x265), 4:2:0."""

    name = "heic"
    description = "HEIC (pillow-heif/libheif + x265, 4:2:0)"
    file_ext = ".heic"
    quality_range = (0.0, 100.0)
    default_qualities = (0, 2, 5, 10, 15)

    def availability(self) -> Availability:
        try:
            import pillow_heif  # noqa: PLC0415

            info = pillow_heif.libheif_info()
        except Exception as exc:  # noqa: BLE001
            return Availability(False, f"pillow-heif is not installed ({exc})")
        if not info.get("HEIF"):
            return Availability(False, "libheif has no HEVC encoder")
        return Availability(True)

    def encoder_version(self) -> str:
        import pillow_heif  # noqa: PLC0415

        info = pillow_heif.libheif_info()
        return f"pillow-heif {pillow_heif.__version__} / libheif {info.get('libheif')} / {info.get('HEIF')}"

    def settings_id(self) -> str:
        return "chroma=420"

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        self.require()
        import pillow_heif  # noqa: PLC0415

        img = _check_image(img)
        q = int(round(self.clamp_quality(quality)))
        heif = pillow_heif.from_bytes(mode="RGB", size=(img.shape[1], img.shape[0]), data=img.tobytes())
        buf = io.BytesIO()
        heif.save(buf, quality=q, chroma=420, save_nclx_profile=True)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        import pillow_heif  # noqa: PLC0415

        if not data:
            raise BaselineError("heic: empty file")
        try:
            heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
            im = heif.to_pillow()
        except Exception as exc:  # noqa: BLE001
            raise BaselineError(f"heic: cannot decode ({exc})") from exc
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


class JPEG2000Baseline(Baseline):
    """JPEG 2000 through imagecodecs (OpenJPEG): raw ``.j2k`` codestream, one quality layer.

    The knob is OpenJPEG's fixed-quality target (PSNR in dB of the single layer), a real
    number, so :meth:`encode_at_bpp` bisects it continuously. Lossy 9/7 wavelet with the
    colour transform (``mct``).
    """

    name = "jpeg2000"
    description = "JPEG 2000 (imagecodecs/OpenJPEG, 9/7 irreversible, PSNR-target layer, raw .j2k)"
    file_ext = ".j2k"
    quality_range = (16.0, 40.0)
    integer_quality = False
    default_qualities = (17.0, 17.5, 18.0, 18.5, 19.0, 19.5, 20.0, 20.5, 21.0, 22.0, 23.0, 24.0)

    def availability(self) -> Availability:
        try:
            import imagecodecs  # noqa: PLC0415

            if not imagecodecs.JPEG2K.available:
                return Availability(False, "imagecodecs was built without JPEG 2000")
        except Exception as exc:  # noqa: BLE001
            return Availability(False, f"imagecodecs is not installed ({exc})")
        return Availability(True)

    def encoder_version(self) -> str:
        import imagecodecs  # noqa: PLC0415

        return f"imagecodecs {imagecodecs.__version__} / {imagecodecs.jpeg2k_version()}"

    def settings_id(self) -> str:
        return "codecformat=J2K;irreversible;mct"

    def quality_label(self, quality: float) -> str:
        return f"psnr_target={quality:.4g}"

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        self.require()
        import imagecodecs  # noqa: PLC0415

        q = self.clamp_quality(quality)
        return bytes(imagecodecs.jpeg2k_encode(_check_image(img), level=q, codecformat="J2K",
                                               reversible=False, mct=True, numthreads=1))

    def decode(self, data: bytes) -> np.ndarray:
        import imagecodecs  # noqa: PLC0415

        if not data:
            raise BaselineError("jpeg2000: empty codestream")
        try:
            out = np.asarray(imagecodecs.jpeg2k_decode(bytes(data), numthreads=1))
        except Exception as exc:  # noqa: BLE001
            raise BaselineError(f"jpeg2000: cannot decode ({exc})") from exc
        if out.ndim == 2:
            out = np.repeat(out[:, :, None], 3, axis=2)
        return np.ascontiguousarray(out[:, :, :3].astype(np.uint8))


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
