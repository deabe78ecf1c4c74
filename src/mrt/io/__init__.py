"""Image files in and out: :func:`load_image`, :func:`save_image`, :func:`atomic_write_bytes`."""

from mrt.io.files import OutputExistsError, atomic_write_bytes
from mrt.io.images import (
    DEFAULT_MAX_PIXELS,
    SAVE_SUFFIXES,
    apply_orientation,
    encode_image,
    load_image,
    save_image,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "OutputExistsError",
    "SAVE_SUFFIXES",
    "apply_orientation",
    "atomic_write_bytes",
    "encode_image",
    "load_image",
    "save_image",
]
