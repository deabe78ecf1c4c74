"""DDP on CPU: two gloo processes launched by torchrun through ``python -m mrt.train``'s entry
(``mrt.train.command.main``, with the toy task: ``tests/_toy_train.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from _synthetic import synthetic_items, write_cache
from _toy import toy_factory

from mrt.train import checkpoint as ck
from mrt.train.config import load_config
from mrt.train.loop import train


def test_two_process_ddp_replicas_agree(tmp_path: Path) -> None:
    items = synthetic_items(6, 64, 64, seed=1)
    write_cache(items, tmp_path / "cache")
    cfg = {
        "task": "toy",  # tests/_toy_train.py: toy_factory(channels=4)
        "data": {"cache_dir": str(tmp_path / "cache"), "crop": 32, "batch_size": 2},
        "optim": {"lr": 0.003, "warmup_steps": 0, "schedule": "constant"},
        "run": {
            "out_dir": str(tmp_path / "ddp"),
            "steps": 6,
            "log_every": 3,
            "ckpt_every": 3,
            "threads": 1,
            "progress": False,
            "tensorboard": False,
        },
    }
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(Path(__file__).with_name("_toy_train.py")), str(tmp_path / "ddp.yaml"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    c = ck.load_checkpoint(tmp_path / "ddp")
    assert c["step"] == 6 and c["world_size"] == 2 and len(c["rng"]) == 2
    digests = c["replica_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]  # identical replicas, bit for bit
    assert not torch.equal(c["rng"][0]["torch"], c["rng"][1]["torch"])  # per-rank randomness

    # 2 ranks x 2 images read the same samples as 1 process x 4 images: same training up to rounding
    single = load_config(
        tmp_path / "ddp.yaml", [f"run.out_dir={tmp_path / 'single'}", "data.batch_size=4"]
    )
    ref = ck.load_checkpoint(train(single, task_factory=toy_factory(channels=4)))
    for k, v in ref["task_state"].items():
        assert torch.allclose(v, c["task_state"][k], atol=1e-5), k
