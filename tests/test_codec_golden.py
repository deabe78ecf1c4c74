"""Files made before a change decode to the same image after it, and the encoder still makes them.

``tests/data/golden_v4_mrt-s_k16.mrt`` was written by the shipped ``mrt-s-k16`` (third release)
from ``golden_input.png`` (a 136x96 synthetic image: two windows, so the cross-window context is
exercised) in format version 4, whose portable tables make a file decode to the same symbols on
every machine: its token bits are pinned by a hash everywhere. Decoded *pixels* come from float32
convolutions, whose last bits differ between CPUs, so they are pinned to the recorded image
(``golden_v4_decoded.png``, decoded with the reference fp32 convolutions) within one grey level.

``tests/data/golden_v1_mrt-s-k16.mrt`` (version 1, float32 tables) was written before the
structure refactor of issue 9 on an AVX2 machine. Such files decode only where the float32
tables come out the same; elsewhere they must be refused by the checksum, never decoded wrong
(:func:`decode_legacy`). Its token bits were the same as the version-4 file's (same encoder).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from mrt.bitstream import unpack
from mrt.codec import Codec, decompress
from mrt.errors import BitstreamError
from mrt.io import load_image

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden_v4_mrt-s_k16.mrt"
GOLDEN_V1 = DATA / "golden_v1_mrt-s-k16.mrt"
DECODED = DATA / "golden_v4_decoded.png"
INPUT = DATA / "golden_input.png"
FILE_SHA256_16 = "f972c1700725b354"  # first 16 hex digits of sha256(file bytes)
V1_FILE_SHA256_16 = "4707a0c10f6c9e37"
V1_DECODED_SHA256 = "880ac8cf8b5f5ed0597569aee9891f8ca7ce73776fbce2a971ad75769a922ce2"  # on the AVX2 machine
BITS_SHA256_16 = "c1c64ecdf433ab9b"  # of the decoded token bits as uint8 [1, nW, K, d] (both files)


def _sha(a: bytes) -> str:
    return hashlib.sha256(a).hexdigest()


def decode_legacy(data: bytes) -> np.ndarray | None:
    """A version 1-3 file decoded (fp32), or None when this machine's float32 tables are not the
    writer's and the checksum refuses it; any other outcome fails the test."""
    assert unpack(data).version in (1, 2, 3)
    try:
        return decompress(data, precision="fp32")
    except BitstreamError as err:
        assert "checksum" in str(err) or "corrupt" in str(err), err
        return None


def test_golden_files_are_the_committed_ones() -> None:
    data = GOLDEN.read_bytes()
    assert len(data) == 63 and data[2] >> 4 == 4
    assert _sha(data)[:16] == FILE_SHA256_16
    assert _sha(GOLDEN_V1.read_bytes())[:16] == V1_FILE_SHA256_16


def test_golden_file_decodes_to_the_recorded_symbols_and_image(one_thread: None) -> None:
    data = GOLDEN.read_bytes()
    out = decompress(data, precision="fp32")  # finds the model by the id in the header
    assert out.shape == (96, 136, 3) and out.dtype == np.uint8
    ref = load_image(DECODED)
    diff = np.abs(out.astype(np.int16) - ref.astype(np.int16))
    assert diff.max() <= 1 and diff.mean() < 0.05, (diff.max(), diff.mean())
    bits, h, w = Codec.load("mrt-s-k16", precision="fp32").decode_symbols(data)
    assert (h, w) == (96, 136)
    assert _sha(bits.numpy().astype(np.uint8).tobytes())[:16] == BITS_SHA256_16


def test_encoder_still_writes_the_golden_bytes(one_thread: None) -> None:
    """Where the encoder's float32 convolutions give the recorded tokens (every machine tried so
    far), it writes the golden bytes; any file it writes decodes to its own tokens."""
    img = load_image(INPUT)
    codec = Codec.load("mrt-s-k16", precision="fp32")
    data = codec.compress(img)
    bits = codec.model.encode_bits(img)
    assert np.array_equal(codec.decode_symbols(data)[0].numpy(), bits.numpy())
    if _sha(bits.numpy().astype(np.uint8).tobytes())[:16] == BITS_SHA256_16:
        assert data == GOLDEN.read_bytes()


def test_legacy_v1_file_decodes_to_the_recorded_image_or_is_refused(one_thread: None) -> None:
    out = decode_legacy(GOLDEN_V1.read_bytes())
    if out is not None:  # a machine with the writer's float32 arithmetic
        assert _sha(out.tobytes()) == V1_DECODED_SHA256


@pytest.mark.parametrize("k", [1, 5, 32])
def test_version_4_payload_is_as_small_as_the_float_tables(k: int, one_thread: None) -> None:
    """The portable tables cost nothing measurable: the same tokens coded with the float32 tables
    of versions 1-3 take at most one byte less."""
    img = load_image(INPUT)
    codec = Codec.load("mrt-s-k32", precision="fp32")
    bits = codec.model.encode_bits(img, k)[0]
    portable = codec.model.rcm.encode(bits, portable=True)
    legacy = codec.model.rcm.encode(bits)
    assert abs(len(portable.payload) - len(legacy.payload)) <= 1 + 0.005 * len(legacy.payload)
    assert np.array_equal(portable.symbols, legacy.symbols)
