"""Decoded pixels do not depend on the thread count beyond float rounding (issue 14), and
decoding leaves it as it was.

Before the fix, the generator's 1x1 convolutions with a bias ran through a different algorithm
with one thread than with several, and this 256x256 synthetic image decoded with 1 and with 2
threads differed by 1 in 7 pixels (kodim01: 15 to 28 pixels).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import structured_image

from mrt.codec import Codec
from mrt.models.threads import one_thread

# Decodes argv[1] with argv[2] threads and saves the pixels to argv[3] (a fresh interpreter, so
# that the thread count is the one the process started with, as for a user).
DECODE_SCRIPT = """
import sys
import numpy as np
import torch
from mrt.codec import decompress
from pathlib import Path
torch.set_num_threads(int(sys.argv[2]))
img = decompress(Path(sys.argv[1]).read_bytes())
assert torch.get_num_threads() == int(sys.argv[2])
np.save(sys.argv[3], img)
"""


def _decode_in_subprocess(mrt_file: Path, threads: int, out: Path) -> np.ndarray:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    subprocess.run(
        [sys.executable, "-c", DECODE_SCRIPT, str(mrt_file), str(threads), str(out)],
        env=env, check=True, timeout=600,
    )
    return np.load(out)


@pytest.fixture(scope="module")
def default_codec() -> Codec:
    return Codec.load()


def test_pixels_equal_with_one_and_two_threads(default_codec: Codec, tmp_path: Path) -> None:
    data = default_codec.compress(structured_image(256, 256, seed=0))
    mrt_file = tmp_path / "img.mrt"
    mrt_file.write_bytes(data)
    one = _decode_in_subprocess(mrt_file, 1, tmp_path / "one.npy")
    two = _decode_in_subprocess(mrt_file, 2, tmp_path / "two.npy")
    assert one.shape == two.shape == (256, 256, 3)
    # The symbols are thread-invariant: both decodes passed the checksum, which covers them
    # (and a fresh process each). The pixels come from float32 convolutions:
    # identical on the AVX2 machine, while oneDNN on AVX-512 splits some of them differently
    # between 1 and 2 threads, so rounding may move a few pixels by one grey level.
    diff = np.abs(one.astype(np.int16) - two.astype(np.int16))
    differing = int((diff > 0).any(axis=-1).sum())
    assert diff.max() <= 1 and differing <= 0.01 * 256 * 256, f"{differing} pixels differ, max {diff.max()}"


def test_decoding_leaves_the_thread_count_unchanged(default_codec: Codec) -> None:
    data = default_codec.compress(structured_image(64, 64, seed=1))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        default_codec.decompress(data)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_one_thread_restores_the_setting_after_an_error() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with pytest.raises(RuntimeError, match="inside"):
            with one_thread():
                assert torch.get_num_threads() == 1
                raise RuntimeError("inside")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("latent_up", ["shuffle", "resize"])
def test_latent_decoder_of_a_large_image_is_the_same_with_one_and_two_threads(latent_up: str) -> None:
    """Above TILE_PIXELS the decoder runs the latent decoder with the caller's threads; its 1x1
    convolutions add their bias after (``pointwise``) so that the latent stays the same (with
    either upsampling, ``target.latent_up``)."""
    from mrt.models.codec_model import TILE_PIXELS
    from mrt.models.config import TargetConfig
    from mrt.models.generator import LatentDecoder
    from mrt.models.threads import pointwise

    torch.manual_seed(0)
    dec = LatentDecoder(TargetConfig(latent_up=latent_up)).eval()  # type: ignore[arg-type]
    for m in dec.modules():  # non-zero residual branches (conv2 starts at zero)
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=0.05)
            torch.nn.init.normal_(m.bias, std=0.05)
    codes = torch.randn(1, 16, 72, 68).sign()  # a 1152x1088 image
    assert 72 * 16 * 68 * 16 > TILE_PIXELS
    before = torch.get_num_threads()
    try:
        with torch.inference_mode():
            torch.set_num_threads(1)
            one = dec(codes)
            torch.set_num_threads(2)
            two = dec(codes)
            torch.testing.assert_close(pointwise(dec.stem, codes), dec.stem(codes), atol=1e-5, rtol=1e-5)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)
