"""H.265/HEVC intra: x265 (libx265 in imageio-ffmpeg's FFmpeg), decoded by FFmpeg's ``hevc``."""

from __future__ import annotations

import functools
import re

import numpy as np

from mrt.eval.baselines.ffmpeg import FFmpegIntraBaseline, run_ffmpeg

__all__ = ["HEVCBaseline"]


class HEVCBaseline(FFmpegIntraBaseline):
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
        # x265 prints its version at log level "info" only when its own log-level allows it
        img = np.full((64, 64, 3), 128, np.uint8)
        args = ["-loglevel", "info", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "64x64",
                "-i", "pipe:0", "-frames:v", "1", "-pix_fmt", self.pix_fmt, "-c:v", self.encoder,
                "-qp", "40", "-threads", "1", "-f", self.muxer]
        _, log = run_ffmpeg(args, img.tobytes(), "x265 version probe", "probe.265")
        return self._parse_version(log)

    @functools.cache  # noqa: B019
    def encoder_version(self) -> str:
        return self._version_probe()
