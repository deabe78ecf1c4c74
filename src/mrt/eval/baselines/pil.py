"""Pillow as the engine of the JPEG, WebP and AVIF baselines."""

from __future__ import annotations

import io

import numpy as np

from mrt.eval.baselines.base import Availability, Baseline, BaselineError, check_image

__all__ = ["PillowBaseline", "pil_feature", "pil_load", "pil_save"]


def pil_save(img: np.ndarray, fmt: str, **kwargs: object) -> bytes:
    """The bytes of ``img`` saved by Pillow in format ``fmt`` with the writer's ``kwargs``."""
    from PIL import Image  # noqa: PLC0415

    buf = io.BytesIO()
    Image.fromarray(check_image(img), "RGB").save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def pil_load(data: bytes, what: str) -> np.ndarray:
    """Decode file bytes with Pillow to RGB uint8 ``(H, W, 3)``."""
    from PIL import Image  # noqa: PLC0415

    if not data:
        raise BaselineError(f"{what}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError) as exc:
        raise BaselineError(f"{what}: cannot decode ({exc})") from exc


def pil_feature(name: str) -> tuple[bool, str]:
    """Whether Pillow was built with feature ``name``, and the library's version."""
    try:
        from PIL import features  # noqa: PLC0415

        ok = bool(features.check(name))
        return ok, (features.version(name) or "") if ok else ""
    except Exception:  # noqa: BLE001
        return False, ""


class PillowBaseline(Baseline):
    """A format Pillow writes and reads, with an integer ``quality`` knob.

    Subclasses name the Pillow format (``pil_format``), the ``PIL.features`` entry that says
    whether this Pillow has it (``feature``, ``feature_label`` for the message) and the
    writer's fixed options (:meth:`save_options`).
    """

    pil_format: str = ""
    feature: str = ""
    feature_label: str = ""

    def availability(self) -> Availability:
        ok, _ = pil_feature(self.feature)
        return Availability(ok, "" if ok else f"Pillow was built without {self.feature_label} support")

    def save_options(self) -> dict[str, object]:
        """Writer options besides ``quality``."""
        return {}

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        self.require()
        q = int(round(self.clamp_quality(quality)))
        return pil_save(img, self.pil_format, quality=q, **self.save_options())

    def decode(self, data: bytes) -> np.ndarray:
        return pil_load(data, self.name)
