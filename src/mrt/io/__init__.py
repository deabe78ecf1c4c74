"""Image files in and out: :func:`load_image`, :func:`save_image`, :func:`atomic_write_bytes`."""

from mrt.io.files import (
    OutputExistsError,
    UnsafeOutputError,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    check_output_path,
)
from mrt.io.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    SAVE_SUFFIXES,
    apply_orientation,
    check_rgb_image,
    encode_image,
    is_image_file,
    load_image,
    save_image,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "OutputExistsError",
    "UnsafeOutputError",
    "IMAGE_SUFFIXES",
    "SAVE_SUFFIXES",
    "apply_orientation",
    "check_rgb_image",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_path",
    "encode_image",
    "is_image_file",
    "load_image",
    "save_image",
]
