"""``mrt train`` / ``python -m mrt.train``: print-config, cache building, training, user errors.

Training runs use the toy task of ``tests/_toy.py`` (``main(argv, task_factory=...)``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from _toy import toy_factory
from PIL import Image

from mrt.train import checkpoint as ck
from mrt.train.__main__ import main

TOY = toy_factory(channels=4)


def _setup(tmp_path: Path) -> Path:
    src = tmp_path / "images"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 50), (70, 33), (64, 64)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(src / f"im{i}.png")
    cfg = {
        "task": "toy",
        "data": {
            "cache_dir": str(tmp_path / "cache"),
            "sources": [str(src)],
            "with_latents": False,
            "crop": 32,
            "batch_size": 2,
        },
        "run": {"out_dir": str(tmp_path / "run"), "steps": 4, "log_every": 2, "threads": 1, "progress": False,
                "tensorboard": False},
    }  # fmt: skip
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_print_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _setup(tmp_path)
    assert main([str(cfg), "optim.lr=2e-3", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["optim"]["lr"] == pytest.approx(2e-3) and printed["task"] == "toy"


def test_build_cache_then_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _setup(tmp_path)
    assert main([str(cfg), "--build-only"]) == 0
    manifest = yaml.safe_load((tmp_path / "cache" / "manifest.json").read_text())
    assert len(manifest["items"]) == 3  # 40x50 -> 32x48, 70x33 -> 64x32, 64x64
    capsys.readouterr()
    assert main([str(cfg)], task_factory=TOY) == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith("step_00000004.pt") and Path(out).is_file()
    assert ck.load_checkpoint(tmp_path / "run")["step"] == 4


def test_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _setup(tmp_path)
    assert main([str(cfg), "optim.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'optim.lrr'" in err and "Traceback" not in err
    assert main([str(cfg), "task_args.w_lpips=abc"]) == 2  # typed sections are checked at load time
    err = capsys.readouterr().err
    assert "config key 'task_args.w_lpips' must be a number, got 'abc'" in err and "Traceback" not in err
    assert main([str(cfg)], task_factory=TOY) == 1  # no cache built yet
    assert "no training cache" in capsys.readouterr().err


def test_registered_in_main_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = pytest.importorskip("mrt.cli.main")
    cfg = _setup(tmp_path)
    assert cli.main(["train", str(cfg), "run.steps=7", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["run"]["steps"] == 7


def test_python_m_mrt_train_does_not_import_the_cli(tmp_path: Path) -> None:
    """``python -m mrt.train`` is training's own entry: it works without the ``mrt.cli`` package."""
    cfg = _setup(tmp_path)
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['mrt.train', sys.argv[1], 'run.steps=3', '--print-config']\n"
        "try:\n"
        "    runpy.run_module('mrt.train', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    code = stop.code\n"
        "cli = sorted(m for m in sys.modules if m == 'mrt.cli' or m.startswith('mrt.cli.'))\n"
        "print('RESULT', code, cli)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, str(cfg)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "steps: 3" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "RESULT 0 []"
