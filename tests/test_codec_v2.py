"""File format version 2 through the codec: a committed file, model lookup, k per file, padding.

``tests/data/golden_v2_mrt-s_k5.mrt`` was written by the shipped model (third release of
``mrt-s``) from ``golden_input.png`` at 5 tokens per window, a rate no variant has, so the
file is version 2 (the first format version that states k). The checksums were recorded then.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from conftest import structured_image
from mrt.bitstream import HEADER_SIZES, min_body_bytes, pack, symbols_digest, unpack
from mrt.codec import Codec, decompress, open_for
from mrt.errors import BitstreamError, ModelError
from mrt.io import load_image

DATA = Path(__file__).parent / "data"
GOLDEN_V2 = DATA / "golden_v2_mrt-s_k5.mrt"
GOLDEN_V1 = DATA / "golden_v1_mrt-s-k16.mrt"
INPUT = DATA / "golden_input.png"
FILE_SHA256_16 = "23b1a4b8d1fd71b4"
DECODED_SHA256 = "b7d2dcc5281fdc332c1dd73b35f8f5754e4331fc2e2013cc156118876ec71bc8"
BITS_SHA256_16 = "ab21bcebdbabb4e1"  # decoded token bits as uint8 [1, 2, 5, 16]
V1_DECODED_SHA256 = "880ac8cf8b5f5ed0597569aee9891f8ca7ce73776fbce2a971ad75769a922ce2"  # test_codec_golden
MRT_S_FILE_ID = 0x5730AF  # model_id(config, weights sha256) of src/mrt/weights/mrt-s.mrtm




def _sha(a: bytes) -> str:
    return hashlib.sha256(a).hexdigest()


def test_golden_v2_file_is_the_committed_one() -> None:
    data = GOLDEN_V2.read_bytes()
    assert len(data) == 32 and _sha(data)[:16] == FILE_SHA256_16
    c = unpack(data)
    assert (c.version, c.model_id, c.k, c.height, c.width, c.padding) == (2, MRT_S_FILE_ID, 5, 96, 136, b"")


def test_golden_v2_file_decodes_to_the_recorded_image(one_thread: None) -> None:
    data = GOLDEN_V2.read_bytes()
    out = decompress(data)  # finds the model file by its id, whatever variant is the default
    assert out.shape == (96, 136, 3) and _sha(out.tobytes()) == DECODED_SHA256
    for name in ("mrt-s-k8", "mrt-s-k16", "mrt-s-k32"):  # every variant of the file decodes it
        bits, h, w = Codec.load(name).decode_symbols(data)
        assert (h, w) == (96, 136) and bits.shape == (1, 2, 5, 16)
        assert _sha(bits.numpy().astype(np.uint8).tobytes())[:16] == BITS_SHA256_16


def test_encoder_still_writes_the_golden_v2_bytes(one_thread: None) -> None:
    img = load_image(INPUT)
    expected = GOLDEN_V2.read_bytes()
    assert Codec.load("mrt-s-k16").compress(img, k=5) == expected
    assert Codec.load("mrt-s-k8").compress(img, k=5) == expected  # the file, not the variant, is named


def test_a_variant_rate_is_written_as_version_1(one_thread: None) -> None:
    """k = 8 is the rate of mrt-s-k8: any variant writes it as that variant's version-1 file."""
    img = load_image(INPUT)
    k8 = Codec.load("mrt-s-k8")
    data = Codec.load("mrt-s-k16").compress(img, k=8)
    assert data == k8.compress(img)
    c = unpack(data)
    assert (c.version, c.model_id, c.k) == (1, k8.model_id, None)
    assert Codec.load("mrt-s-k32").encode(img).k == 32  # a variant's own k by default


def test_v1_payload_restated_as_v2_decodes_identically(one_thread: None) -> None:
    """The golden v1 payload in a v2 container (file id + k = 16) decodes to the same image."""
    v1 = GOLDEN_V1.read_bytes()
    codec = Codec.load("mrt-s-k16")
    c1 = unpack(v1)
    bits, _, _ = codec.decode_symbols(v1)
    symbols = codec.model.rcm.encode(bits[0]).symbols
    v2 = pack(codec.file_id, c1.height, c1.width, c1.payload, symbols_digest(symbols), k=16)
    assert len(v2) == len(v1) + 1 and v2[2] == 0x20
    assert _sha(decompress(v2).tobytes()) == V1_DECODED_SHA256
    wrong_k = pack(codec.file_id, c1.height, c1.width, c1.payload, symbols_digest(symbols), k=15)
    with pytest.raises(BitstreamError):
        decompress(wrong_k)
    too_many = pack(codec.file_id, c1.height, c1.width, c1.payload + bytes(20), b"", k=33)
    with pytest.raises(BitstreamError, match="33 tokens per window; the model has 32"):
        decompress(too_many)


def test_model_file_ids_are_stable_and_distinct() -> None:
    codec = Codec.load("mrt-s-k16")
    assert codec.file_id == codec.info.file_id == MRT_S_FILE_ID
    ids = {v.model_id for v in codec.info.variants}
    assert ids == {0xAF955A, 0xE94731, 0xAC1A95} and MRT_S_FILE_ID not in ids


# ----------------------------------------------------------------------------- tiny model


def test_tiny_model_v2_round_trip_and_lookup(tiny_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MRT_MODEL_PATH", str(tiny_model_file))
    codec = Codec.load(f"{tiny_model_file}#tiny-k4")
    img = structured_image(70, 150, seed=2)
    for k in range(1, codec.max_tokens + 1):
        rep = codec.encode(img, k=k)
        c = unpack(rep.data)
        assert rep.k == k and c.version == (1 if k in (4, 8) else 2)
        found = open_for(rep.data)
        assert found.info.path == codec.info.path
        out = decompress(rep.data)
        assert np.array_equal(out, codec.model.decode_bits(codec.decode_symbols(rep.data)[0], 70, 150))
    with pytest.raises(ValueError, match="k must be in 1..8"):
        codec.encode(img, k=9)


def test_another_models_v2_file_is_refused(tiny_model_file: Path) -> None:
    codec = Codec.load(str(tiny_model_file))
    data = codec.compress(structured_image(40, 40), k=3)
    other = Codec.load("mrt-s-k16")
    with pytest.raises(ModelError, match="made by model"):
        other.decompress(data)


def test_unknown_v2_model_names_the_installed_files(tiny_model_file: Path, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    data = Codec.load(str(tiny_model_file)).compress(structured_image(40, 40), k=3)
    monkeypatch.setenv("MRT_MODEL_PATH", str(tmp_path))
    with pytest.raises(ModelError, match=f"installed: mrt-s={MRT_S_FILE_ID:06x}"):
        open_for(data)


def test_padding_path_end_to_end(tiny_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a (test-only) floor of 64 bits per token, every payload is short: files are padded
    version-2 files, even at a variant's k, and decode exactly as without padding."""
    codec = Codec.load(str(tiny_model_file))
    img = structured_image(200, 260, seed=4)
    plain = codec.compress(img)
    expected = codec.decompress(plain)
    monkeypatch.setattr("mrt.bitstream.limits.FLOOR_BITS_PER_TOKEN", 64)
    padded = codec.compress(img)
    c = unpack(padded)
    assert c.version == 2 and c.padding and c.k == codec.model.k_code
    assert len(padded) - HEADER_SIZES[2] >= min_body_bytes(200, 260, c.k) > len(c.payload)
    assert c.payload == unpack(plain).payload
    assert np.array_equal(codec.decompress(padded), expected)
    with pytest.raises(BitstreamError):  # the padding is checked and covered by the checksum
        codec.decompress(padded[:-5] + b"\x01" + padded[-4:])
    with pytest.raises(BitstreamError, match="needs at least"):  # a version-1 file under this floor
        codec.decompress(plain)
