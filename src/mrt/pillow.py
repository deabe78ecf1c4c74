"""Pillow plugin: ``import mrt.pillow`` and ``PIL.Image.open("photo.mrt")`` decodes MRT files.

    import mrt.pillow                       # registers the "MRT" format with Pillow
    from PIL import Image
    im = Image.open("photo.mrt")            # header only: size, mode "RGB", .info fields
    im.load()                               # decodes (loads torch and the model named in the file)
    im.save("copy.mrt", max_bytes=600)      # writes a file with the default (or model=...) model

Pillow has no entry point for third-party plugins (a format is registered by importing its
module, as pillow-heif and pillow-avif-plugin do), so this module registers the format when it
is imported; that is its one import-time effect, and :func:`register` repeats it harmlessly.

Lazy by design: importing this module and opening a file read the header with
:mod:`mrt.bitstream` (no torch); the model is loaded and the file decoded only when pixel data
is needed (``load()``, which ``convert``, ``np.asarray`` and friends call). The model's name is
known once the model is loaded, so ``.info["model"]`` appears after ``load()``; before that
``.info["model_id"]`` identifies it.

Errors: a file that does not start with the MRT magic bytes is left to the other formats
(Pillow's ``UnidentifiedImageError`` if none claims it). An MRT file whose header is unusable
raises :class:`MRTOpenError` (an ``UnidentifiedImageError`` and a ``BitstreamError``) with the
reason; one whose payload is corrupt raises :class:`MRTDecodeError` (an ``OSError``, what
Pillow raises for broken data) on ``load()``.
"""

from __future__ import annotations

import functools
import io
import os
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from mrt.bitstream import MAGIC, Container, unpack
from mrt.errors import BitstreamError, ModelError

if TYPE_CHECKING:
    from mrt.codec import Codec

__all__ = ["FORMAT", "MIME_TYPE", "MRTDecodeError", "MRTImageFile", "MRTModelError", "MRTOpenError", "register"]

FORMAT = "MRT"
MIME_TYPE = "image/x-mrt"
EXTENSION = ".mrt"
#: the options of ``Image.save(..., format="MRT", **options)`` that reach ``Codec.compress``
_COMPRESS_OPTIONS = ("max_bytes", "bpp")


class MRTOpenError(BitstreamError, UnidentifiedImageError):
    """An MRT file (right magic bytes) whose header is unusable: truncated, unknown version, ..."""


class MRTDecodeError(BitstreamError, OSError):
    """An MRT file whose payload does not decode (corrupt or truncated: checksum mismatch)."""


class MRTModelError(ModelError, OSError):
    """The model an MRT file names is not installed (or cannot be loaded)."""


def _accept(prefix: bytes) -> bool:
    """Pillow's quick check on the first bytes: the two MRT magic bytes."""
    return prefix[: len(MAGIC)] == MAGIC


def _header_info(c: Container, file_size: int) -> dict[str, Any]:
    """The ``.info`` fields known from the header alone (no torch)."""
    info: dict[str, Any] = {
        "mrt_version": c.version,
        "model_id": c.model_id,
        "model_id_hex": f"0x{c.model_id:06x}",
        "width": c.width,
        "height": c.height,
        "file_size": file_size,
        "payload_bytes": len(c.payload),
        "bpp": 8.0 * file_size / (c.width * c.height),
    }
    if c.k is not None:  # version 2 records the tokens per window; in version 1 the model implies them
        info["n_tokens"] = c.k
    if c.scale_code:  # version 3: a downscaled copy was coded (height, width of the coded image)
        info["coded_size"] = c.coded_size
    return info


class MRTImageFile(ImageFile.ImageFile):
    """An opened ``.mrt`` file: the header parsed at open, the pixels decoded in :meth:`load`."""

    format = FORMAT
    format_description = "MRT learned extreme-rate image"

    def _open(self) -> None:
        assert self.fp is not None
        data = self.fp.read()  # MRT files are small: header + payload, read whole
        try:
            container = unpack(data)
        except BitstreamError as err:
            raise MRTOpenError(f"cannot open {self._name()}: {err}") from None
        self._mrt_data: bytes | None = data
        self._size = (container.width, container.height)
        self._mode = "RGB"
        self.info.update(_header_info(container, len(data)))
        self.tile = []  # set by load() once the pixels are decoded

    def _name(self) -> str:
        name = self.filename
        if isinstance(name, bytes):
            name = os.fsdecode(name)
        return f"'{name}'" if name else "MRT stream"

    def _decode(self, data: bytes) -> np.ndarray:
        """Decode with the installed model the header names (loads torch on first use)."""
        from mrt.codec import open_for  # noqa: PLC0415 - torch only when pixels are wanted

        try:
            codec = open_for(data)
            out = codec.decompress(data)
        except BitstreamError as err:
            raise MRTDecodeError(f"cannot decode {self._name()}: {err}") from None
        except ModelError as err:
            raise MRTModelError(f"cannot decode {self._name()}: {err}") from None
        if self.info["mrt_version"] >= 2:  # the header names the model file, not a rate variant
            self.info["model"] = codec.info.path.stem
        else:
            self.info["model"] = codec.name
            self.info["n_tokens"] = codec.variant.k_code
        return out

    def load(self) -> Any:
        data = getattr(self, "_mrt_data", None)
        if data is not None:
            if self.fp is not None and self._exclusive_fp:
                self.fp.close()  # the whole file was read at open
            self.fp = None
            rgb = self._decode(data)  # uint8 [H, W, 3]; a failure leaves the image unloaded
            self._mrt_data = None
            self.fp = io.BytesIO(rgb.tobytes())
            self.tile = [("raw", (0, 0, *self.size), 0, ("RGB", 0, 1))]  # type: ignore[list-item]
        return super().load()

    def load_seek(self, pos: int) -> None:
        """The decoded pixels are a private in-memory buffer (this also keeps Pillow from mmapping the file)."""
        assert self.fp is not None
        self.fp.seek(pos)


@functools.lru_cache(maxsize=2)
def _load_codec(model: str | None) -> Codec:
    from mrt.codec import Codec  # noqa: PLC0415

    return Codec.load(model)


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    """uint8 [H, W, 3] with the conversion rules of ``mrt.io.load_image`` (alpha on white, 16-bit scaled)."""
    from mrt.io.images import pillow_to_rgb  # noqa: PLC0415

    return pillow_to_rgb(im)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """``Image.save`` for format MRT: options ``model``, ``max_bytes``, ``bpp`` (or a loaded ``codec``)."""
    opts = im.encoderinfo
    codec = opts.get("codec")
    if codec is None:
        codec = _load_codec(opts.get("model"))
    kwargs = {k: opts[k] for k in _COMPRESS_OPTIONS if opts.get(k) is not None}
    fp.write(codec.compress(_to_rgb_array(im), **kwargs))


def register() -> None:
    """Register the MRT format, its extension and MIME type with Pillow (idempotent)."""
    Image.register_open(FORMAT, MRTImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME_TYPE)


register()
