"""mrt CLI (compress/decompress/info/models, main): paths, folders, --force, atomicity, errors.

The real codec is replaced by a small lossless fake (zlib-compressed pixels in a real MRT
container) injected as ``mrt.codec``, so these tests exercise only the CLI logic.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import types
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrt.bitstream import pack, unpack, verify
from mrt.cli.main import COMMANDS, build_parser, main, requested_command
from mrt.errors import BitstreamError, ModelError

FAKE_ID = 0x00ABCD


def _digest(img: np.ndarray) -> bytes:
    return hashlib.sha256(img.tobytes()).digest()[:8]


class FakeCodec:
    """Lossless stand-in for mrt.codec.Codec."""

    name = "fake-tiny"
    model_id = FAKE_ID
    loads: list[str | None] = []

    @classmethod
    def load(cls, name_or_path: str | None = None, precision: str = "auto") -> "FakeCodec":
        cls.loads.append(name_or_path)
        if name_or_path not in (None, "fake-tiny"):
            raise ModelError(f"unknown model '{name_or_path}' (see 'mrt models')")
        return cls()

    def compress(self, img: np.ndarray) -> bytes:
        height, width = img.shape[:2]
        return pack(self.model_id, height, width, zlib.compress(img.tobytes(), 9), _digest(img))

    def decompress(self, data: bytes) -> np.ndarray:
        c = unpack(data)
        try:
            raw = zlib.decompress(c.payload)
        except zlib.error:
            raise BitstreamError("corrupt or truncated file (bad payload)") from None
        if len(raw) != c.height * c.width * 3:
            raise BitstreamError("corrupt or truncated file (bad size)")
        img = np.frombuffer(raw, dtype=np.uint8).reshape(c.height, c.width, 3)
        verify(c, _digest(img))
        return img


@dataclass
class FakeModelInfo:
    name: str
    model_id: int
    description: str
    n_tokens: int
    bits: int
    params: int
    file_size: int


def _open_for(data: bytes, precision: str = "auto") -> FakeCodec:
    model_id = unpack(data).model_id
    if model_id != FAKE_ID:
        raise ModelError(f"unknown model id 0x{model_id:06x} (is the model installed?)")
    return FakeCodec()


@pytest.fixture(autouse=True)
def fake_codec(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("mrt.codec")
    module.Codec = FakeCodec  # type: ignore[attr-defined]
    module.open_for = _open_for  # type: ignore[attr-defined]
    module.list_models = lambda: [  # type: ignore[attr-defined]
        FakeModelInfo("fake-tiny", FAKE_ID, "test model", 32, 12, 12_345_678, 49_400_000)
    ]
    monkeypatch.setitem(sys.modules, "mrt.codec", module)
    FakeCodec.loads = []
    return module


def _image(path: Path, seed: int = 0, size: tuple[int, int] = (12, 9)) -> np.ndarray:
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def _hidden(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*")]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# ----------------------------------------------------------------------------- compress / decompress


def test_single_file_default_paths_and_roundtrip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "photo.png"
    arr = _image(src)
    code, out, err = _run(capsys, "compress", str(src))
    assert code == 0, err
    mrt = tmp_path / "photo.mrt"
    size = mrt.stat().st_size
    assert out.strip() == f"{src} -> {mrt}: {size} B, {8 * size / (12 * 9):.4f} bpp"
    # Default decompress output is photo.png, which is the original: refused without --force.
    code, out, err = _run(capsys, "decompress", str(mrt))
    assert code == 1 and "already exists" in err and "--force" in err
    assert err.count("\n") == 1 and err.startswith("mrt: error: ")
    np.testing.assert_array_equal(np.asarray(Image.open(src)), arr)
    code, out, err = _run(capsys, "decompress", str(mrt), "-o", str(tmp_path / "back.png"))
    assert code == 0, err
    assert out.strip() == f"{mrt} -> {tmp_path / 'back.png'}: 12x9"
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "back.png")), arr)
    assert _hidden(tmp_path) == []


def test_output_file_folder_and_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.png"
    _image(src)
    target = tmp_path / "x.bin"
    assert _run(capsys, "compress", str(src), "-o", str(target))[0] == 0
    first = target.read_bytes()
    _image(src, seed=1)
    code, _, err = _run(capsys, "compress", str(src), "-o", str(target))
    assert code == 1 and "already exists" in err
    assert target.read_bytes() == first  # untouched
    assert _run(capsys, "compress", str(src), "-o", str(target), "--force")[0] == 0
    assert target.read_bytes() != first
    outdir = tmp_path / "out"
    outdir.mkdir()
    assert _run(capsys, "compress", str(src), "-o", str(outdir), "-q") == (0, "", "")
    assert (outdir / "a.mrt").exists()


def test_folders_recursive_keep_relative_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "imgs"
    arrays = {
        "b.png": _image(root / "b.png", 1),
        "sub/c.PNG": _image(root / "sub" / "c.PNG", 2),
        "sub/deeper/d.png": _image(root / "sub" / "deeper" / "d.png", 3),
    }
    (root / "notes.txt").write_text("not an image")
    _image(root / ".hidden" / "e.png", 4)
    extra = tmp_path / "single.png"
    arrays_extra = _image(extra, 5)
    code, out, err = _run(capsys, "compress", str(root), str(extra), "-o", str(tmp_path / "enc"))
    assert code == 0, err
    made = sorted(p.relative_to(tmp_path / "enc").as_posix() for p in (tmp_path / "enc").rglob("*.mrt"))
    assert made == ["b.mrt", "single.mrt", "sub/c.mrt", "sub/deeper/d.mrt"]
    assert len(out.strip().splitlines()) == 4
    code, out, err = _run(capsys, "decompress", str(tmp_path / "enc"), "-o", str(tmp_path / "dec"))
    assert code == 0, err
    for rel, arr in arrays.items():
        back = tmp_path / "dec" / Path(rel).with_suffix(".png")
        np.testing.assert_array_equal(np.asarray(Image.open(back)), arr)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "dec" / "single.png")), arrays_extra)
    assert FakeCodec.loads == [None]  # loaded once for all files


def test_partial_failure_continues_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good1, good2, bad = tmp_path / "1.png", tmp_path / "3.png", tmp_path / "2.png"
    _image(good1)
    _image(good2)
    bad.write_text("this is text")
    code, out, err = _run(capsys, "compress", str(good1), str(bad), str(good2), "-o", str(tmp_path / "o"))
    assert code == 1
    assert (tmp_path / "o" / "1.mrt").exists() and (tmp_path / "o" / "3.mrt").exists()
    assert not (tmp_path / "o" / "2.mrt").exists()
    assert err.strip() == f"mrt: error: cannot read '{bad}': not a supported image"
    assert len(out.strip().splitlines()) == 2
    # A single failing input exits with that error's own status (3: image error).
    code, _, err = _run(capsys, "compress", str(bad))
    assert code == 3 and "not a supported image" in err
    # A missing input exits with the status of its kind (issue 14): 3 for an image, 4 for a .mrt file.
    code, _, err = _run(capsys, "compress", str(tmp_path / "missing.png"))
    assert code == 3 and "no such file" in err
    code, _, err = _run(capsys, "decompress", str(tmp_path / "missing.mrt"))
    assert code == 4 and "no such file" in err


def test_collisions_and_overwriting_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _image(tmp_path / "a" / "x.png")
    _image(tmp_path / "b" / "x.png", 1)
    code, _, err = _run(capsys, "compress", str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png"),
                        "-o", str(tmp_path / "o"))
    assert code == 1 and "also the output of" in err
    assert (tmp_path / "o" / "x.mrt").exists()
    weird = tmp_path / "y.mrt"
    weird.write_bytes(b"whatever")
    code, _, err = _run(capsys, "compress", str(weird))
    assert code == 1 and "overwrite the input" in err
    assert weird.read_bytes() == b"whatever"


def test_several_inputs_need_an_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.png")
    (tmp_path / "file").write_text("x")
    code, _, err = _run(capsys, "compress", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                        "-o", str(tmp_path / "file"))
    assert code == 1 and "must be a folder" in err


def test_interrupt_leaves_no_partial_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        _image(tmp_path / "in" / f"{i}.png", i)
    calls = {"n": 0}
    original = FakeCodec.compress

    def interrupted(self: FakeCodec, img: np.ndarray) -> bytes:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, img)

    monkeypatch.setattr(FakeCodec, "compress", interrupted)
    code, _, err = _run(capsys, "compress", str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert code == 130 and "interrupted" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.mrt"]


def test_write_failure_leaves_no_partial_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    _image(tmp_path / "a.png")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    code, _, err = _run(capsys, "compress", str(tmp_path / "a.png"))
    assert code == 1 and "No space left on device" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_decompress_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _image(tmp_path / "a.png")
    assert _run(capsys, "compress", str(tmp_path / "a.png"))[0] == 0
    data = (tmp_path / "a.mrt").read_bytes()
    cases = {
        "empty.mrt": (b"", 4, "empty file"),
        "short.mrt": (data[:5], 4, "shorter than the 12-byte header"),
        "png.mrt": ((tmp_path / "a.png").read_bytes(), 4, "not an MRT file"),
        "v9.mrt": (data[:2] + b"\x90" + data[3:], 4, "version 9 is not supported"),
        "flip.mrt": (data[:-3] + bytes([data[-3] ^ 4]) + data[-2:], 4, "corrupt or truncated"),
        "model.mrt": (data[:3] + b"\x99\x99\x99" + data[6:], 5, "unknown model id 0x999999"),
    }
    for name, (content, status, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        code, _, err = _run(capsys, "decompress", str(tmp_path / name))
        assert (code, err.count("\n")) == (status, 1), (name, err)
        assert message in err, (name, err)
        assert not (tmp_path / name).with_suffix(".png").exists()
    code, _, err = _run(capsys, "decompress", str(tmp_path / "a.mrt"), "-o", str(tmp_path / "a.xyz"))
    assert code == 3 and "unknown image extension" in err
    code, _, err = _run(capsys, "decompress", *(str(tmp_path / n) for n in cases), "-o", str(tmp_path / "d"))
    assert code == 1 and err.count("mrt: error: ") == len(cases)


def test_progress_and_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(3):
        _image(tmp_path / "in" / f"{i}.png", i)
    code, out, err = _run(capsys, "compress", str(tmp_path / "in"), "-q", "--progress")
    assert code == 0 and out == "" and "compress" in err  # tqdm bar on stderr
    code, out, err = _run(capsys, "compress", str(tmp_path / "in"), "--force")
    assert code == 0 and err == "" and len(out.splitlines()) == 3  # stderr is not a TTY: no bar


# ----------------------------------------------------------------------------- info / models


def test_info_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _image(tmp_path / "a.png")
    main(["compress", str(tmp_path / "a.png"), "-q"])
    mrt = tmp_path / "a.mrt"
    c = unpack(mrt.read_bytes())
    code, out, err = _run(capsys, "info", str(mrt))
    assert code == 0, err
    for text in ("format version  1", "0x00abcd (fake-tiny)", "12 x 9 (108 pixels)",
                 f"payload         {len(c.payload)} B", f"total           {c.total_bytes} B",
                 f"checksum        0x{c.checksum:04x}"):
        assert text in out
    code, out, _ = _run(capsys, "info", "--json", "--verify", str(mrt))
    fields = json.loads(out)[0]
    assert code == 0 and fields["verified"] is True and fields["height"] == 9 and fields["width"] == 12
    assert fields["bpp"] == pytest.approx(8 * c.total_bytes / 108)
    (tmp_path / "bad.mrt").write_bytes(b"GIF89a....")
    code, out, err = _run(capsys, "info", str(tmp_path / "bad.mrt"))
    assert code == 4 and "not an MRT file" in err and out == ""
    code, out, err = _run(capsys, "info", str(mrt), str(tmp_path / "bad.mrt"))
    assert code == 1 and "fake-tiny" in out


def test_models_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "models")
    assert code == 0
    header, row = out.strip().splitlines()
    assert header.split()[:6] == ["NAME", "ID", "K", "BITS", "PARAMS", "SIZE"]
    assert row.split()[:3] == ["fake-tiny", "0x00abcd", "32"]
    assert "12.3M" in row and "49.4 MB" in row and row.endswith("test model")
    code, out, _ = _run(capsys, "models", "--json")
    assert json.loads(out)[0]["model_id"] == "0x00abcd" and json.loads(out)[0]["default"] is False


def test_models_table_marks_the_default(capsys: pytest.CaptureFixture[str], fake_codec: types.ModuleType) -> None:
    default = FakeModelInfo("fake-main", FAKE_ID + 1, "main model", 16, 16, 6_000_000, 12_000_000)
    default.default = True  # type: ignore[attr-defined]
    fake_codec.list_models = lambda: [FakeModelInfo("fake-tiny", FAKE_ID, "test model", 32, 12, 1, 1), default]  # type: ignore[attr-defined]
    code, out, _ = _run(capsys, "models")
    lines = out.strip().splitlines()
    assert code == 0 and lines[2].startswith("fake-main *") and not lines[1].startswith("fake-tiny *")
    assert lines[-1] == "* the default model (used when none is named)"
    code, out, _ = _run(capsys, "models", "--json")
    assert [r["default"] for r in json.loads(out)] == [False, True]


def test_unknown_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _image(tmp_path / "a.png")
    code, _, err = _run(capsys, "compress", str(tmp_path / "a.png"), "--model", "nope")
    assert code == 5 and err == "mrt: error: unknown model 'nope' (see 'mrt models')\n"
    assert not (tmp_path / "a.mrt").exists()


# ----------------------------------------------------------------------------- main


def test_usage_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["compress"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("compress", "decompress", "info", "models", "exit status", "130"):
        assert word in out
    assert main(["--version"]) == 0


def test_command_summaries_match_the_modules() -> None:
    """``mrt --help`` lists ``COMMANDS``' summaries; with a command's own parser it reads the same."""
    listing = build_parser().format_help()
    for name, summary in COMMANDS.items():
        assert " ".join(summary.split()) in " ".join(listing.split())
        assert build_parser(name).format_help() == listing, name


def test_requested_command() -> None:
    assert requested_command(["compress", "a.png"]) == "compress"
    assert requested_command(["--version", "info", "x.mrt"]) == "info"
    assert requested_command(["--", "models"]) == "models"
    assert requested_command(["-h"]) is None and requested_command([]) is None
    assert requested_command(["frobnicate", "compress"]) is None


def test_python_m_help_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mrt.cli.main", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "compress" in proc.stdout and "exit status" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "mrt.cli.main", "info", "/nonexistent/x.mrt"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 4 and proc.stderr.startswith("mrt: error: ") and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- hostile inputs and outputs (issue 14)

ALLOCATION_FAILURE = (
    "[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)"
)


def _fail_allocation(*args: object, **kwargs: object) -> np.ndarray:
    raise RuntimeError(ALLOCATION_FAILURE)


def test_memory_errors_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.png", 1)
    assert _run(capsys, "compress", str(tmp_path / "a.png"), str(tmp_path / "b.png"))[0] == 0
    monkeypatch.setattr(FakeCodec, "decompress", _fail_allocation)
    code, out, err = _run(capsys, "decompress", str(tmp_path / "a.mrt"), "-o", str(tmp_path / "a_out.png"))
    assert (code, out) == (6, "")
    assert err == f"mrt: error: not enough memory to decompress '{tmp_path / 'a.mrt'}'\n"
    assert not (tmp_path / "a_out.png").exists() and not _hidden(tmp_path)
    # with several files, the others are still decoded (here: the second fails the same way)
    code, _, err = _run(capsys, "decompress", str(tmp_path / "a.mrt"), str(tmp_path / "b.mrt"),
                        "-o", str(tmp_path / "dec"))
    assert code == 1 and err.count("not enough memory") == 2
    # compress: a MemoryError (numpy, Pillow) is the same one-line error
    monkeypatch.setattr(FakeCodec, "compress", lambda self, img: np.zeros((1 << 62,), np.uint8))
    code, out, err = _run(capsys, "compress", str(tmp_path / "a.png"), "-o", str(tmp_path / "c.mrt"))
    assert code == 6 and err.startswith("mrt: error: not enough memory") and err.count("\n") == 1
    assert not (tmp_path / "c.mrt").exists() and not _hidden(tmp_path)


def test_other_runtime_errors_are_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _image(tmp_path / "a.png")

    def bug(self: FakeCodec, img: np.ndarray) -> bytes:
        raise RuntimeError("shape mismatch in layer 3")

    monkeypatch.setattr(FakeCodec, "compress", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["compress", str(tmp_path / "a.png")])


@pytest.mark.parametrize("force", [False, True])
def test_special_files_are_never_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str], force: bool) -> None:
    import os
    import stat

    _image(tmp_path / "a.png")
    fifo = tmp_path / "pipe.mrt"
    os.mkfifo(fifo)
    extra = ["--force"] if force else []
    code, _, err = _run(capsys, "compress", str(tmp_path / "a.png"), "-o", str(fifo), *extra)
    assert code == 1 and "named pipe (FIFO), not a regular file" in err and err.count("\n") == 1
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and not _hidden(tmp_path)
    # a link to a FIFO is refused too
    (tmp_path / "link.mrt").symlink_to(fifo)
    code, _, err = _run(capsys, "compress", str(tmp_path / "a.png"), "-o", str(tmp_path / "link.mrt"), *extra)
    assert code == 1 and "symbolic link to a named pipe" in err
    assert (tmp_path / "link.mrt").is_symlink()


def test_force_replaces_a_symlink_not_its_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _image(tmp_path / "a.png")
    target = tmp_path / "target.mrt"
    target.write_bytes(b"keep me")
    link = tmp_path / "link.mrt"
    link.symlink_to(target)
    code, _, err = _run(capsys, "compress", str(tmp_path / "a.png"), "-o", str(link))
    assert code == 1 and "already exists" in err
    code, _, err = _run(capsys, "compress", str(tmp_path / "a.png"), "-o", str(link), "--force")
    assert code == 0, err
    assert not link.is_symlink() and link.read_bytes()[:2] == b"\xd7M"
    assert target.read_bytes() == b"keep me"


def test_animated_input_says_which_frame_is_used(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = [Image.fromarray(np.full((9, 12, 3), 80 * i, np.uint8)) for i in range(3)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    code, _, err = _run(capsys, "compress", str(gif))
    assert code == 0
    assert err == f"mrt: note: '{gif}' has 3 frames; only the first is used\n"
    code, _, err = _run(capsys, "decompress", str(tmp_path / "anim.mrt"))
    assert code == 0 and err == ""
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "anim.png")), np.zeros((9, 12, 3), np.uint8))


def test_several_outputs_are_refused_a_file_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _image(tmp_path / "in" / "a.png")
    assert _run(capsys, "compress", str(tmp_path / "in"))[0] == 0
    for command, out in (("decompress", "x.png"), ("decompress", "x.JPG"), ("compress", "x.mrt")):
        code, _, err = _run(capsys, command, str(tmp_path / "in"), "-o", str(tmp_path / out))
        assert code == 1 and "names a file" in err, (command, out, err)
        assert not (tmp_path / out).exists()
    # an existing folder, or a trailing '/', says that a folder is meant
    code, _, err = _run(capsys, "decompress", str(tmp_path / "in"), "-o", str(tmp_path / "x.png") + "/")
    assert code == 0, err
    assert (tmp_path / "x.png" / "a.png").is_file()


def test_a_kept_memory_error_does_not_keep_the_failed_call_alive() -> None:
    """A batch keeps its failures to the end: they must not hold the memory of the failed call."""
    import gc
    import weakref

    from mrt.errors import NotEnoughMemoryError, memory_errors

    class Big:
        pass

    refs = []

    def work() -> None:
        big = Big()
        refs.append(weakref.ref(big))
        raise RuntimeError(ALLOCATION_FAILURE)

    kept = []
    with pytest.raises(NotEnoughMemoryError, match="not enough memory to decompress 'x.mrt'") as info:
        with memory_errors("decompress 'x.mrt'"):
            work()
    kept.append(info.value)
    gc.collect()
    assert refs[0]() is None
