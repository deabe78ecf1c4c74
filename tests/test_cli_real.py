"""The CLI with the real codec (a tiny random model file found through MRT_MODEL_PATH)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import structured_image
from mrt.cli.main import main


@pytest.fixture()
def env_model(tiny_model_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MRT_MODEL_PATH", str(tiny_model_file))
    return tiny_model_file


def test_compress_decompress_in_process(tmp_path: Path, env_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(structured_image(50, 70)).save(src)
    assert main(["compress", str(src), "--model", str(env_model), "-o", str(tmp_path / "a.mrt")]) == 0
    # decompress needs no model flag: the header names the model, found on MRT_MODEL_PATH
    assert main(["decompress", str(tmp_path / "a.mrt"), "-o", str(tmp_path / "b.png")]) == 0
    out = np.asarray(Image.open(tmp_path / "b.png"))
    assert out.shape == (50, 70, 3)
    assert main(["info", str(tmp_path / "a.mrt")]) == 0
    info = capsys.readouterr().out
    assert "format version  4" in info and "tiny" in info and "tokens/window   8" in info
    # existing output is not overwritten without --force
    before = (tmp_path / "b.png").read_bytes()
    assert main(["decompress", str(tmp_path / "a.mrt"), "-o", str(tmp_path / "b.png")]) != 0
    assert (tmp_path / "b.png").read_bytes() == before


@pytest.mark.parametrize(
    "payload,code",
    [
        (b"", 4),  # empty file
        (b"\xd7M\x10", 4),  # truncated header
        (b"PK\x03\x04" + bytes(40), 4),  # wrong magic
    ],
)
def test_bad_compressed_files(tmp_path: Path, env_model: Path, payload: bytes, code: int,
                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.mrt"
    bad.write_bytes(payload)
    assert main(["decompress", str(bad), "-o", str(tmp_path / "out.png")]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()


def test_non_image_and_bomb_inputs(tmp_path: Path, env_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    txt = tmp_path / "notes.png"
    txt.write_text("hello")
    assert main(["compress", str(txt), "--model", str(env_model), "-o", str(tmp_path / "n.mrt")]) == 3
    assert not (tmp_path / "n.mrt").exists()
    assert "Traceback" not in capsys.readouterr().err


def test_real_subprocess_round_trip(tmp_path: Path, tiny_model_file: Path) -> None:
    src = tmp_path / "img.png"
    Image.fromarray(structured_image(33, 17)).save(src)
    env = dict(os.environ, MRT_MODEL_PATH=str(tiny_model_file))
    run = [sys.executable, "-m", "mrt.cli.main"]
    r = subprocess.run(run + ["compress", str(src), "--model", "tiny-k4", "-o", str(tmp_path / "x.mrt")],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(run + ["decompress", str(tmp_path / "x.mrt")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert np.asarray(Image.open(tmp_path / "x.png")).shape == (33, 17, 3)
    # without the model installed, decompress fails with a clear one-line error (exit 5)
    env.pop("MRT_MODEL_PATH")
    r = subprocess.run(run + ["decompress", str(tmp_path / "x.mrt"), "-o", str(tmp_path / "y.png")],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 5 and "not installed" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "y.png").exists()


# ----------------------------------------------------------------------------- start-up cost


def _loaded_after(*argvs: list[str], env: dict[str, str] | None = None) -> tuple[list[int], set[str]]:
    """Run ``main`` on each argv in a fresh interpreter; the exit codes and every module then loaded."""
    probe = (
        "import json, sys\n"
        "from mrt.cli.main import main\n"
        "codes = [main(a) for a in json.loads(sys.argv[1])]\n"
        "print(json.dumps({'codes': codes, 'modules': sorted(sys.modules)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, json.dumps(argvs)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return report["codes"], set(report["modules"])


#: Packages the codec commands must not pay for (training, evaluation, metrics, data).
HEAVY_FOR_THE_CODEC = ("mrt.train", "mrt.eval", "mrt.metrics", "mrt.data")


def _under(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def test_help_imports_no_command_module_and_no_torch() -> None:
    codes, modules = _loaded_after(["--help"], ["--version"], ["frobnicate"])
    assert codes == [0, 0, 2]
    assert not _under(modules, HEAVY_FOR_THE_CODEC + ("torch", "numpy", "mrt.codec", "mrt.models"))
    assert not [m for m in modules if m.startswith("mrt.cli.cmd_")]


def test_codec_commands_import_no_training_or_evaluation_code(tmp_path: Path, tiny_model_file: Path) -> None:
    src = tmp_path / "img.png"
    Image.fromarray(structured_image(20, 30)).save(src)
    mrt, png = str(tmp_path / "x.mrt"), str(tmp_path / "x.png")
    env = dict(os.environ, MRT_MODEL_PATH=str(tiny_model_file))
    codes, modules = _loaded_after(
        ["compress", str(src), "--model", "tiny-k4", "-o", mrt, "-q"],
        ["decompress", mrt, "-o", png, "-q"],
        ["info", "--verify", mrt],
        ["models"],
        env=env,
    )
    assert codes == [0, 0, 0, 0]
    assert "mrt.codec" in modules and Path(png).is_file()  # the real path ran
    assert not _under(modules, HEAVY_FOR_THE_CODEC)
    assert sorted(m for m in modules if m.startswith("mrt.cli.cmd_")) == [
        "mrt.cli.cmd_compress", "mrt.cli.cmd_decompress", "mrt.cli.cmd_info", "mrt.cli.cmd_models"
    ]


# ----------------------------------------------------------------------------- hostile files (issue 14)


def test_model_id_one_byte_from_an_installed_one_is_a_corrupt_file(
    tmp_path: Path, env_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(structured_image(50, 70)).save(src)
    good = tmp_path / "a.mrt"
    assert main(["compress", str(src), "--model", str(env_model), "-o", str(good), "-q"]) == 0
    data = good.read_bytes()
    near = tmp_path / "near.mrt"
    near.write_bytes(data[:4] + bytes([data[4] ^ 0x10]) + data[5:])
    assert main(["decompress", str(near), "-o", str(tmp_path / "near.png")]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupt file" in err and "differs in one byte from tiny (" in err
    far = tmp_path / "far.mrt"
    far.write_bytes(data[:3] + bytes(b ^ 0x5A for b in data[3:6]) + data[6:])
    assert main(["decompress", str(far), "-o", str(tmp_path / "far.png")]) == 5
    assert "not installed" in capsys.readouterr().err
    assert not (tmp_path / "near.png").exists() and not (tmp_path / "far.png").exists()


def test_unknown_model_error_kinds() -> None:
    from mrt.errors import BitstreamError, ModelError, unknown_model_error

    installed = [("m-k8", 0x123456), ("m-k4", 0xABCDEF)]
    err = unknown_model_error(0x12FF56, installed, "add model files with MRT_MODEL_PATH")
    assert isinstance(err, BitstreamError) and "differs in one byte from m-k8 (123456)" in str(err)
    err = unknown_model_error(0x12FFFF, installed, "add model files with MRT_MODEL_PATH")
    assert isinstance(err, ModelError)
    assert str(err) == ("file needs model 12ffff, which is not installed (installed: m-k8=123456, "
                        "m-k4=abcdef; add model files with MRT_MODEL_PATH)")
    assert isinstance(unknown_model_error(0x000001, []), ModelError)


def test_missing_inputs_exit_with_the_status_of_their_kind(tmp_path: Path, env_model: Path) -> None:
    assert main(["compress", str(tmp_path / "none.png"), "--model", str(env_model)]) == 3
    assert main(["decompress", str(tmp_path / "none.mrt")]) == 4
    assert main(["info", str(tmp_path / "none.mrt")]) == 4


def test_models_marks_a_name_shadowed_by_an_earlier_file(tiny_model_file: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Two model files with the same variant names (say, an earlier release on MRT_MODEL_PATH):
    the name selects the first on the search path, the second is listed as shadowed with the
    ``path#name`` that selects it, and that spec does select it."""
    from mrt.catalog import resolve

    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "tiny.mrtm").write_bytes(tiny_model_file.read_bytes())
    monkeypatch.setenv("MRT_MODEL_PATH", os.pathsep.join([str(first), str(second)]))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("tiny-k")]
    assert [r.split()[0] for r in rows] == ["tiny-k4", "tiny-k8", "tiny-k4", "tiny-k8"]
    assert ["(shadowed)" in r for r in rows] == [False, False, True, True]
    assert f"--model {second / 'tiny.mrtm'}#tiny-k4" in out
    assert main(["models", "--json"]) == 0
    js = [r for r in json.loads(capsys.readouterr().out) if r["name"].startswith("tiny-k")]
    assert [(Path(r["path"]).parent.name, r["shadowed"]) for r in js] == [
        ("a", False), ("a", False), ("b", True), ("b", True)]
    assert resolve("tiny-k4") == (first / "tiny.mrtm", "tiny-k4")
    assert resolve(f"{second / 'tiny.mrtm'}#tiny-k4") == (second / "tiny.mrtm", "tiny-k4")


def test_compare_releases_script_draws_one_figure_per_image(tiny_model_file: Path, tmp_path: Path) -> None:
    """scripts/compare_releases.py: real files of each model, one JPEG per image; a bad spec exits
    non-zero with a message and writes nothing."""
    src = tmp_path / "img.png"
    Image.fromarray(structured_image(64, 96)).save(src)
    script = Path(__file__).resolve().parents[1] / "scripts" / "compare_releases.py"
    out = tmp_path / "fig"
    run = subprocess.run([sys.executable, str(script), str(src), "--threads", "1", "--jpeg", "85",
                          "--model", f"k4={tiny_model_file}#tiny-k4", "--model", f"k8={tiny_model_file}#tiny-k8",
                          "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    fig = Image.open(out / "img.jpg")
    assert fig.format == "JPEG" and fig.width > 3 * 96 and not (out / "img.png").exists()
    bad = subprocess.run([sys.executable, str(script), str(src), "--model", f"x={tmp_path / 'none.mrtm'}",
                          "-o", str(tmp_path / "fig2")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "model file not found" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "fig2").exists()
