"""The Pillow plugin (``mrt.pillow``): open, ``.info``, save, laziness and errors, with a tiny model."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import mrt.pillow  # noqa: F401 - registers the format
from conftest import structured_image
from mrt.bitstream import unpack
from mrt.codec import MODEL_PATH_ENV, Codec
from mrt.errors import BitstreamError
from mrt.pillow import MRTDecodeError, MRTOpenError


@pytest.fixture()
def installed(tiny_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> Codec:
    """The tiny model file on the model search path (so files name an installed model)."""
    monkeypatch.setenv(MODEL_PATH_ENV, str(tiny_model_file))  # the file itself: other tests add files to its folder
    return Codec.load("tiny-k8")


@pytest.fixture()
def mrt_file(installed: Codec, tmp_path: Path) -> Path:
    path = tmp_path / "photo.mrt"
    path.write_bytes(installed.compress(structured_image(40, 72, seed=2)))
    return path


def test_open_decodes_like_the_codec(installed: Codec, mrt_file: Path) -> None:
    data = mrt_file.read_bytes()
    with Image.open(mrt_file) as im:
        assert (im.format, im.mode, im.size) == ("MRT", "RGB", (72, 40))
        assert im.get_format_mimetype() == "image/x-mrt"
        arr = np.asarray(im)
    assert np.array_equal(arr, installed.decompress(data))
    with Image.open(io.BytesIO(data)) as im:  # a stream works too
        assert np.array_equal(np.asarray(im.convert("RGB")), arr)


def test_info_fields(installed: Codec, mrt_file: Path) -> None:
    data = mrt_file.read_bytes()
    header = unpack(data)
    with Image.open(mrt_file) as im:
        info = dict(im.info)
        assert info["model_id"] == installed.file_id == header.model_id  # version 4 names the model file
        assert (info["width"], info["height"]) == (72, 40)
        assert info["file_size"] == len(data) and info["payload_bytes"] == len(header.payload)
        assert info["bpp"] == pytest.approx(8 * len(data) / (72 * 40))
        assert info["mrt_version"] == header.version == 4
        assert "model" not in info and info["n_tokens"] == 8  # the model's name needs the model file
        im.load()
        assert im.info["model"] == "tiny" and im.info["n_tokens"] == 8


def test_budget_files_record_their_tokens(installed: Codec, tmp_path: Path) -> None:
    img = structured_image(40, 72, seed=2)
    full = len(installed.compress(img))
    out = tmp_path / "budget.mrt"
    Image.fromarray(img).save(out, model="tiny-k8", max_bytes=full - 2)
    data = out.read_bytes()
    header = unpack(data)
    assert len(data) <= full - 2 and data == installed.compress(img, max_bytes=full - 2)
    with Image.open(out) as im:
        if header.version >= 2:  # tokens per window in the header, model named by its file
            assert im.info["n_tokens"] == header.k and im.info["model_id"] == installed.file_id
        arr = np.asarray(im)
        assert im.info["model"] in ("tiny", "tiny-k4", "tiny-k8")
    assert np.array_equal(arr, installed.decompress(data))


def test_save_round_trip(installed: Codec, tmp_path: Path) -> None:
    img = structured_image(48, 64, seed=5)
    out = tmp_path / "saved.mrt"
    Image.fromarray(img).save(out, model="tiny-k8")
    data = out.read_bytes()
    assert data == installed.compress(img)
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im), installed.decompress(data))
    buf = io.BytesIO()  # format by name, a loaded codec passed through
    Image.fromarray(img).save(buf, format="MRT", codec=installed)
    assert buf.getvalue() == data
    rgba = Image.fromarray(img).convert("RGBA")  # other modes go through mrt.io's conversion
    buf = io.BytesIO()
    rgba.save(buf, format="MRT", codec=installed)
    assert buf.getvalue() == data


def test_import_does_not_load_torch(mrt_file: Path) -> None:
    code = (
        "import sys, mrt.pillow\n"
        "from PIL import Image\n"
        f"im = Image.open({str(mrt_file)!r})\n"
        "assert im.size == (72, 40) and im.info['model_id'] > 0\n"
        "print('torch' in sys.modules)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_other_files_are_not_claimed(tmp_path: Path) -> None:
    png = tmp_path / "x.png"
    Image.fromarray(structured_image(8, 8)).save(png)
    with Image.open(png) as im:
        assert im.format == "PNG"
    junk = tmp_path / "junk.mrt"
    junk.write_bytes(b"this is not an image file at all")
    with pytest.raises(UnidentifiedImageError) as err:
        Image.open(junk)
    assert not isinstance(err.value, BitstreamError)


def test_corrupt_files_are_refused_cleanly(installed: Codec, mrt_file: Path, tmp_path: Path) -> None:
    data = mrt_file.read_bytes()
    short = tmp_path / "short.mrt"
    short.write_bytes(data[:7])  # magic bytes, truncated header
    with pytest.raises(MRTOpenError, match="truncated") as err:
        Image.open(short)
    assert isinstance(err.value, UnidentifiedImageError) and isinstance(err.value, BitstreamError)
    flipped = bytearray(data)
    flipped[-1] ^= 0x55
    bad = tmp_path / "bad.mrt"
    bad.write_bytes(bytes(flipped))
    with Image.open(bad) as im:  # the header is fine: opening works, decoding fails
        assert im.size == (72, 40)
        with pytest.raises(MRTDecodeError, match="bad.mrt") as err2:
            im.load()
    assert isinstance(err2.value, OSError)
