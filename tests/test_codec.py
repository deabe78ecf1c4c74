"""The codec end to end with a tiny random model: round trips, rate, determinism, model files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_tiny_model, structured_image
from mrt.bitstream import HEADER_SIZES, unpack
from mrt.codec import Codec, list_models, open_for
from mrt.errors import BitstreamError, ImageError, ModelError
from mrt.models.modelfile import load_model_file, read_model_info, save_model_file


@pytest.fixture(scope="module")
def codec(tiny_model) -> Codec:
    return Codec.from_model(tiny_model)


@pytest.mark.parametrize(
    "shape", [(1, 1), (17, 33), (1000, 3), (3, 1000), (768, 512), (512, 768), (40, 3001)]
)
def test_round_trip_equals_eval_forward(codec: Codec, shape: tuple[int, int]) -> None:
    img = structured_image(*shape, seed=shape[0])
    data = codec.compress(img)
    out = codec.decompress(data)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out, codec.reconstruct(img))
    header = unpack(data)
    assert (header.height, header.width, header.model_id, header.version) == (shape[0], shape[1], codec.file_id, 4)


@pytest.mark.parametrize("kind", ["random", "structured", "flat"])
def test_file_size_matches_model_estimate(codec: Codec, kind: str) -> None:
    rng = np.random.default_rng(1)
    if kind == "random":
        img = rng.integers(0, 256, (256, 384, 3), dtype=np.uint8)
    elif kind == "structured":
        img = structured_image(256, 384)
    else:
        img = np.full((256, 384, 3), 90, np.uint8)
    rep = codec.encode(img)
    payload_bits = (len(rep.data) - HEADER_SIZES[4]) * 8
    assert rep.n_symbols == 24 * 8 * 2  # 24 windows x 8 tokens x 2 groups
    assert abs(payload_bits - rep.estimated_bits) <= 0.01 * rep.estimated_bits + 16


def test_same_bytes_across_threads_and_runs(codec: Codec) -> None:
    img = structured_image(130, 200, seed=3)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = codec.compress(img)
        torch.set_num_threads(2)
        b = codec.compress(img)
        c = codec.compress(img)
    finally:
        torch.set_num_threads(before)
    assert a == b == c
    assert torch.get_num_threads() == before


def test_decodes_in_another_process(tmp_path: Path, tiny_model_file: Path) -> None:
    codec = Codec.load(str(tiny_model_file))
    img = structured_image(70, 90, seed=5)
    data = codec.compress(img)
    (tmp_path / "x.mrt").write_bytes(data)
    script = (
        "import sys, numpy as np; from mrt.codec import Codec; "
        f"c = Codec.load({str(tiny_model_file)!r}); out = c.decompress(open(sys.argv[1], 'rb').read()); "
        "np.save(sys.argv[2], out)"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "x.mrt"), str(tmp_path / "y.npy")], check=True)
    assert np.array_equal(np.load(tmp_path / "y.npy"), codec.decompress(data))


def test_every_flipped_bit_and_truncation_is_refused(codec: Codec) -> None:
    img = structured_image(20, 30, seed=7)
    data = codec.compress(img)
    ref = codec.decompress(data)
    for cut in range(len(data)):
        with pytest.raises((BitstreamError, ModelError)):
            codec.decompress(data[:cut])
    for i in range(len(data) * 8):
        bad = bytearray(data)
        bad[i // 8] ^= 1 << (i % 8)
        try:
            out = codec.decompress(bytes(bad))
        except (BitstreamError, ModelError):
            continue
        assert np.array_equal(out, ref), f"bit {i} flipped gave a different image without an error"


def test_wrong_model_is_refused(codec: Codec) -> None:
    other = Codec.from_model(make_tiny_model(seed=1))
    data = codec.compress(structured_image(16, 16))
    with pytest.raises(ModelError, match="made by model"):
        other.decompress(data)


def test_bad_arrays_are_refused(codec: Codec) -> None:
    with pytest.raises(ImageError):
        codec.compress(np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageError):
        codec.compress(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageError):
        codec.compress(np.zeros((0, 4, 3), np.uint8))


def test_model_file_round_trip_and_ids(tiny_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = read_model_info(tiny_model_file)
    assert [v.name for v in info.variants] == ["tiny-k4", "tiny-k8"]
    assert info.default_variant == "tiny-k8"
    ids = {v.model_id for v in info.variants}
    assert len(ids) == 2 and all(0 <= i < 2**24 for i in ids)
    model, _, variant = load_model_file(tiny_model_file, "tiny-k4")
    assert model.k_code == 4 and variant.name == "tiny-k4"
    # the same weights and config always give the same ids
    again = save_model_file(model, tiny_model_file.with_name("again.mrtm"), {"tiny-k4": 4, "tiny-k8": 8}, "tiny-k8")
    assert {v.model_id for v in again.variants} == ids
    # a file names its model: open_for finds it on the search path without any flag
    monkeypatch.setenv("MRT_MODEL_PATH", str(tiny_model_file))
    small = Codec.load(f"{tiny_model_file}#tiny-k4")
    data = small.compress(structured_image(64, 64))
    assert open_for(data).info.path == small.info.path and unpack(data).k == 4
    assert any(m.name == "tiny-k8" for m in list_models())
    assert len(data) < len(Codec.load(str(tiny_model_file)).compress(structured_image(64, 64)))


def test_corrupt_model_file_is_refused(tmp_path: Path, tiny_model_file: Path) -> None:
    raw = bytearray(tiny_model_file.read_bytes())
    raw[-5] ^= 0xFF  # a weight byte
    bad = tmp_path / "bad.mrtm"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="hash mismatch"):
        load_model_file(bad)
    (tmp_path / "junk.mrtm").write_bytes(b"not a model")
    with pytest.raises(ModelError):
        Codec.load(str(tmp_path / "junk.mrtm"))
    with pytest.raises(ModelError, match="unknown model"):
        Codec.load("no-such-model")


def test_unknown_model_id_is_refused(codec: Codec, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MRT_MODEL_PATH", str(tmp_path))
    data = codec.compress(structured_image(8, 8))
    with pytest.raises(ModelError, match="not installed"):
        open_for(data)
