"""Baseline JPEG through Pillow (libjpeg-turbo)."""

from __future__ import annotations

from mrt.eval.baselines.pil import PillowBaseline

__all__ = ["JPEGBaseline"]


class JPEGBaseline(PillowBaseline):
    """Baseline JPEG through Pillow (libjpeg-turbo), 4:2:0, optimised Huffman tables."""

    name = "jpeg"
    description = "JPEG (Pillow/libjpeg-turbo, 4:2:0, optimize)"
    file_ext = ".jpg"
    quality_range = (1.0, 95.0)
    default_qualities = (1, 2, 3, 5, 8)
    pil_format, feature, feature_label = "JPEG", "jpg", "JPEG"

    def encoder_version(self) -> str:
        from PIL import __version__ as pil_version  # noqa: PLC0415
        from PIL import features  # noqa: PLC0415

        turbo = features.version("libjpeg_turbo") if features.check("libjpeg_turbo") else None
        lib = f"libjpeg-turbo {turbo}" if turbo else f"libjpeg {features.version('jpg')}"
        return f"Pillow {pil_version} / {lib}"

    def settings_id(self) -> str:
        return "subsampling=4:2:0;optimize"

    def save_options(self) -> dict[str, object]:
        return {"subsampling": 2, "optimize": True}
