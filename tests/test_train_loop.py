"""The training loop with a toy task on synthetic crops: learning, exact resume, checkpoints, signals."""

from __future__ import annotations

import csv
import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from _synthetic import synthetic_items
from _toy import ToyAutoencoderTask, toy_factory
from torch import nn

from mrt.data.batch import Batch
from mrt.errors import ConfigError, MRTError
from mrt.train import checkpoint as ck
from mrt.train.config import TrainConfig
from mrt.train.loop import NonFiniteError, TrainingInterrupted, train
from mrt.train.optim import lr_factor, param_groups
from mrt.train.task import LossOutput, Task

ITEMS = synthetic_items(6, 64, 80, seed=0, flips=True)
TOY = toy_factory(channels=6, noise=0.02)


def _cfg(out: Path, **run: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "task": "toy",
        "data": {"crop": 32, "batch_size": 4},
        "optim": {"lr": 3e-3, "warmup_steps": 3, "schedule": "cosine", "grad_clip": 1.0},
        "run": {
            "out_dir": str(out),
            "steps": 20,
            "log_every": 5,
            "ckpt_every": 10,
            "threads": 1,
            "ema_decay": 0.9,
            "ema_start": 2,
            "progress": False,
            "tensorboard": False,
        },
    }
    base["run"].update(run)
    return TrainConfig.from_dict(base)


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_loss_goes_down(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "r", steps=40, log_every=10, ckpt_every=100)
    path = train(cfg, task_factory=TOY, items=ITEMS)
    assert path == ck.checkpoint_path(tmp_path / "r", 40)
    rows = _rows(tmp_path / "r")
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40]
    assert float(rows[-1]["loss"]) < 0.5 * float(rows[0]["loss"])
    assert {"lr", "img_per_s", "grad_norm", "mse", "psnr", "time"} <= set(rows[0])


def test_resume_is_bit_exact(tmp_path: Path) -> None:
    straight = torch.load(train(_cfg(tmp_path / "a"), task_factory=TOY, items=ITEMS), weights_only=True)
    stopped = train(_cfg(tmp_path / "b", stop_at=10), task_factory=TOY, items=ITEMS)
    assert stopped.name == "step_00000010.pt"
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train(_cfg(tmp_path / "b"), task_factory=TOY, items=ITEMS)
    resumed = torch.load(train(_cfg(tmp_path / "b", resume=True), task_factory=TOY, items=ITEMS), weights_only=True)
    assert straight["step"] == resumed["step"] == 20
    for k, v in straight["task_state"].items():
        assert torch.equal(v, resumed["task_state"][k]), k
    for k, v in straight["ema_state"]["shadow"].items():
        assert torch.equal(v, resumed["ema_state"]["shadow"][k]), k
    for i, st in straight["optimizer"]["state"].items():
        assert torch.equal(st["exp_avg_sq"], resumed["optimizer"]["state"][i]["exp_avg_sq"])
    assert straight["scheduler"]["last_epoch"] == resumed["scheduler"]["last_epoch"]
    assert torch.equal(straight["rng"][0]["torch"], resumed["rng"][0]["torch"])
    # the CSV of the resumed run continues seamlessly and equals the straight run's losses
    ra, rb = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [r["step"] for r in rb] == ["5", "10", "15", "20"]
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]
    # resuming a finished run does nothing
    assert train(_cfg(tmp_path / "b", resume=True), task_factory=TOY, items=ITEMS).name == "step_00000020.pt"


def test_checkpoint_layout_and_export(tmp_path: Path) -> None:
    out = tmp_path / "r"
    path = train(_cfg(out, steps=12, ckpt_every=4, keep_last=2), task_factory=TOY, items=ITEMS)
    assert [s for s, _ in ck.list_checkpoints(out)] == [8, 12]
    c = ck.load_checkpoint(out)  # a run folder resolves to its newest checkpoint
    for key in ("task_state", "ema_state", "optimizer", "scheduler", "step", "rng", "data", "config", "git_rev"):
        assert key in c
    assert c["step"] == 12 and c["task"] == "toy" and c["world_size"] == 1
    assert c["data"] == {"seed": 0, "next_step": 12, "batch_size": 4, "world_size": 1}
    assert TrainConfig.from_dict(c["config"]) == _cfg(out, steps=12, ckpt_every=4, keep_last=2)
    assert isinstance(c["git_rev"], str)
    assert (out / "config.yaml").is_file() and (out / "train.log").is_file()
    ema = ck.export_weights(path, use_ema=True)
    raw = ck.export_weights(path, use_ema=False)
    assert torch.equal(ema["enc.weight"], c["ema_state"]["shadow"]["enc.weight"])
    assert not torch.equal(ema["enc.weight"], raw["enc.weight"])
    assert set(ck.export_weights(path, prefix="enc.")) == {"weight", "bias"}


class _BiggerToy(ToyAutoencoderTask):
    """The toy task plus a head the previous stage did not have, and a frozen part."""

    def __init__(self) -> None:
        super().__init__(in_channels=3, channels=6)
        self.extra = nn.Linear(3, 3)
        self.frozen = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)

    def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
        out = super().forward(batch, step)
        return LossOutput(out.total + 0.0 * self.extra.weight.sum(), out.logs)


def test_init_from_loads_matching_weights(tmp_path: Path) -> None:
    first = train(_cfg(tmp_path / "s1", steps=6), task_factory=TOY, items=ITEMS)
    src = ck.task_weights(ck.load_checkpoint(first), use_ema=True)
    seen: list[nn.Module] = []

    def factory(cfg: TrainConfig) -> nn.Module:
        seen.append(_BiggerToy())
        return seen[-1]

    cfg = _cfg(tmp_path / "s2", steps=0, init_from=str(tmp_path / "s1"))
    train(cfg, task_factory=factory, items=ITEMS)
    task = seen[-1]
    assert torch.equal(task.enc.weight.detach(), src["enc.weight"])
    log = (tmp_path / "s2" / "train.log").read_text()
    assert "init_from" in log and "missing (kept as initialised) 4" in log
    assert ck.load_checkpoint(tmp_path / "s2")["step"] == 0


def test_sigint_writes_checkpoint_then_stops(tmp_path: Path) -> None:
    class Interrupting(ToyAutoencoderTask):
        def on_step_end(self, step: int) -> None:
            if step == 4:
                os.kill(os.getpid(), signal.SIGINT)

    # start from Python's default handler even when the test runner inherited SIG_IGN (nohup, CI)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingInterrupted) as info:
            train(_cfg(tmp_path / "r"), task_factory=lambda cfg: Interrupting(channels=6), items=ITEMS)
        assert info.value.step == 5 and info.value.exit_code == 130
        assert info.value.checkpoint == ck.checkpoint_path(tmp_path / "r", 5)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    finally:
        signal.signal(signal.SIGINT, outer)
    resumed = train(_cfg(tmp_path / "r", resume=True), task_factory=TOY, items=ITEMS)
    assert resumed.name == "step_00000020.pt"


def test_nonfinite_loss_stops(tmp_path: Path) -> None:
    class Exploding(ToyAutoencoderTask):
        def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
            out = super().forward(batch, step)
            return LossOutput(out.total * (math.inf if step == 2 else 1.0), out.logs)

    with pytest.raises(NonFiniteError, match="step 2"):
        train(_cfg(tmp_path / "r"), task_factory=lambda cfg: Exploding(channels=6), items=ITEMS)


def test_bf16_autocast_and_no_ema_and_latents_only(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "r", steps=3, bf16=True, ema_decay=None)
    cfg.data.with_pixels = False
    path = train(cfg, task_factory=TOY, items=ITEMS)
    c = ck.load_checkpoint(path)
    assert c["ema_state"] is None
    assert c["task_state"]["enc.weight"].shape[1] == 32  # toy task built for latents
    with pytest.raises(MRTError):
        ck.load_checkpoint(tmp_path / "nothing")


def test_schedule_and_weight_decay_groups() -> None:
    assert lr_factor(0, 4, 100, "cosine", 0.0) == pytest.approx(0.25)
    assert lr_factor(3, 4, 100, "cosine", 0.0) == pytest.approx(1.0)
    assert lr_factor(4, 4, 100, "cosine", 0.0) == pytest.approx(1.0)
    assert lr_factor(52, 4, 100, "cosine", 0.0) == pytest.approx(0.5)
    assert lr_factor(100, 4, 100, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(50, 4, 100, "constant", 0.0) == 1.0

    class T(Task):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.norm = nn.LayerNorm(4)
            self.emb = nn.Embedding(10, 4)
            self.latent_tokens = nn.Parameter(torch.zeros(8, 4))
            self.proj = nn.Linear(4, 4)
            self.frozen = nn.Linear(4, 4)
            self.frozen.requires_grad_(False)

        def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
            raise NotImplementedError

    t = T()
    named = list(t.named_trainable_parameters())
    assert "frozen.weight" not in dict(named)
    groups = param_groups(t, named, 0.05)
    decay = {id(p) for p in groups[0]["params"]}
    names = {n for n, p in named if id(p) in decay}
    assert names == {"conv.weight", "proj.weight"}
    assert groups[1]["weight_decay"] == 0.0


def test_unknown_task_and_model_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'model.dimm' \(did you mean 'model.dim'\?\)"):
        TrainConfig.from_dict({"task": "toy", "model": {"dimm": 3}})
    with pytest.raises(ConfigError, match="unknown task 'toy'"):  # the default factory knows the stages only
        train(_cfg(tmp_path / "r", steps=2), items=ITEMS)


class _SlowToy(ToyAutoencoderTask):
    """The toy task with a fixed extra time per step (to exercise ``run.time_limit_s``)."""

    def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
        import time

        time.sleep(0.03)
        return super().forward(batch, step)


def test_time_limit_shortens_the_run_and_its_schedule(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "r", steps=100000, time_limit_s=1.5, ckpt_every=100000, log_every=5)
    path = train(cfg, task_factory=lambda c: _SlowToy(channels=6), items=ITEMS)
    c = ck.load_checkpoint(path)
    # 1.5 s at >= 30 ms per step: far fewer than 100000 steps, but past the calibration window
    assert 25 < c["step"] < 60, c["step"]
    assert c["elapsed_s"] < 1.5 * 1.5
    # the cosine schedule was re-targeted to the shortened end: the LR has decayed to ~0
    assert c["optimizer"]["param_groups"][0]["lr"] < 0.02 * cfg.optim.lr
    assert "time limit 2 s" in (tmp_path / "r" / "train.log").read_text()
    with pytest.raises(ConfigError, match="time_limit_s"):
        _cfg(tmp_path / "x", time_limit_s=0)


def test_time_limited_run_resumes_on_its_fitted_schedule(tmp_path: Path) -> None:
    """An interrupted time-limited run continues the fitted end and LR schedule, within one budget."""
    cfg = _cfg(tmp_path / "r", steps=100000, time_limit_s=3.0, ckpt_every=10, keep_last=100, log_every=5)
    path = train(cfg, task_factory=lambda c: _SlowToy(channels=6), items=ITEMS)
    full = ck.load_checkpoint(path)
    end = full["step"]
    assert 35 < end < 110 and full["schedule_total"] == end
    lr_full = _lr_by_step(tmp_path / "r" / "metrics.csv")
    for p in (tmp_path / "r" / "checkpoints").glob("*.pt"):  # "interrupt" after step 30
        if ck.load_checkpoint(p)["step"] > 30:
            p.unlink()
    cfg = _cfg(tmp_path / "r", steps=100000, time_limit_s=3.0, ckpt_every=10, keep_last=100, log_every=5, resume=True)
    resumed = ck.load_checkpoint(train(cfg, task_factory=lambda c: _SlowToy(channels=6), items=ITEMS))
    # the same budget: it ends near the first end (re-fitted once from its own step times), not
    # after another 3 s
    assert abs(resumed["step"] - end) <= 8, (resumed["step"], end)
    lr_resumed = _lr_by_step(tmp_path / "r" / "metrics.csv")
    for step in range(35, 55, 5):  # until its first re-fit (step 30 + 25): the fitted schedule, not run.steps
        assert lr_resumed[step] == pytest.approx(lr_full[step], rel=1e-6), step


def _lr_by_step(csv_path: Path) -> dict[int, float]:
    with open(csv_path) as f:
        return {int(r["step"]): float(r["lr"]) for r in csv.DictReader(f)}


def test_checkpoints_name_the_revision_the_run_started_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit made while a run trains must not relabel its later checkpoints."""
    revs = iter(f"rev{i}" for i in range(100))
    monkeypatch.setattr(ck, "git_info", lambda *a: (next(revs), False))
    train(_cfg(tmp_path / "r", steps=20, ckpt_every=10, keep_last=5), task_factory=TOY, items=ITEMS)
    saved = sorted((tmp_path / "r" / "checkpoints").glob("*.pt"))
    assert len(saved) == 2
    assert [ck.load_checkpoint(p)["git_rev"] for p in saved] == ["rev0", "rev0"]


def test_average_checkpoints_mixes_the_ema_weights_and_refuses_what_does_not_mix(tmp_path: Path) -> None:
    a = train(_cfg(tmp_path / "a", steps=6), task_factory=TOY, items=ITEMS)
    b = train(_cfg(tmp_path / "b", steps=9, seed=1), task_factory=TOY, items=ITEMS)
    wa = ck.task_weights(ck.load_checkpoint(a))["enc.weight"]
    wb = ck.task_weights(ck.load_checkpoint(b))["enc.weight"]
    assert not torch.allclose(wa, wb)
    soup = ck.load_checkpoint(ck.average_checkpoints([a, b], tmp_path / "soup.pt", [0.25, 0.75], prefix="enc."))
    torch.testing.assert_close(soup["task_state"]["enc.weight"], 0.25 * wa + 0.75 * wb)
    assert set(soup["task_state"]) == {"enc.weight", "enc.bias"} and soup["ema_state"] is None
    assert soup["average"]["weights"] == [0.25, 0.75] and soup["step"] == 6
    assert "optimizer" not in soup and soup["config"] == ck.load_checkpoint(a)["config"]
    even = ck.load_checkpoint(ck.average_checkpoints([a, b], tmp_path / "even.pt", prefix="enc."))
    torch.testing.assert_close(even["task_state"]["enc.weight"], 0.5 * (wa + wb))
    with pytest.raises(MRTError, match="summing to 1"):
        ck.average_checkpoints([a, b], tmp_path / "x.pt", [0.5, 0.6])
    with pytest.raises(MRTError, match="one non-negative weight per source"):
        ck.average_checkpoints([a, b], tmp_path / "x.pt", [1.0])
    with pytest.raises(MRTError, match="no source"):
        ck.average_checkpoints([], tmp_path / "x.pt")
    other = ck.slim_checkpoint(b, tmp_path / "enc_only.pt", prefix="enc.w")  # a different set of tensors
    with pytest.raises(MRTError, match="does not have the tensors"):
        ck.average_checkpoints([a, other], tmp_path / "x.pt", prefix="enc.")
    assert not (tmp_path / "x.pt").exists()


def test_slim_checkpoint_releases_but_does_not_resume(tmp_path: Path) -> None:
    path = train(_cfg(tmp_path / "r", steps=6), task_factory=TOY, items=ITEMS)
    full = ck.load_checkpoint(path)
    slim = ck.slim_checkpoint(path, tmp_path / "slim.pt", prefix="enc.", dtype=torch.float16)
    s = ck.load_checkpoint(slim)
    assert set(s["task_state"]) == {"enc.weight", "enc.bias"}
    assert s["task_state"]["enc.weight"].dtype == torch.float16
    ema = full["ema_state"]["shadow"]["enc.weight"]
    assert torch.equal(s["task_state"]["enc.weight"], ema.half())
    assert "optimizer" not in s and s["ema_state"] is None and s["config"] == full["config"]
    assert s["step"] == 6 and s["slim"]["prefix"] == "enc."
    assert slim.stat().st_size < 0.5 * path.stat().st_size
    assert torch.equal(ck.export_weights(slim)["enc.weight"], s["task_state"]["enc.weight"])
    # a run folder whose newest checkpoint is slim cannot be resumed
    run = tmp_path / "r2"
    ck.slim_checkpoint(path, ck.checkpoint_path(run, 6))
    with pytest.raises(ConfigError, match="weights-only"):
        train(_cfg(run, steps=10, resume=True), task_factory=TOY, items=ITEMS)


class _HoldsModel(nn.Module):
    """A task that holds a codec model as ``self.model`` (like stages 1 and 2)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.head = nn.Linear(2, 2)

    def forward(self, batch: Batch, step: int) -> LossOutput:  # type: ignore[override]
        return LossOutput(self.head.weight.sum() * 0.0, {})


def test_init_from_a_released_model_file(tmp_path: Path, tiny_model_file: Path, tiny_model: nn.Module) -> None:
    from conftest import make_tiny_model

    seen: list[_HoldsModel] = []

    def factory(cfg: TrainConfig) -> nn.Module:
        seen.append(_HoldsModel(make_tiny_model(seed=123)))
        return seen[-1]

    train(_cfg(tmp_path / "r", steps=0, init_from=str(tiny_model_file)), task_factory=factory, items=ITEMS)
    got = seen[-1].model.state_dict()
    for k, v in tiny_model.state_dict().items():  # the file stores float16
        assert torch.equal(got[k], v.half().to(got[k].dtype)), k
    assert "init_from model file" in (tmp_path / "r" / "train.log").read_text()


def test_init_from_a_list_loads_each_source_in_turn(tmp_path: Path, tiny_model_file: Path, tiny_model: nn.Module) -> None:
    """``a.mrtm,b.pt``: the model file first, then the checkpoint's tensors over it (the stage-2
    hand-over of parts distilled for a released model)."""
    from conftest import make_tiny_model

    seen: list[_HoldsModel] = []

    def factory(cfg: TrainConfig) -> nn.Module:
        seen.append(_HoldsModel(make_tiny_model(seed=123)))
        return seen[-1]

    parts = train(_cfg(tmp_path / "parts", steps=0), task_factory=factory, items=ITEMS)  # seed-123 weights
    patched = ck.load_checkpoint(parts)
    state = patched["task_state"]
    names = [k for k in state if k.startswith("model.")]
    keep = names[0]
    patched["task_state"] = {keep: state[keep] + 1.0, "head.weight": state["head.weight"]}
    patched["ema_state"] = None
    ck.save_checkpoint(tmp_path / "parts.pt", patched)
    train(_cfg(tmp_path / "r", steps=0, init_from=f"{tiny_model_file}, {tmp_path / 'parts.pt'}"),
          task_factory=factory, items=ITEMS)
    got = seen[-1].model.state_dict()
    for k, v in tiny_model.state_dict().items():
        want = state[f"model.{k}"] + 1.0 if f"model.{k}" == keep else v.half().to(got[k].dtype)
        assert torch.equal(got[k], want), k
    log = (tmp_path / "r" / "train.log").read_text()
    assert "init_from model file" in log and "parts.pt" in log
    with pytest.raises(MRTError, match="names no source"):
        train(_cfg(tmp_path / "r2", steps=0, init_from=" , "), task_factory=factory, items=ITEMS)


def test_resume_normalises_an_older_partial_config_and_refuses_model_changes(tmp_path: Path) -> None:
    """Checkpoints written before ``model`` / ``task_args`` were typed stored only the keys the YAML
    set; resuming compares both configs with every default filled in."""
    from mrt.models.config import MRTConfig

    out = tmp_path / "r"
    path = train(_cfg(out, stop_at=10), task_factory=TOY, items=ITEMS)
    old = torch.load(path, weights_only=True)
    old["config"]["model"] = {"name": "mrt"}
    old["config"]["task_args"] = {}
    ck.save_checkpoint(path, old)
    changed = _cfg(out, resume=True)
    changed.model = MRTConfig(dim=64)
    with pytest.raises(ConfigError, match="the config changed model.dim"):
        train(changed, task_factory=TOY, items=ITEMS)
    assert train(_cfg(out, resume=True), task_factory=TOY, items=ITEMS).name == "step_00000020.pt"
    assert "changed config keys" not in (out / "train.log").read_text()
