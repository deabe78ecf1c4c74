"""mrt.bitstream: header layout, CRC, clear errors, and container + coder error detection."""

from __future__ import annotations

import numpy as np
import pytest

from mrt.bitstream import (
    FLAG_PADDED,
    HEADER_SIZE,
    HEADER_SIZES,
    MAGIC,
    Container,
    crc16,
    file_size,
    header_problems,
    min_body_bytes,
    pack,
    padding_for,
    read_header,
    symbols_digest,
    unpack,
    verify,
)
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
    data = pack(0x123456, 512, 768, b"\xaa\xbb\xcc", b"digest")
    assert len(data) == HEADER_SIZE + 3
    assert data[:2] == MAGIC
    assert data[2] == 0x10  # version 1, flags 0
    assert data[3:6] == bytes.fromhex("123456")
    assert data[6:8] == (511).to_bytes(2, "big")
    assert data[8:10] == (767).to_bytes(2, "big")
    assert int.from_bytes(data[10:12], "big") == crc16(data[:10] + b"\xaa\xbb\xcc" + b"digest")
    assert data[12:] == b"\xaa\xbb\xcc"


def test_header_layout_golden_v2() -> None:
    payload = bytes(range(1, 26))  # 25 bytes: 24 blocks x 8 tokens need 24
    data = pack(0x123456, 512, 768, payload, b"digest", k=8)
    assert len(data) == HEADER_SIZES[2] + 25 == 38
    assert data[:2] == MAGIC
    assert data[2] == 0x20  # version 2, not padded
    assert data[3:6] == bytes.fromhex("123456")
    assert data[6] == 7  # k - 1
    assert data[7:9] == (511).to_bytes(2, "big")
    assert data[9:11] == (767).to_bytes(2, "big")
    assert int.from_bytes(data[11:13], "big") == crc16(data[:11] + payload + b"digest")
    assert data[13:] == payload


@pytest.mark.parametrize(
    "model_id,height,width,payload,k",
    [(0, 1, 1, b"", None), (0xFFFFFF, 65536, 65536, b"x" * 32768, None), (0xABCDEF, 17, 33, b"\x00\x01", None),
     (0, 1, 1, b"", 1), (0xFFFFFF, 65536, 65536, b"x" * 32768, 1), (0xABCDEF, 17, 33, b"\x00\x01" * 16, 256),
     (0x000001, 65536, 65536, b"x" * 8_388_608, 256)],
)
def test_pack_unpack_roundtrip(model_id: int, height: int, width: int, payload: bytes, k: int | None) -> None:
    data = pack(model_id, height, width, payload, b"sym", k=k)
    c = unpack(data)
    assert isinstance(c, Container)
    version = 1 if k is None else 2
    assert (c.version, c.model_id, c.height, c.width, c.payload, c.k) == (version, model_id, height, width, payload, k)
    assert c.padding == b"" and c.header_size == HEADER_SIZES[version]
    assert c.total_bytes == len(data) == file_size(len(payload), height, width, k)
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
    good2 = pack(7, 10, 10, b"payload", b"", k=3)
    for cut in range(3, HEADER_SIZES[2]):
        with pytest.raises(BitstreamError, match="shorter than the 13-byte header"):
            unpack(good2[:cut])
    for version in (0, 5, 15):
        bad = good[:2] + bytes([version << 4]) + good[3:]
        with pytest.raises(BitstreamError) as info:
            unpack(bad)
        assert str(info.value) == (
            f"file format version {version} is not supported by this mrt (supports 1, 2, 3, 4)"
        )
    with pytest.raises(BitstreamError, match="feature flags 0x3"):
        unpack(good[:2] + bytes([0x13]) + good[3:])
    with pytest.raises(BitstreamError, match="feature flags 0x1"):  # version 1 has no padding
        unpack(good[:2] + bytes([0x11]) + good[3:])
    for flags in (0x2, 0x4, 0x8, 0x3):
        with pytest.raises(BitstreamError, match=f"feature flags 0x{flags:x}"):
            unpack(good2[:2] + bytes([0x20 | flags]) + good2[3:])


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
    c2 = unpack(pack(7, 2000, 2000, b"p", b"d", k=5))  # padded
    verify(c2, b"d")
    assert c2.padding
    for variant in [
        Container(2, c2.model_id, c2.height, c2.width, c2.payload, c2.checksum, c2.flags, 6, c2.padding),
        Container(2, c2.model_id, c2.height, c2.width, c2.payload, c2.checksum, c2.flags, c2.k, c2.padding[1:]),
        Container(2, c2.model_id, c2.height, c2.width, c2.payload, c2.checksum, 0, c2.k, c2.padding),
    ]:
        with pytest.raises(BitstreamError, match="checksum mismatch"):
            verify(variant, b"d")


# ----------------------------------------------------------------------------- payload floor and padding


def test_floor_is_one_bit_per_token_and_128_pixel_block() -> None:
    assert min_body_bytes(1, 1, 32) == 4  # one block: 32 bits
    assert min_body_bytes(512, 768, 1) == 3  # 24 blocks
    assert min_body_bytes(512, 768, 16) == 48
    assert min_body_bytes(129, 1, 8) == 2  # partial blocks count whole (2 blocks)
    assert min_body_bytes(1, 65536, 1) == 64  # a one-pixel-high strip is 512 blocks
    assert min_body_bytes(65536, 65536, 1) == 32768
    assert min_body_bytes(100, 100, 7) == 0  # rounded down: tiny images never need padding


@pytest.mark.parametrize("header", [
    "d74d10af955affffffff0000",  # issue 14's repro: 65536 x 65536, version 1, 12 bytes
    "d74d10af955a1fff1fff0000",  # 8192 x 8192
    "d74d10af955a0fff0fff0000",  # 4096 x 4096
    "d74d20005730af00ffffffff0000",  # version 2, k = 1, 65536 x 65536
    "d74d205730af000fff0fff0000",  # version 2, k = 1, 4096 x 4096
])
@pytest.mark.parametrize("size", [12, 13, 100])
def test_hostile_headers_are_refused_by_the_floor(header: str, size: int) -> None:
    data = bytes.fromhex(header)
    data = (data + bytes(range(256)) * 2)[: max(size, len(data))]
    with pytest.raises(BitstreamError, match=r"^corrupt or truncated file \(\d+ bytes after the header; .* needs at least \d+\)$"):
        unpack(data)
    c = read_header(data)  # the fields can still be shown (mrt info)
    assert c.height * c.width >= 4096 * 4096 and len(header_problems(c)) == 1


def test_v1_floor_uses_the_models_k_when_known() -> None:
    data = pack(1, 512, 768, bytes(40), b"")  # fine at k = 1 (3 bytes), not at k = 16 (48)
    c = unpack(data)
    assert header_problems(c) == [] and header_problems(c, k=13) == []
    assert "at 16 tokens per window needs at least 48" in header_problems(c, k=16)[0]
    with pytest.raises(ValueError, match="cannot pad"):
        pack(1, 512, 768, b"\x01\x02", b"")


def test_pixel_limit() -> None:
    c = unpack(pack(1, 300, 400, bytes(10), b""))
    assert header_problems(c, max_pixels=120_000) == []
    (problem,) = header_problems(c, max_pixels=119_999)
    assert problem.startswith("image is 400x300 = 120000 pixels, over the limit of 119999")
    with pytest.raises(BitstreamError, match="over the limit"):
        unpack(pack(1, 300, 400, bytes(10), b""), max_pixels=1000)


@pytest.mark.parametrize("payload_len,height,width,k,pad", [
    (0, 512, 768, 8, 24), (20, 512, 768, 8, 4), (22, 512, 768, 8, 4), (23, 512, 768, 8, 4), (24, 512, 768, 8, 0),
    (0, 1, 1, 1, 0), (3, 4096, 4096, 32, 4093),
])
def test_padding_round_trip(payload_len: int, height: int, width: int, k: int, pad: int) -> None:
    payload = bytes(range(1, payload_len + 1))
    assert len(padding_for(payload_len, height, width, k)) == pad
    data = pack(0xABCDEF, height, width, payload, b"d", k=k)
    assert len(data) == HEADER_SIZES[2] + payload_len + pad == file_size(payload_len, height, width, k)
    assert len(data) - HEADER_SIZES[2] >= min_body_bytes(height, width, k)
    c = unpack(data)
    assert c.payload == payload and len(c.padding) == pad and bool(c.flags & FLAG_PADDED) == (pad > 0)
    verify(c, b"d")
    if pad:
        assert c.padding[-4:] == pad.to_bytes(4, "big") and not any(c.padding[:-4])


def test_padding_must_be_exactly_the_encoders() -> None:
    data = pack(0xABCDEF, 512, 768, b"\x05\x06", b"d", k=8)  # 2 + 22 bytes of padding
    body = bytearray(data[13:])
    bad = [
        body[:-4] + (23).to_bytes(4, "big"),  # a length one byte too long: "padding" 06 00 ...
        body[:-4] + (3).to_bytes(4, "big"),  # shorter than its own length field
        body[:-4] + (99).to_bytes(4, "big"),  # longer than the body
        body[:5] + b"\x01" + body[6:],  # a non-zero padding byte
        body + bytes(4),  # more padding than needed
    ]
    for new_body in bad:
        with pytest.raises(BitstreamError, match="invalid padding"):
            unpack(data[:13] + bytes(new_body))
    # one byte too short reads as the payload 05 06 00 with canonical padding: the checksum refuses it
    c = unpack(data[:13] + bytes(body[:-4] + (21).to_bytes(4, "big")))
    assert c.payload == b"\x05\x06\x00"
    with pytest.raises(BitstreamError, match="checksum mismatch"):
        verify(c, b"d")
    unpadded = pack(0xABCDEF, 512, 768, bytes(30), b"d", k=8)
    with pytest.raises(BitstreamError, match="invalid padding"):  # the flag on a file that needs none
        unpack(unpadded[:2] + bytes([0x21]) + unpadded[3:-4] + (4).to_bytes(4, "big"))


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
        try:
            for k in range(0, n, 8):
                tables = _tables(k // 8, decoded)[: min(8, n - k)].copy()
                row, a, b = rng.integers(0, tables.shape[0]), rng.integers(0, N_SYM), rng.integers(0, N_SYM)
                if tables[row, a] > 1 and a != b:  # move one unit of probability
                    tables[row, a] -= 1
                    tables[row, b] += 1
                decoded = np.concatenate([decoded, dec.decode(tables)])
        except BitstreamError:  # the decoder ran out of data: caught early
            wrong += 1
            caught += 1
            continue
        if np.array_equal(decoded, symbols):
            continue  # the mismatch did not change any symbol: the result is still correct
        wrong += 1
        try:
            dec.finish()
            verify(c, _digest(decoded))
        except BitstreamError:
            caught += 1
    assert wrong > 0 and caught == wrong


def test_the_examples_of_the_spec() -> None:
    """docs/bitstream.md section 4, byte for byte."""
    freqs = np.array([[1, 3, 4, 8]] * 6)
    symbols = np.array([3, 0, 2, 1, 3, 3])
    enc = SymbolEncoder()
    enc.encode(symbols, freqs)
    payload = enc.finish()
    digest = symbols_digest(symbols)
    assert payload == bytes.fromhex("8268")
    assert pack(0x123456, 120, 160, payload, digest) == bytes.fromhex("D74D10123456007700 9F66738268".replace(" ", ""))
    assert pack(0x123456, 120, 160, payload, digest, k=3) == bytes.fromhex("D74D2012345602007700 9FA1EC8268".replace(" ", ""))
    padded = pack(0x123456, 512, 768, payload, digest, k=8)
    assert padded == bytes.fromhex("D74D2112345607 01FF02FF95FC8268".replace(" ", "") + "00" * 18 + "00000016")
    with pytest.raises(ValueError):
        pack(0x123456, 512, 768, payload, digest)


def test_version_4_header_round_trip_scale_zero_allowed_and_flags() -> None:
    """Version 4 = the version-3 layout with scale code 0 allowed; it marks portable tables."""
    for scale_code in (0, 3):
        data = pack(0x123456, 96, 136, b"payload!", b"sym", k=7, scale_code=scale_code, portable=True)
        c = unpack(data)
        assert (c.version, c.k, c.scale_code, c.portable, c.height, c.width) == (4, 7, scale_code, True, 96, 136)
        assert data[2] == 0x40 | (scale_code << 1) and len(data) == HEADER_SIZES[4] + 8
        verify(c, b"sym")
        with pytest.raises(BitstreamError, match="checksum"):
            verify(c, b"other")
    legacy = unpack(pack(0x123456, 96, 136, b"payload!", b"sym", k=7))
    assert (legacy.version, legacy.portable) == (2, False)
    with pytest.raises(ValueError, match="needs k"):
        pack(0x123456, 96, 136, b"payload!", b"", portable=True)
    bad = bytearray(pack(0x123456, 96, 136, b"payload!", b"", k=7, portable=True))
    bad[2] |= 0x10  # no version 5
    with pytest.raises(BitstreamError, match="version 5"):
        unpack(bytes(bad))
