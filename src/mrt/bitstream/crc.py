"""CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected, no final xor), table driven.

Check value: ``crc16(b"123456789") == 0x29B1``.
"""

from __future__ import annotations

_POLY = 0x1021
_INIT = 0xFFFF


def _make_table() -> tuple[int, ...]:
    """CRC of every byte value shifted into the top of the 16-bit register."""
    table = []
    for byte in range(256):
        reg = byte << 8
        for _ in range(8):
            reg = ((reg << 1) ^ _POLY) if reg & 0x8000 else (reg << 1)
            reg &= 0xFFFF
        table.append(reg)
    return tuple(table)


_TABLE = _make_table()


def crc16(data: bytes, crc: int = _INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data``; pass a previous result as ``crc`` to continue it."""
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc
