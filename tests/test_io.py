"""mrt.io: image loading/conversion rules, size limits before decoding, atomic writes."""

from __future__ import annotations

import io
import os
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from mrt.errors import FirstFrameWarning, ImageError, MRTError
from mrt.io import (
    OutputExistsError,
    UnsafeOutputError,
    apply_orientation,
    atomic_write,
    atomic_write_bytes,
    check_output_path,
    load_image,
    save_image,
)


def _png_bytes(im: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG written by hand (filter 0 on every row already included in ``rows``)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def _png16(arr: np.ndarray, color_type: int) -> bytes:
    """16-bit PNG from uint16 (H, W, C)."""
    height, width = arr.shape[:2]
    rows = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(height))
    return _raw_png(width, height, 16, color_type, rows)


def _round16(v: np.ndarray) -> np.ndarray:
    return np.round(v.astype(np.float64) * 255 / 65535).astype(np.uint8)


RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 10, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- modes


def test_rgb_png_exact(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(_png_bytes(Image.fromarray(RGB)))
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (6, 10, 3)
    np.testing.assert_array_equal(out, RGB)
    np.testing.assert_array_equal(load_image(str(path)), RGB)
    np.testing.assert_array_equal(load_image(path.read_bytes()), RGB)


def test_grayscale_replicated() -> None:
    gray = RGB[..., 0]
    out = load_image(_png_bytes(Image.fromarray(gray, mode="L")))
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))
    bilevel = Image.fromarray(gray > 128).convert("1")
    out = load_image(_png_bytes(bilevel))
    assert set(np.unique(out)) <= {0, 255} and out.shape == (6, 10, 3)


def test_rgba_composited_on_white() -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., :3] = [200, 100, 0]
    rgba[..., 3] = [[0, 128, 255], [255, 64, 0]]
    out = load_image(_png_bytes(Image.fromarray(rgba, mode="RGBA")))
    a = rgba[..., 3:].astype(np.float64) / 255
    expected = np.round(rgba[..., :3] * a + 255 * (1 - a)).astype(np.uint8)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])  # fully transparent -> white
    np.testing.assert_array_equal(out[0, 2], [200, 100, 0])  # opaque -> unchanged


def test_la_and_palette_with_transparency() -> None:
    la = Image.fromarray(np.dstack([RGB[..., 0], np.full((6, 10), 0, np.uint8)]), mode="LA")
    np.testing.assert_array_equal(load_image(_png_bytes(la)), np.full((6, 10, 3), 255, np.uint8))
    pal = Image.new("P", (4, 2))
    pal.putpalette([10, 20, 30, 200, 150, 100] + [0] * 762)
    pal.putdata([0, 1, 0, 1, 1, 0, 1, 0])
    out = load_image(_png_bytes(pal, transparency=0))
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])  # index 0 is transparent
    np.testing.assert_array_equal(out[0, 1], [200, 150, 100])
    out = load_image(_png_bytes(pal))  # no transparency: plain palette lookup
    np.testing.assert_array_equal(out[0, 0], [10, 20, 30])


def test_colour_key_transparency() -> None:
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = [10, 20, 30]
    rgb[1, 1] = [50, 60, 70]
    out = load_image(_png_bytes(Image.fromarray(rgb), transparency=(10, 20, 30)))
    np.testing.assert_array_equal(out, [[[255] * 3, [0] * 3], [[0] * 3, [50, 60, 70]]])
    gray = np.array([[5, 6], [7, 8]], dtype=np.uint8)
    out = load_image(_png_bytes(Image.fromarray(gray), transparency=6))
    np.testing.assert_array_equal(out[..., 0], [[5, 255], [7, 8]])


def test_16bit_gray_png_scaled_not_clipped() -> None:
    values = np.array([[0, 181, 257, 32767], [32896, 60000, 65534, 65535]], dtype=np.uint16)
    out = load_image(_png16(values[..., None], color_type=0))
    np.testing.assert_array_equal(out[..., 0], _round16(values))
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    # Through Pillow's own 16-bit writer as well (mode I;16).
    out = load_image(_png_bytes(Image.fromarray(values)))
    np.testing.assert_array_equal(out[..., 0], _round16(values))


def test_16bit_rgb_and_rgba_png_rounded() -> None:
    pytest.importorskip("imagecodecs")
    rgb16 = RNG.integers(0, 65536, (5, 7, 3)).astype(np.uint16)
    rgb16[0, 0] = [181, 32767, 65535]  # truncation (v >> 8) would give 0, 127, 255
    out = load_image(_png16(rgb16, color_type=2))
    np.testing.assert_array_equal(out, _round16(rgb16))
    assert list(out[0, 0]) == [1, 127, 255]
    rgba16 = np.dstack([rgb16, np.full((5, 7), 65535, np.uint16)])
    rgba16[0, 1, 3] = 0
    out = load_image(_png16(rgba16, color_type=6))
    expected = _round16(rgb16)
    expected[0, 1] = 255
    np.testing.assert_array_equal(out, expected)


def test_heic_when_pillow_heif_is_installed() -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    heif = pillow_heif.from_bytes(mode="RGB", size=(16, 8), data=bytes([90, 120, 150]) * 128)
    buf = io.BytesIO()
    try:
        heif.save(buf, quality=95)
    except Exception as err:  # noqa: BLE001 - no HEVC encoder in this build
        pytest.skip(f"pillow-heif cannot encode here: {err}")
    out = load_image(buf.getvalue())
    assert out.shape == (8, 16, 3)
    assert np.abs(out.astype(int) - [90, 120, 150]).mean() < 8


def test_float_and_int32_tiff() -> None:
    f = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    buf = io.BytesIO()
    Image.fromarray(f, mode="F").save(buf, format="TIFF")
    out = load_image(buf.getvalue())
    np.testing.assert_array_equal(out[..., 0], np.round(f * 255).astype(np.uint8))
    i = (np.arange(12, dtype=np.int32) * 5000).reshape(3, 4)
    buf = io.BytesIO()
    Image.fromarray(i, mode="I").save(buf, format="TIFF")
    out = load_image(buf.getvalue())
    np.testing.assert_array_equal(out[..., 0], _round16(i))


def test_cmyk_jpeg() -> None:
    buf = io.BytesIO()
    Image.fromarray(RGB).convert("CMYK").save(buf, format="JPEG", quality=95)
    out = load_image(buf.getvalue())
    assert out.shape == (6, 10, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation: int) -> None:
    im = Image.fromarray(RGB)
    exif = im.getexif()
    exif[0x0112] = orientation
    data = _png_bytes(im, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    out = load_image(data)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(apply_orientation(RGB, orientation), expected)


def test_exif_rotated_jpeg_is_upright() -> None:
    # Stored image 16 wide x 8 high, left half red; orientation 6 = display rotated 90 deg CW.
    stored = np.zeros((8, 16, 3), dtype=np.uint8)
    stored[:, :8] = [255, 0, 0]
    stored[:, 8:] = [0, 0, 255]
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95, exif=exif)
    out = load_image(buf.getvalue())
    assert out.shape == (16, 8, 3)  # upright: 8 wide x 16 high
    assert out[2, 4, 0] > 200 and out[2, 4, 2] < 50  # red now on top
    assert out[13, 4, 2] > 200 and out[13, 4, 0] < 50  # blue at the bottom


# ----------------------------------------------------------------------------- refusals


def test_not_an_image(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("hello, not an image")
    with pytest.raises(ImageError) as info:
        load_image(text)
    assert str(info.value) == f"cannot read '{text}': not a supported image"
    with pytest.raises(ImageError, match="not a supported image"):
        load_image(b"")
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_truncated_png() -> None:
    data = _png_bytes(Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


@pytest.mark.parametrize("side", [100000, 12000])
def test_huge_header_refused_before_decoding(side: int) -> None:
    # IHDR declares side x side; the IDAT holds nothing. Decoding would need side*side*3 bytes.
    data = _raw_png(side, side, 8, 2, b"")
    limit_before = Image.MAX_IMAGE_PIXELS
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape
        with pytest.raises(ImageError) as info:
            load_image(data)
    assert time.process_time() - start < 1.0
    assert f"image is {side}x{side} pixels; the limit is" in str(info.value)
    assert Image.MAX_IMAGE_PIXELS == limit_before


def test_max_pixels_argument() -> None:
    data = _png_bytes(Image.fromarray(RGB))
    with pytest.raises(ImageError, match="image is 10x6 pixels; the limit is 59 pixels"):
        load_image(data, max_pixels=59)
    assert load_image(data, max_pixels=60).shape == (6, 10, 3)


# ----------------------------------------------------------------------------- writing


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_and_no_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    atomic_write_bytes(path, b"first")
    assert path.read_bytes() == b"first"
    with pytest.raises(OutputExistsError, match="already exists"):
        atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"first"
    atomic_write_bytes(path, b"third", force=True)
    assert path.read_bytes() == b"third"
    assert _leftovers(tmp_path) == []
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_atomic_write_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    path = tmp_path / "new.bin"
    with pytest.raises(MRTError, match="No space left"):
        atomic_write_bytes(path, b"data")
    assert not path.exists()
    old = tmp_path / "old.bin"
    old.write_bytes(b"old")
    with pytest.raises(MRTError):
        atomic_write_bytes(old, b"new", force=True)
    assert old.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_atomic_write_bad_targets(tmp_path: Path) -> None:
    with pytest.raises(MRTError, match="cannot write"):
        atomic_write_bytes(tmp_path / "no" / "such" / "dir.bin", b"x")
    with pytest.raises(MRTError, match="directory"):
        atomic_write_bytes(tmp_path, b"x", force=True)


def test_save_image_formats(tmp_path: Path) -> None:
    save_image(RGB, tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), RGB)
    save_image(RGB, tmp_path / "a.jpg")
    assert Image.open(tmp_path / "a.jpg").format == "JPEG"
    save_image(RGB, tmp_path / "noext")
    assert Image.open(tmp_path / "noext").format == "PNG"
    with pytest.raises(ImageError, match="cannot save"):
        save_image(RGB, tmp_path / "a.xyz")
    with pytest.raises(OutputExistsError):
        save_image(RGB, tmp_path / "a.png")
    save_image(RGB[:2], tmp_path / "a.png", force=True)
    assert load_image(tmp_path / "a.png").shape == (2, 10, 3)
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- special outputs (issue 14)


@pytest.mark.parametrize("force", [False, True])
def test_atomic_write_refuses_a_fifo(tmp_path: Path, force: bool) -> None:
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeOutputError, match=r"named pipe \(FIFO\), not a regular file"):
        atomic_write_bytes(fifo, b"x", force=force)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert _leftovers(tmp_path) == []
    link = tmp_path / "link"
    link.symlink_to(fifo)
    with pytest.raises(UnsafeOutputError, match="symbolic link to a named pipe"):
        atomic_write_bytes(link, b"x", force=force)
    assert link.is_symlink()


@pytest.mark.parametrize("force", [False, True])
def test_atomic_write_refuses_a_character_device(tmp_path: Path, force: bool) -> None:
    import stat

    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    device = tmp_path / "full"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # a copy of /dev/full
    except PermissionError:
        pytest.skip("this container does not allow mknod (no CAP_MKNOD)")
    with pytest.raises(UnsafeOutputError, match="character device"):
        atomic_write_bytes(device, b"x", force=force)
    with pytest.raises(UnsafeOutputError, match="character device"):
        save_image(RGB, device, force=force)
    assert stat.S_ISCHR(device.lstat().st_mode)
    assert _leftovers(tmp_path) == []


def test_atomic_write_replaces_a_symlink_not_its_target(tmp_path: Path) -> None:
    target = tmp_path / "target.bin"
    target.write_bytes(b"target")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    with pytest.raises(OutputExistsError):
        atomic_write_bytes(link, b"new")
    atomic_write_bytes(link, b"new", force=True)
    assert not link.is_symlink() and link.read_bytes() == b"new"
    assert target.read_bytes() == b"target"
    dangling = tmp_path / "dangling.bin"
    dangling.symlink_to(tmp_path / "nowhere")
    for force in (False, True):
        with pytest.raises(UnsafeOutputError, match="symbolic link to nothing"):
            atomic_write_bytes(dangling, b"x", force=force)
    assert dangling.is_symlink()


def test_the_path_is_checked_again_before_it_is_replaced(tmp_path: Path) -> None:
    """A FIFO that appears while the output is being written is not replaced either."""
    path = tmp_path / "late"
    with pytest.raises(UnsafeOutputError):
        with atomic_write(path, force=True) as fh:
            fh.write(b"x")
            os.mkfifo(path)
    assert _leftovers(tmp_path) == []
    check_output_path(tmp_path / "missing", force=False)  # a new file is fine
    with pytest.raises(UnsafeOutputError, match="directory"):
        check_output_path(tmp_path, force=True)


# ----------------------------------------------------------------------------- animated inputs (issue 14)


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png", ".tif"])
def test_animated_input_warns_and_gives_the_first_frame(tmp_path: Path, suffix: str) -> None:
    frames = [Image.fromarray(np.full((6, 8, 3), 100 * i, np.uint8)) for i in range(3)]
    path = tmp_path / f"anim{suffix}"
    extra = {"lossless": True} if suffix == ".webp" else {}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, **extra)
    with pytest.warns(FirstFrameWarning, match=r"has 3 frames; only the first is used"):
        arr = load_image(path)
    np.testing.assert_array_equal(arr, np.zeros((6, 8, 3), np.uint8))
    single = tmp_path / f"single{suffix}"
    frames[1].save(single, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FirstFrameWarning)
        assert load_image(single)[0, 0, 0] == 100
