"""H.266/VVC intra: VVenC (libvvenc in imageio-ffmpeg's FFmpeg), decoded by FFmpeg's ``vvc``."""

from __future__ import annotations

import functools
import re

from mrt.eval.baselines.ffmpeg import FFmpegIntraBaseline

__all__ = ["VVCBaseline"]


class VVCBaseline(FFmpegIntraBaseline):
    """H.266/VVC intra: VVenC through FFmpeg, raw ``.266`` Annex-B bitstream, 4:2:0 10-bit.

    All-intra configuration (``IntraPeriod=1``), no AUD / HRD. QPA (VVenC's perceptual QP
    adaptation) is off so the encoder optimises plain MSE, as the VTM reference anchors used in
    learned-compression papers do.
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
