"""Files made before a change decode to the same image after it, and the encoder still makes them.

``tests/data/golden_v1_mrt-s-k16.mrt`` was written by the shipped ``mrt-s-k16`` (third release)
from ``golden_input.png`` (a 136x96 synthetic image: two windows, so the cross-window context is
exercised) before the structure refactor of issue 9; the checksums below were recorded then, with the
reference fp32 convolutions (``precision="fp32"``: bf16, the default where the CPU has it, changes
the pixels a little; mrt.models.inference).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mrt.codec import Codec, decompress
from mrt.io import load_image

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden_v1_mrt-s-k16.mrt"
INPUT = DATA / "golden_input.png"
FILE_SHA256_16 = "4707a0c10f6c9e37"  # first 16 hex digits of sha256(file bytes)
DECODED_SHA256 = "880ac8cf8b5f5ed0597569aee9891f8ca7ce73776fbce2a971ad75769a922ce2"  # of the uint8 pixels
BITS_SHA256_16 = "c1c64ecdf433ab9b"  # of the decoded token bits as uint8 [1, nW, K, d]




def test_golden_file_is_the_committed_one() -> None:
    data = GOLDEN.read_bytes()
    assert len(data) == 62
    assert hashlib.sha256(data).hexdigest()[:16] == FILE_SHA256_16


def test_golden_file_decodes_to_the_recorded_image(one_thread: None) -> None:
    data = GOLDEN.read_bytes()
    out = decompress(data, precision="fp32")  # finds the model by the id in the header
    assert out.shape == (96, 136, 3) and out.dtype == np.uint8
    assert hashlib.sha256(out.tobytes()).hexdigest() == DECODED_SHA256
    bits, h, w = Codec.load("mrt-s-k16", precision="fp32").decode_symbols(data)
    assert (h, w) == (96, 136)
    assert hashlib.sha256(bits.numpy().astype(np.uint8).tobytes()).hexdigest()[:16] == BITS_SHA256_16


def test_encoder_still_writes_the_golden_bytes(one_thread: None) -> None:
    img = load_image(INPUT)
    assert Codec.load("mrt-s-k16", precision="fp32").compress(img) == GOLDEN.read_bytes()
