"""The MRT file container (header + payload), no torch. Spec: docs/bitstream.md."""

from mrt.bitstream.container import (
    HEADER_SIZE,
    MAGIC,
    MAX_SIDE,
    SUPPORTED_VERSIONS,
    VERSION,
    Container,
    crc16,
    pack,
    symbols_digest,
    unpack,
    verify,
)

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "MAX_SIDE",
    "SUPPORTED_VERSIONS",
    "VERSION",
    "Container",
    "crc16",
    "pack",
    "symbols_digest",
    "unpack",
    "verify",
]
