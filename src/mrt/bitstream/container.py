"""The MRT file container: a 12-byte header followed by the entropy-coded payload.

Layout (big-endian; normative spec in docs/bitstream.md)::

    0-1   magic b"\\xd7M"
    2     version (high 4 bits, = 1) | flags (low 4 bits, = 0 in version 1)
    3-5   model id (24 bits)
    6-7   height - 1 (uint16)
    8-9   width - 1 (uint16)
    10-11 CRC-16/CCITT-FALSE over bytes 0-9 + payload + symbols digest
    12-   payload (to the end of the file)

The symbols digest is supplied by the codec (the packed decoded symbols); it is not stored but
is covered by the checksum, so a decoder that computed different probabilities than the encoder
(and so decoded different symbols) fails :func:`verify` just like a corrupt file.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

import numpy as np

from mrt.errors import BitstreamError, ImageError

MAGIC = b"\xd7M"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
HEADER_SIZE = 12
MAX_SIDE = 65536
MAX_MODEL_ID = (1 << 24) - 1


@dataclass(frozen=True)
class Container:
    """A parsed (not yet verified) MRT file."""

    version: int
    model_id: int
    height: int
    width: int
    payload: bytes
    checksum: int
    flags: int = 0

    @property
    def total_bytes(self) -> int:
        """Size of the whole file in bytes (header + payload)."""
        return HEADER_SIZE + len(self.payload)

    @property
    def bpp(self) -> float:
        """Bits per pixel of the whole file (header included)."""
        return 8.0 * self.total_bytes / (self.height * self.width)


def symbols_digest(symbols: np.ndarray) -> bytes:
    """Recommended digest bytes: every symbol as little-endian uint32, in coding order."""
    arr = np.asarray(symbols).reshape(-1)
    if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= 1 << 32):
        raise ValueError("symbols must be integers in [0, 2**32)")
    return arr.astype("<u4").tobytes()


def _header_prefix(version: int, flags: int, model_id: int, height: int, width: int) -> bytes:
    """Header bytes 0-9 (everything but the checksum)."""
    return (
        MAGIC
        + bytes([(version << 4) | flags])
        + model_id.to_bytes(3, "big")
        + (height - 1).to_bytes(2, "big")
        + (width - 1).to_bytes(2, "big")
    )


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected, no final xor) of ``data``.

    The standard library's ``binascii.crc_hqx`` computes exactly this CRC; pass a previous
    result as ``crc`` to continue it. Check value: ``crc16(b"123456789") == 0x29B1``.
    """
    return binascii.crc_hqx(data, crc)


def _checksum(prefix: bytes, payload: bytes, symbols_digest: bytes) -> int:
    """CRC-16 over header bytes 0-9, the payload and the symbols digest."""
    return crc16(symbols_digest, crc16(payload, crc16(prefix)))


def pack(model_id: int, height: int, width: int, payload: bytes, symbols_digest: bytes) -> bytes:
    """Build a complete file. Raises ``ImageError`` if the image size does not fit the format."""
    if not 0 <= model_id <= MAX_MODEL_ID:
        raise ValueError(f"model id must fit in 24 bits, got {model_id}")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise ImageError(
            f"image is {width}x{height} pixels; the MRT format stores 1 to {MAX_SIDE} pixels per side"
        )
    prefix = _header_prefix(VERSION, 0, model_id, height, width)
    crc = _checksum(prefix, bytes(payload), bytes(symbols_digest))
    return prefix + crc.to_bytes(2, "big") + bytes(payload)


def unpack(data: bytes) -> Container:
    """Parse a file's header. Raises ``BitstreamError`` with a one-line reason when it is unusable."""
    data = bytes(data)
    if not data:
        raise BitstreamError("empty file (0 bytes)")
    if data[:2] != MAGIC[: len(data[:2])]:
        raise BitstreamError("not an MRT file (wrong magic bytes)")
    if len(data) < HEADER_SIZE:
        raise BitstreamError(
            f"corrupt or truncated file ({len(data)} bytes, shorter than the {HEADER_SIZE}-byte header)"
        )
    version, flags = data[2] >> 4, data[2] & 0x0F
    if version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise BitstreamError(
            f"file format version {version} is not supported by this mrt (supports {supported})"
        )
    if flags:
        raise BitstreamError(f"file uses feature flags 0x{flags:x} that this mrt does not support")
    return Container(
        version=version,
        model_id=int.from_bytes(data[3:6], "big"),
        height=int.from_bytes(data[6:8], "big") + 1,
        width=int.from_bytes(data[8:10], "big") + 1,
        payload=data[HEADER_SIZE:],
        checksum=int.from_bytes(data[10:12], "big"),
        flags=flags,
    )


def verify(container: Container, symbols_digest: bytes) -> None:
    """Raise ``BitstreamError`` unless the stored checksum matches header + payload + digest."""
    prefix = _header_prefix(
        container.version, container.flags, container.model_id, container.height, container.width
    )
    if _checksum(prefix, container.payload, bytes(symbols_digest)) != container.checksum:
        raise BitstreamError("corrupt or truncated file (checksum mismatch)")
