"""AVIF still images through Pillow (libavif with libaom)."""

from __future__ import annotations

from mrt.eval.baselines.base import Availability
from mrt.eval.baselines.pil import PillowBaseline, pil_feature

__all__ = ["AVIFBaseline"]


class AVIFBaseline(PillowBaseline):
    """AVIF still image through Pillow (libavif with libaom), 4:2:0 8-bit, full range."""

    name = "avif"
    description = "AVIF (Pillow/libavif + libaom, 4:2:0, speed 4)"
    file_ext = ".avif"
    quality_range = (0.0, 100.0)
    default_qualities = (0, 3, 6, 10, 15)
    pil_format, feature, feature_label = "AVIF", "avif", "AVIF"

    def __init__(self, speed: int = 4) -> None:
        self.speed = speed

    def availability(self) -> Availability:
        av = super().availability()
        if not av.ok:
            return av
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
        return f"Pillow {pil_version} / libavif {pil_feature('avif')[1]} / aom {aom}"

    def settings_id(self) -> str:
        return f"speed={self.speed};4:2:0;codec=aom;range=full"

    def save_options(self) -> dict[str, object]:
        return {"speed": self.speed, "subsampling": "4:2:0", "codec": "aom", "max_threads": 1,
                "range": "full"}
