"""mrt.bitstream: header layout, CRC, clear errors, and container + coder error detection."""

from __future__ import annotations

import numpy as np
import pytest

from mrt.bitstream import HEADER_SIZE, MAGIC, Container, crc16, pack, symbols_digest, unpack, verify
from mrt.entropy import SymbolDecoder, SymbolEncoder, quantize_pmf
from mrt.errors import BitstreamError, ImageError, ModelError, MRTError

# ----------------------------------------------------------------------------- CRC


def test_crc16_check_value() -> None:
    assert crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE catalogue check value
    assert crc16(b"") == 0xFFFF
    assert crc16(b"56789", crc16(b"1234")) == 0x29B1  # incremental == one shot


def _crc16_bitwise(data: bytes, crc: int = 0xFFFF) -> int:
    """Table-free reference: CRC-16/CCITT-FALSE one bit at a time (poly 0x1021, MSB first)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def test_crc16_matches_a_bitwise_reference() -> None:
    rng = np.random.default_rng(0)
    assert _crc16_bitwise(b"123456789") == 0x29B1
    for n in (0, 1, 2, 7, 64, 1000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc16(data) == _crc16_bitwise(data)
        init = int(rng.integers(0, 1 << 16))
        assert crc16(data, init) == _crc16_bitwise(data, init)


def test_crc16_detects_every_single_bit_flip() -> None:
    data = bytes(range(40))
    ref = crc16(data)
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert crc16(bytes(flipped)) != ref


def test_symbols_digest_layout() -> None:
    assert symbols_digest(np.array([1, 258, 2**32 - 1])) == bytes.fromhex("01000000" "02010000" "ffffffff")
    assert symbols_digest(np.zeros((2, 2), dtype=np.int64)) == bytes(16)
    with pytest.raises(ValueError):
        symbols_digest(np.array([-1]))


# ----------------------------------------------------------------------------- header


def test_header_layout_golden() -> None:
    data = pack(0x123456, 512, 768, b"\xaa\xbb", b"digest")
    assert len(data) == HEADER_SIZE + 2
    assert data[:2] == MAGIC
    assert data[2] == 0x10  # version 1, flags 0
    assert data[3:6] == bytes.fromhex("123456")
    assert data[6:8] == (511).to_bytes(2, "big")
    assert data[8:10] == (767).to_bytes(2, "big")
    assert int.from_bytes(data[10:12], "big") == crc16(data[:10] + b"\xaa\xbb" + b"digest")
    assert data[12:] == b"\xaa\xbb"


@pytest.mark.parametrize(
    "model_id,height,width,payload",
    [(0, 1, 1, b""), (0xFFFFFF, 65536, 65536, b"x" * 1000), (0xABCDEF, 17, 33, b"\x00\x01")],
)
def test_pack_unpack_roundtrip(model_id: int, height: int, width: int, payload: bytes) -> None:
    data = pack(model_id, height, width, payload, b"sym")
    c = unpack(data)
    assert isinstance(c, Container)
    assert (c.version, c.model_id, c.height, c.width, c.payload) == (1, model_id, height, width, payload)
    assert c.total_bytes == len(data)
    assert c.bpp == pytest.approx(8 * len(data) / (height * width))
    verify(c, b"sym")
    with pytest.raises(BitstreamError, match="checksum mismatch"):
        verify(c, b"syn")


def test_pack_refuses_sizes_outside_the_format() -> None:
    with pytest.raises(ImageError, match="65536"):
        pack(1, 65537, 10, b"", b"")
    with pytest.raises(ImageError):
        pack(1, 10, 0, b"", b"")
    with pytest.raises(ValueError):
        pack(1 << 24, 10, 10, b"", b"")


def test_unpack_errors_are_clear() -> None:
    good = pack(7, 10, 10, b"payload", b"")
    with pytest.raises(BitstreamError, match="^empty file"):
        unpack(b"")
    with pytest.raises(BitstreamError, match="not an MRT file"):
        unpack(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(BitstreamError, match="not an MRT file"):
        unpack(b"x")
    for cut in range(1, HEADER_SIZE):
        with pytest.raises(BitstreamError, match="shorter than the 12-byte header"):
            unpack(good[:cut])
    for version in (0, 2, 15):
        bad = good[:2] + bytes([version << 4]) + good[3:]
        with pytest.raises(BitstreamError) as info:
            unpack(bad)
        assert str(info.value) == (
            f"file format version {version} is not supported by this mrt (supports 1)"
        )
    with pytest.raises(BitstreamError, match="feature flags 0x3"):
        unpack(good[:2] + bytes([0x13]) + good[3:])


def test_verify_covers_every_header_field() -> None:
    c = unpack(pack(7, 10, 20, b"payload", b"d"))
    variants = [
        Container(c.version, 8, c.height, c.width, c.payload, c.checksum),
        Container(c.version, c.model_id, 11, c.width, c.payload, c.checksum),
        Container(c.version, c.model_id, c.height, 21, c.payload, c.checksum),
        Container(c.version, c.model_id, c.height, c.width, b"paylaod", c.checksum),
    ]
    for variant in variants:
        with pytest.raises(BitstreamError, match="checksum mismatch"):
            verify(variant, b"d")


# ----------------------------------------------------------------------------- with the coder
#
# A miniature codec with the same structure as the real one: the number of symbols follows from
# the image size, the tables are adaptive (each chunk's table depends on the symbols decoded
# before it), and the symbols digest is the packed symbols.

MODEL_ID = 0x0A0B0C
N_SYM = 16


def _n_symbols(height: int, width: int) -> int:
    return 24 + (height * 7 + width * 3) % 40


def _tables(chunk: int, previous: np.ndarray) -> np.ndarray:
    """(8, N_SYM) tables for chunk ``chunk`` given the symbols decoded so far."""
    context = int(previous[-1]) if previous.size else 0
    rng = np.random.default_rng(1000 * chunk + context)
    logits = rng.normal(size=(8, N_SYM)) * 2.5
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return quantize_pmf((e / e.sum(axis=1, keepdims=True)).astype(np.float32), 16)


def _digest(symbols: np.ndarray) -> bytes:
    return symbols_digest(symbols)


def mini_compress(symbols: np.ndarray, height: int, width: int) -> bytes:
    assert symbols.size == _n_symbols(height, width)
    enc = SymbolEncoder()
    for k in range(0, symbols.size, 8):
        chunk = symbols[k : k + 8]
        enc.encode(chunk, _tables(k // 8, symbols[:k])[: chunk.size])
    return pack(MODEL_ID, height, width, enc.finish(), _digest(symbols))


def mini_decompress(data: bytes) -> np.ndarray:
    c = unpack(data)
    if c.model_id != MODEL_ID:
        raise ModelError(f"unknown model id 0x{c.model_id:06x}")
    n = _n_symbols(c.height, c.width)
    dec = SymbolDecoder(c.payload)
    symbols = np.zeros(0, dtype=np.int64)
    for k in range(0, n, 8):
        size = min(8, n - k)
        symbols = np.concatenate([symbols, dec.decode(_tables(k // 8, symbols)[:size])])
    dec.finish()
    verify(c, _digest(symbols))
    return symbols


def _sample_file(seed: int = 0, height: int = 5, width: int = 9) -> tuple[np.ndarray, bytes]:
    rng = np.random.default_rng(seed)
    n = _n_symbols(height, width)
    symbols = np.zeros(n, dtype=np.int64)
    for k in range(0, n, 8):  # draw from the model so the file is realistically small
        tables = _tables(k // 8, symbols[:k]).astype(np.float64)
        for j in range(min(8, n - k)):
            symbols[k + j] = rng.choice(N_SYM, p=tables[j] / tables[j].sum())
    return symbols, mini_compress(symbols, height, width)


def test_mini_codec_roundtrip() -> None:
    for seed in range(5):
        symbols, data = _sample_file(seed)
        np.testing.assert_array_equal(mini_decompress(data), symbols)


def test_every_truncation_is_an_error() -> None:
    for seed in range(3):
        _, data = _sample_file(seed)
        for cut in range(len(data)):
            with pytest.raises(BitstreamError):
                mini_decompress(data[:cut])


def test_every_single_bit_flip_is_an_error() -> None:
    for seed in range(2):
        _, data = _sample_file(seed)
        for bit in range(len(data) * 8):
            corrupt = bytearray(data)
            corrupt[bit // 8] ^= 1 << (bit % 8)
            with pytest.raises(MRTError):  # BitstreamError, or ModelError for the model id bytes
                mini_decompress(bytes(corrupt))


def test_appended_bytes_are_an_error() -> None:
    _, data = _sample_file(3)
    for extra in (b"\x00", b"\x01", b"more data"):
        with pytest.raises(BitstreamError):
            mini_decompress(data + extra)


def test_probability_mismatch_is_always_caught() -> None:
    """A decoder whose tables differ slightly (e.g. another float path) must refuse, not guess."""
    rng = np.random.default_rng(5)
    caught = wrong = 0
    for seed in range(150):
        symbols, data = _sample_file(seed)
        c = unpack(data)
        n = symbols.size
        dec = SymbolDecoder(c.payload)
        decoded = np.zeros(0, dtype=np.int64)
        for k in range(0, n, 8):
            tables = _tables(k // 8, decoded)[: min(8, n - k)].copy()
            row, a, b = rng.integers(0, tables.shape[0]), rng.integers(0, N_SYM), rng.integers(0, N_SYM)
            if tables[row, a] > 1 and a != b:  # move one unit of probability
                tables[row, a] -= 1
                tables[row, b] += 1
            decoded = np.concatenate([decoded, dec.decode(tables)])
        if np.array_equal(decoded, symbols):
            continue  # the mismatch did not change any symbol: the result is still correct
        wrong += 1
        try:
            dec.finish()
            verify(c, _digest(decoded))
        except BitstreamError:
            caught += 1
    assert wrong > 0 and caught == wrong
