"""Lossy WebP through Pillow (libwebp)."""

from __future__ import annotations

from mrt.eval.baselines.pil import PillowBaseline, pil_feature

__all__ = ["WebPBaseline"]


class WebPBaseline(PillowBaseline):
    """Lossy WebP through Pillow (libwebp), slowest/best method 6."""

    name = "webp"
    description = "WebP lossy (Pillow/libwebp, method 6)"
    file_ext = ".webp"
    quality_range = (0.0, 100.0)
    default_qualities = (0, 3, 6, 10)
    pil_format, feature, feature_label = "WEBP", "webp", "WebP"

    def encoder_version(self) -> str:
        from PIL import __version__ as pil_version  # noqa: PLC0415

        return f"Pillow {pil_version} / libwebp {pil_feature('webp')[1]}"

    def settings_id(self) -> str:
        return "method=6"

    def save_options(self) -> dict[str, object]:
        return {"method": 6, "lossless": False, "exact": False}
