"""The MRT file container: a 12-byte (version 1) or 13-byte (versions 2-4) header, then the body.

Layout (big-endian; normative spec in docs/bitstream.md)::

    version 1                                 version 2
    0-1   magic b"\\xd7M"                      0-1   magic b"\\xd7M"
    2     1 << 4 | flags (= 0)                2     2 << 4 | flags (bit 0: padded)
    3-5   model id of a rate variant          3-5   model id of the model file
                                              6     k - 1 (tokens per window)
    6-7   height - 1 (uint16)                 7-8   height - 1 (uint16)
    8-9   width - 1 (uint16)                  9-10  width - 1 (uint16)
    10-11 CRC-16/CCITT-FALSE                  11-12 CRC-16/CCITT-FALSE
    12-   payload                             13-   payload [+ zero padding + uint32 length]

Version 3 is version 2 with flag bits 1-3 holding a scale code 1 ... 7: the file codes a
downscaled copy of the image (:mod:`mrt.bitstream.scale`); the header keeps the full size.
Version 4 has the layout of version 3 (scale code 0 allowed: not scaled) and codes its payload
with *portable* tables (:mod:`mrt.entropy.portable`): the only version whose files decode the
same on every machine, and the only one this mrt writes.

The CRC covers the header bytes before it, the whole body and the *symbols digest*: bytes
supplied by the codec (the packed decoded symbols), not stored but covered, so a decoder that
computed different probabilities than the encoder fails :func:`verify` like a corrupt file.
Every body must meet the floor of :mod:`mrt.bitstream.limits`; a version-2 encoder pads the
rare payload that would not, and the reader strips the padding so that the range decoder still
checks that it consumed the payload exactly.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

import numpy as np

from mrt.bitstream.limits import floor_problem, min_body_bytes, pixels_problem
from mrt.bitstream.scale import MAX_SCALE_CODE, coded_size
from mrt.errors import BitstreamError, ImageError

MAGIC = b"\xd7M"
VERSION = 4  # the version this mrt writes (readers take 1-3 too; pack(portable=False) writes them, for tests)
SUPPORTED_VERSIONS = (1, 2, 3, 4)
HEADER_SIZE = 12  # of version 1; see HEADER_SIZES
HEADER_SIZES = {1: 12, 2: 13, 3: 13, 4: 13}
MAX_SIDE = 65536
MAX_MODEL_ID = (1 << 24) - 1
MAX_K = 256  # tokens per window a version-2 header can state
FLAG_PADDED = 0x1  # versions 2-4: the body ends with padding
SCALE_SHIFT = 1  # versions 3, 4: flag bits 1-3 hold the scale code (1 ... 7; 0 allowed in version 4)
SCALED_VERSIONS = (3, 4)
PAD_LENGTH_BYTES = 4  # the padding ends with its own length (uint32, these 4 bytes included)
_KNOWN_FLAGS = {1: 0, 2: FLAG_PADDED, 3: FLAG_PADDED | (MAX_SCALE_CODE << SCALE_SHIFT),
                4: FLAG_PADDED | (MAX_SCALE_CODE << SCALE_SHIFT)}


@dataclass(frozen=True)
class Container:
    """A parsed (not yet verified) MRT file."""

    version: int
    model_id: int
    height: int
    width: int
    payload: bytes  # the range-coded bytes (padding removed)
    checksum: int
    flags: int = 0
    k: int | None = None  # tokens per window (versions 2-4); None: the model variant decides (version 1)
    padding: bytes = b""  # versions 2-4: zero bytes + uint32 length, covered by the checksum

    @property
    def scale_code(self) -> int:
        """0 (the image itself is coded) or, in versions 3 and 4, the code of its downscaling factor."""
        return (self.flags >> SCALE_SHIFT) & MAX_SCALE_CODE if self.version in SCALED_VERSIONS else 0

    @property
    def portable(self) -> bool:
        """Whether the payload is coded with the portable tables (version 4) instead of float32 ones."""
        return self.version >= 4

    @property
    def coded_size(self) -> tuple[int, int]:
        """(height, width) of the image the payload codes (the stored size unless scaled)."""
        return coded_size(self.height, self.width, self.scale_code)

    @property
    def header_size(self) -> int:
        return HEADER_SIZES[self.version]

    @property
    def body(self) -> bytes:
        """Everything after the header: payload and padding."""
        return self.payload + self.padding

    @property
    def total_bytes(self) -> int:
        """Size of the whole file in bytes (header + body)."""
        return self.header_size + len(self.payload) + len(self.padding)

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


def _header_prefix(c: Container) -> bytes:
    """Header bytes before the checksum (10 in version 1, 11 in version 2)."""
    k_byte = b"" if c.version == 1 else bytes([(c.k or 1) - 1])
    return (
        MAGIC
        + bytes([(c.version << 4) | c.flags])
        + c.model_id.to_bytes(3, "big")
        + k_byte
        + (c.height - 1).to_bytes(2, "big")
        + (c.width - 1).to_bytes(2, "big")
    )


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected, no final xor) of ``data``.

    The standard library's ``binascii.crc_hqx`` computes exactly this CRC; pass a previous
    result as ``crc`` to continue it. Check value: ``crc16(b"123456789") == 0x29B1``.
    """
    return binascii.crc_hqx(data, crc)


def _checksum(c: Container, symbols_digest: bytes) -> int:
    """CRC-16 over the header bytes before the checksum, the body and the symbols digest."""
    return crc16(symbols_digest, crc16(c.padding, crc16(c.payload, crc16(_header_prefix(c)))))


def padding_for(payload_bytes: int, height: int, width: int, k: int) -> bytes:
    """The padding a version-2 encoder appends to a payload (empty when it meets the floor)."""
    short = min_body_bytes(height, width, k) - payload_bytes
    if short <= 0:
        return b""
    n = max(PAD_LENGTH_BYTES, short)
    return bytes(n - PAD_LENGTH_BYTES) + n.to_bytes(PAD_LENGTH_BYTES, "big")


def file_size(payload_bytes: int, height: int, width: int, k: int | None = None, scale_code: int = 0) -> int:
    """Size of the file :func:`pack` writes for a payload (``k=None``: version 1; versions 2-4 the same)."""
    if k is None:
        return HEADER_SIZES[1] + payload_bytes
    ch, cw = coded_size(height, width, scale_code)
    return HEADER_SIZES[2] + payload_bytes + len(padding_for(payload_bytes, ch, cw, k))


def pack(
    model_id: int,
    height: int,
    width: int,
    payload: bytes,
    symbols_digest: bytes,
    k: int | None = None,
    scale_code: int = 0,
    portable: bool = False,
) -> bytes:
    """Build a complete file: version 4 (``portable``: the payload was coded with portable tables;
    needs ``k``), else version 1 (``k`` None), 2 (``k`` tokens per window) or 3 (``scale_code`` > 0).

    A version-1 ``model_id`` names a rate variant (which implies k); a version-2/3 one names the
    model file. ``height`` x ``width`` is the image's own size; with ``scale_code`` the payload
    codes the image at ``coded_size(height, width, scale_code)``. Raises ``ImageError`` if the
    image size does not fit the format, and ``ValueError`` for a version-1 payload under the
    floor (only versions 2 and 3 can pad) or a scale without ``k``.
    """
    if not 0 <= model_id <= MAX_MODEL_ID:
        raise ValueError(f"model id must fit in 24 bits, got {model_id}")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise ImageError(
            f"image is {width}x{height} pixels; the MRT format stores 1 to {MAX_SIDE} pixels per side"
        )
    if not 0 <= scale_code <= MAX_SCALE_CODE or (scale_code and k is None):
        raise ValueError(f"scale code must be in 0..{MAX_SCALE_CODE} (and needs k), got {scale_code}")
    if portable and k is None:
        raise ValueError("version 4 (portable) needs k")
    payload = bytes(payload)
    if k is None:
        if len(payload) < min_body_bytes(height, width, 1):
            raise ValueError("payload is under the floor; version 1 cannot pad it (give k: version 2)")
        c = Container(1, model_id, height, width, payload, 0)
    else:
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be in 1..{MAX_K}, got {k}")
        padding = padding_for(len(payload), *coded_size(height, width, scale_code), k)
        flags = (FLAG_PADDED if padding else 0) | (scale_code << SCALE_SHIFT)
        version = 4 if portable else 3 if scale_code else 2
        c = Container(version, model_id, height, width, payload, 0, flags, k, padding)
    crc = _checksum(c, bytes(symbols_digest))
    return _header_prefix(c) + crc.to_bytes(2, "big") + c.body


def _split_padding(body: bytes, flags: int, height: int, width: int, k: int) -> tuple[bytes, bytes]:
    """(payload, padding) of a version-2/3/4 body (coded size ``height`` x ``width``): the padding must be exactly what the encoder writes."""
    if not flags & FLAG_PADDED:
        return body, b""
    n = int.from_bytes(body[-PAD_LENGTH_BYTES:], "big") if len(body) >= PAD_LENGTH_BYTES else 0
    payload, padding = body[: len(body) - n], body[len(body) - n :]
    if not PAD_LENGTH_BYTES <= n <= len(body) or padding != padding_for(len(payload), height, width, k):
        raise BitstreamError("corrupt file (invalid padding)")
    return payload, padding


def read_header(data: bytes) -> Container:
    """Parse a file's header and split its body; no floor check (see :func:`unpack`)."""
    data = bytes(data)
    if not data:
        raise BitstreamError("empty file (0 bytes)")
    if data[:2] != MAGIC[: len(data[:2])]:
        raise BitstreamError("not an MRT file (wrong magic bytes)")
    version = data[2] >> 4 if len(data) > 2 else 1
    size = HEADER_SIZES.get(version, HEADER_SIZE)
    if len(data) < size:
        raise BitstreamError(f"corrupt or truncated file ({len(data)} bytes, shorter than the {size}-byte header)")
    flags = data[2] & 0x0F
    if version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
        raise BitstreamError(f"file format version {version} is not supported by this mrt (supports {supported})")
    if flags & ~_KNOWN_FLAGS[version]:
        raise BitstreamError(f"file uses feature flags 0x{flags:x} that this mrt does not support")
    scale_code = (flags >> SCALE_SHIFT) & MAX_SCALE_CODE if version in SCALED_VERSIONS else 0
    if version == 3 and scale_code == 0:
        raise BitstreamError("corrupt file (a version-3 file without a scale)")
    k = None if version == 1 else data[6] + 1
    dims = data[size - 6 : size - 2]
    height, width = int.from_bytes(dims[:2], "big") + 1, int.from_bytes(dims[2:], "big") + 1
    payload, padding = data[size:], b""
    if k is not None:
        payload, padding = _split_padding(payload, flags, *coded_size(height, width, scale_code), k)
    checksum = int.from_bytes(data[size - 2 : size], "big")
    return Container(version, int.from_bytes(data[3:6], "big"), height, width, payload, checksum, flags, k, padding)


def header_problems(c: Container, max_pixels: int | None = None, k: int | None = None) -> list[str]:
    """Why a parsed header cannot be decoded: a body under the floor, an image over ``max_pixels``.

    ``k``: tokens per window when known from the model (version 1); default the header's, or 1.
    """
    tokens = c.k or k or 1
    ch, cw = c.coded_size
    problems = [floor_problem(ch, cw, len(c.body), tokens, c.k is not None or k is not None),
                pixels_problem(c.height, c.width, max_pixels)]
    return [p for p in problems if p is not None]


def unpack(data: bytes, max_pixels: int | None = None) -> Container:
    """Parse a file's header. Raises ``BitstreamError`` with a one-line reason when it is unusable.

    Refuses bodies under the floor (version 1: at one token per window, all the header can
    tell) and, when ``max_pixels`` is given, images with more pixels.
    """
    c = read_header(data)
    problems = header_problems(c, max_pixels)
    if problems:
        raise BitstreamError(problems[0])
    return c


def verify(container: Container, symbols_digest: bytes) -> None:
    """Raise ``BitstreamError`` unless the stored checksum matches header + body + digest."""
    if _checksum(container, bytes(symbols_digest)) != container.checksum:
        raise BitstreamError("corrupt or truncated file (checksum mismatch)")
