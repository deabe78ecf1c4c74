"""HEIF/HEIC still images through pillow-heif (libheif with x265)."""

from __future__ import annotations

import io

import numpy as np

from mrt.eval.baselines.base import Availability, Baseline, BaselineError, check_image

__all__ = ["HEICBaseline"]


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

        img = check_image(img)
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
