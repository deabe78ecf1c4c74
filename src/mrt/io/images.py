"""Reading any common image file as 8-bit RGB, and writing images atomically.

Conversion rules of :func:`load_image` (documented behaviour):

* The size is read from the file header and checked against ``max_pixels`` before any pixel
  is decoded; Pillow's own decompression-bomb warning/error never reaches the user.
* EXIF orientation (tag 0x0112) is applied, so the array is upright as viewers show it.
* Alpha (RGBA, LA, PA, palette or colour-key transparency) is composited onto a white background:
  ``out = (rgb * a + 255 * (255 - a) + 127) // 255``.
* Grayscale (1, L, I;16, I, F) is replicated to three channels; CMYK/YCbCr/LAB/HSV use
  Pillow's conversion to RGB.
* 16-bit samples are scaled with rounding, ``(v * 255 + 32767) // 65535`` (not clipped, not
  truncated). 16-bit RGB/RGBA/LA PNGs are decoded with ``imagecodecs`` for this (without it,
  Pillow's high-byte truncation is used). Mode ``I`` is read as 16-bit when its values fit in
  ``[0, 65535]`` and exceed 255, else as 8-bit (clipped); mode ``F`` is read as ``[0, 1]``
  if its maximum is <= 1, else as ``[0, 255]`` (clipped).
* Multi-frame files (animated GIF, WebP and APNG, multi-page TIFF) give their first frame, with a
  ``FirstFrameWarning`` saying how many frames the file has (``mrt`` prints it as a note).
  ICC profiles are not applied.
* HEIC/HEIF is read when ``pillow-heif`` is installed.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import threading
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from mrt.errors import FirstFrameWarning, ImageError
from mrt.io.files import atomic_write_bytes

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview]

#: Default pixel limit: 2**27 (about 134 megapixels, e.g. 16384 x 8192).
DEFAULT_MAX_PIXELS = 1 << 27

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BOMB_LOCK = threading.Lock()

#: Output extensions understood by :func:`save_image` -> (Pillow format, save options).
_SAVE_FORMATS = {
    ".png": ("PNG", {"compress_level": 4}),  # as small as Pillow's default 6 here, 0.05 s faster at 768x512
    ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".webp": ("WEBP", {"lossless": True}),
    ".bmp": ("BMP", {}),
    ".tif": ("TIFF", {"compression": "tiff_deflate"}),
    ".tiff": ("TIFF", {"compression": "tiff_deflate"}),
}


SAVE_SUFFIXES = frozenset(_SAVE_FORMATS)

#: Extensions read as images when a folder is given (``mrt compress``, ``mrt eval``, the data cache).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif", ".avif",
     ".ppm", ".pgm", ".pnm"}
)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True for a regular file whose extension (any case) is one of :data:`IMAGE_SUFFIXES`."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()


def check_rgb_image(img: object, max_side: int | None = None) -> np.ndarray:
    """An 8-bit RGB array ``(H, W, 3)`` with both sides in ``1..max_side``, C-contiguous.

    Raises ``ImageError`` with a one-line message otherwise (what every codec front end accepts).
    """
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        got = f"{getattr(img, 'dtype', type(img).__name__)} {tuple(getattr(img, 'shape', ()))}"
        raise ImageError(f"expected an 8-bit RGB image array of shape (H, W, 3), got {got}")
    h, w = img.shape[:2]
    limit = max_side if max_side is not None else max(h, w, 1)
    if not (1 <= h <= limit and 1 <= w <= limit):
        raise ImageError(f"image is {w}x{h} pixels; each side must be 1..{limit}")
    return np.ascontiguousarray(img)


def _describe(source: ImageSource) -> str:
    """Name used in error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return os.fspath(source)


@functools.cache
def _enable_heif() -> None:
    """Register pillow-heif's opener on first use (optional dependency); later calls do nothing."""
    try:
        import pillow_heif  # type: ignore[import-untyped]
    except ImportError:
        return
    pillow_heif.register_heif_opener()


def _open_lazily(source: ImageSource, name: str) -> Image.Image:
    """Open (header only) without Pillow's decompression-bomb warning or error."""
    fp = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                return Image.open(fp)
            except Image.DecompressionBombError:
                # Only to read the size so that *our* limit decides (with our message); the
                # global limit is restored right after the header is parsed.
                with _BOMB_LOCK:
                    saved = Image.MAX_IMAGE_PIXELS
                    Image.MAX_IMAGE_PIXELS = None
                    try:
                        if isinstance(fp, io.BytesIO):
                            fp.seek(0)
                        return Image.open(fp)
                    finally:
                        Image.MAX_IMAGE_PIXELS = saved
    except FileNotFoundError:
        raise ImageError(f"cannot read '{name}': no such file") from None
    except IsADirectoryError:
        raise ImageError(f"cannot read '{name}': it is a directory") from None
    except PermissionError:
        raise ImageError(f"cannot read '{name}': permission denied") from None
    except (UnidentifiedImageError, ValueError, SyntaxError, EOFError, OSError):
        raise ImageError(f"cannot read '{name}': not a supported image") from None


def _check_size(im: Image.Image, name: str, max_pixels: int) -> None:
    """Refuse empty or too large images from the header alone."""
    width, height = im.size
    if width < 1 or height < 1:
        raise ImageError(f"cannot read '{name}': image is empty ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            f"cannot read '{name}': image is {width}x{height} pixels; "
            f"the limit is {max_pixels} pixels"
        )


def _frame_count(im: Image.Image) -> str | None:
    """How many frames an animated or multi-page file holds, in words (None for a single frame)."""
    if not getattr(im, "is_animated", False):
        return None
    try:
        return str(int(im.n_frames))
    except Exception:  # noqa: BLE001 - a damaged later frame must not make the first unreadable
        return "several"
    finally:
        with contextlib.suppress(Exception):
            if im.tell() != 0:
                im.seek(0)


def _warn_if_several_frames(im: Image.Image, name: str) -> None:
    """Warn (``FirstFrameWarning``) when the file holds more than one frame: only the first is read."""
    frames = _frame_count(im)
    if frames is not None:
        warnings.warn(FirstFrameWarning(f"'{name}' has {frames} frames; only the first is used"), stacklevel=3)


def _scale16(values: np.ndarray) -> np.ndarray:
    """16-bit -> 8-bit with rounding: round(v * 255 / 65535)."""
    v = values.astype(np.uint32)
    return ((v * 255 + 32767) // 65535).astype(np.uint8)


def _composite_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha-composite uint8 ``rgb (H, W, 3)`` onto white with uint8 ``alpha (H, W)``."""
    a = alpha.astype(np.uint32)[..., None]
    out = (rgb.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> (H, W, 3)."""
    return np.repeat(gray[..., None], 3, axis=2)


def _png_bit_depth(im: Image.Image, raw: bytes | None) -> int:
    """Bit depth from a PNG's IHDR (8 when unknown)."""
    if im.format != "PNG" or raw is None or len(raw) < 25 or raw[:8] != _PNG_SIGNATURE:
        return 8
    return raw[24]


def _decode_png16(raw: bytes) -> np.ndarray | None:
    """Decode a 16-bit PNG to RGB uint8 via imagecodecs (None if unavailable)."""
    try:
        import imagecodecs  # type: ignore[import-untyped]
    except ImportError:
        return None
    try:
        arr = imagecodecs.png_decode(raw)  # uint16 (H, W[, C])
    except Exception as err:  # noqa: BLE001 - imagecodecs raises its own error types
        raise ImageError(f"truncated or corrupt PNG ({err})") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    eight = _scale16(arr)
    channels = eight.shape[2]
    if channels == 1:
        return _gray_to_rgb(eight[..., 0])
    if channels == 2:
        return _composite_white(_gray_to_rgb(eight[..., 0]), eight[..., 1])
    if channels == 4:
        return _composite_white(eight[..., :3], eight[..., 3])
    return np.ascontiguousarray(eight[..., :3])


def _int_image_to_rgb(im: Image.Image) -> np.ndarray:
    """Modes I;16*, I and F -> RGB uint8 (see module docstring for the ranges)."""
    arr = np.asarray(im)
    if im.mode.startswith("I;16"):
        return _gray_to_rgb(_scale16(arr))
    if im.mode == "F":
        f = arr.astype(np.float64)
        peak = float(np.nanmax(f)) if f.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
        return _gray_to_rgb(np.clip(np.nan_to_num(f) * scale + 0.5, 0, 255).astype(np.uint8))
    values = arr.astype(np.int64)  # mode I (int32)
    if values.size and values.min() >= 0 and 255 < values.max() <= 65535:
        return _gray_to_rgb(_scale16(values))
    return _gray_to_rgb(np.clip(values, 0, 255).astype(np.uint8))


def pillow_to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> RGB uint8 (H, W, 3), alpha composited onto white."""
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        return _int_image_to_rgb(im)
    has_key = mode in ("P", "L", "RGB") and "transparency" in im.info  # tRNS colour key
    if has_key or mode in ("PA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        arr = np.asarray(im)
        return _composite_white(arr[..., :3], arr[..., 3])
    if mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im), dtype=np.uint8)


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1..8 to ``arr (H, W, C)`` (same result as ImageOps.exif_transpose)."""
    if orientation == 2:
        arr = arr[:, ::-1]
    elif orientation == 3:
        arr = arr[::-1, ::-1]
    elif orientation == 4:
        arr = arr[::-1]
    elif orientation == 5:
        arr = arr.transpose(1, 0, 2)
    elif orientation == 6:
        arr = np.rot90(arr, k=-1)
    elif orientation == 7:
        arr = arr.transpose(1, 0, 2)[::-1, ::-1]
    elif orientation == 8:
        arr = np.rot90(arr, k=1)
    return np.ascontiguousarray(arr)


def _orientation(im: Image.Image) -> int:
    """EXIF orientation tag (1 when absent or invalid)."""
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - malformed EXIF must not make the image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _raw_bytes(source: ImageSource, limit: int = -1) -> bytes:
    """The file's bytes, or its first ``limit`` bytes (for the 16-bit PNG path)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return data if limit < 0 else data[:limit]
    with open(source, "rb") as fh:
        return fh.read(limit)


def _png_head(im: Image.Image, source: ImageSource) -> bytes | None:
    """First bytes of a PNG source (None for other formats)."""
    return _raw_bytes(source, 32) if im.format == "PNG" else None


def load_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file (path or bytes) as uint8 ``(H, W, 3)`` RGB, upright.

    Raises ``ImageError`` with a one-line message for unreadable, unsupported, empty or too
    large (``> max_pixels``, checked before decoding) images.
    """
    name = _describe(source)
    _enable_heif()
    im = _open_lazily(source, name)
    with im:
        _check_size(im, name, max_pixels)
        _warn_if_several_frames(im, name)
        orientation = _orientation(im)
        try:
            rgb = None
            if im.mode in ("RGB", "RGBA") and _png_bit_depth(im, _png_head(im, source)) == 16:
                rgb = _decode_png16(_raw_bytes(source))
            if rgb is None:
                im.load()
                rgb = pillow_to_rgb(im)
        except ImageError as err:
            raise ImageError(f"cannot read '{name}': {err}") from None
        except (OSError, ValueError, SyntaxError, EOFError) as err:
            raise ImageError(f"cannot read '{name}': truncated or corrupt image ({err})") from None
        except MemoryError:
            raise ImageError(f"cannot read '{name}': not enough memory to decode it") from None
    return apply_orientation(rgb, orientation)


def encode_image(arr: np.ndarray, suffix: str = ".png") -> bytes:
    """Encode uint8 ``(H, W, 3)`` (or ``(H, W)``) to file bytes in the format of ``suffix``."""
    fmt = _SAVE_FORMATS.get(suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_SAVE_FORMATS))
        raise ImageError(f"cannot save as '{suffix or '(no extension)'}': use one of {known}")
    a = np.asarray(arr)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"expected uint8 (H, W, 3) or (H, W), got {a.dtype} {a.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format=fmt[0], **fmt[1])
    return buf.getvalue()


def save_image(arr: np.ndarray, path: str | os.PathLike[str], force: bool = False) -> None:
    """Write ``arr`` to ``path`` atomically, format from the extension (PNG if none given).

    A path without an extension gets PNG content under the given name. Refuses an existing
    ``path`` unless ``force``.
    """
    path = Path(path)
    data = encode_image(arr, path.suffix or ".png")
    atomic_write_bytes(path, data, force=force)
