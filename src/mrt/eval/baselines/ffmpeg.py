"""FFmpeg (from imageio-ffmpeg) as the engine of the video-codec baselines (VVC, HEVC).

:class:`FFmpegIntraBaseline` codes one picture as a single intra frame: FFmpeg converts RGB to
Y'CbCr BT.709 full range 4:2:0 10-bit and back (swscale, bicubic, accurate rounding); these
codecs need even width and height and refuse other sizes with :class:`BaselineError`.
"""

from __future__ import annotations

import functools
import io
import subprocess
import tempfile
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mrt.eval.baselines.base import Availability, Baseline, BaselineError, BaselineUnavailable, check_image

__all__ = ["FFmpegIntraBaseline", "ffmpeg_exe", "ffmpeg_has", "run_ffmpeg"]

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


def ffmpeg_has(kind: str, codec: str) -> bool:
    """Whether this FFmpeg lists ``codec`` among its ``kind`` (``encoders`` / ``decoders``)."""
    return any(line.split()[1:2] == [codec] for line in _ffmpeg_list(kind).splitlines()
               if len(line.split()) > 1)


def run_ffmpeg(args: Sequence[str], stdin: bytes, what: str, out_name: str) -> tuple[bytes, str]:
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


class FFmpegIntraBaseline(Baseline):
    """Single-frame intra coding of a 4:2:0 10-bit picture through FFmpeg."""

    encoder: str = ""
    decoder: str = ""
    muxer: str = ""
    pix_fmt = "yuv420p10le"
    preset = "medium"

    def availability(self) -> Availability:
        if ffmpeg_exe() is None:
            return Availability(False, "imageio-ffmpeg is not installed")
        if not ffmpeg_has("encoders", self.encoder):
            return Availability(False, f"this FFmpeg build lists no '{self.encoder}' encoder")
        if not ffmpeg_has("decoders", self.decoder):
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
        img = check_image(img)
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
        return run_ffmpeg(args, img.tobytes(), f"{self.name} encode", "out" + self.file_ext)

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
        out, _ = run_ffmpeg(args, bytes(data), f"{self.name} decode", "out.png")
        return _decode_png(out)
