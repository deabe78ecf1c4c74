"""JPEG 2000 through imagecodecs (OpenJPEG)."""

from __future__ import annotations

import numpy as np

from mrt.eval.baselines.base import Availability, Baseline, BaselineError, check_image

__all__ = ["JPEG2000Baseline"]


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
        return bytes(imagecodecs.jpeg2k_encode(check_image(img), level=q, codecformat="J2K",
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
