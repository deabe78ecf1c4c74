"""TrainConfig: YAML with base includes, dotted overrides, type coercion and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrt.errors import ConfigError
from mrt.train.config import (
    DataConfig,
    TrainConfig,
    apply_overrides,
    config_diff,
    load_config,
    parse_override,
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_and_roundtrip() -> None:
    cfg = TrainConfig.from_dict({"task": "toy"})
    assert cfg.data == DataConfig()
    assert cfg.optim.schedule == "cosine" and cfg.run.ema_decay == 0.999 and cfg.run.device == "auto"
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert "task: toy" in cfg.to_yaml()


def test_yaml_base_and_overrides(tmp_path: Path) -> None:
    _write(
        tmp_path / "base.yaml",
        "task: stage1\nmodel: {dim: 64, enc: {layers: 4, heads: 2}}\n"
        "optim: {lr: 1e-4, betas: [0.9, 0.95]}\ndata: {crop: 256, sources: ../x}\nrun: {steps: 100}\n",
    )
    _write(
        tmp_path / "child.yaml",
        "base: base.yaml\ntask: stage2\nmodel: {enc: {layers: 6}}\nrun: {steps: 200, bf16: true}\n",
    )
    cfg = load_config(
        tmp_path / "child.yaml",
        ["optim.lr=3e-4", "model.enc.heads=8", "model.new.key=[1, 2]", "run.init_from=runs/s1", "data.crop=128"],
    )
    assert cfg.task == "stage2"
    assert cfg.model == {"dim": 64, "enc": {"layers": 6, "heads": 8}, "new": {"key": [1, 2]}}
    assert cfg.optim.lr == pytest.approx(3e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == [0.9, 0.95]
    assert cfg.data.crop == 128 and cfg.data.sources == ["../x"]
    assert cfg.run.steps == 200 and cfg.run.bf16 is True and cfg.run.init_from == "runs/s1"
    assert cfg.run.out_dir == "runs/child"  # default from the config file name
    # 1e-4 in YAML 1.1 is a string; it still becomes a float
    assert TrainConfig.from_dict({"optim": {"lr": "1e-4"}}).optim.lr == pytest.approx(1e-4)


def test_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    f = _write(tmp_path / "c.yaml", "task: toy\noptim: {lr: 0.001}\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lrr' \(did you mean 'optim.lr'\?\)"):
        load_config(f, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="unknown config key 'dat'"):
        TrainConfig.from_dict({"dat": {}})
    with pytest.raises(ConfigError, match="run.steps' must be an integer"):
        load_config(f, ["run.steps=abc"])
    with pytest.raises(ConfigError, match="run.bf16' must be true/false"):
        load_config(f, ["run.bf16=1"])
    with pytest.raises(ConfigError, match="multiple of 16"):
        load_config(f, ["data.crop=100"])
    with pytest.raises(ConfigError, match="optim.schedule"):
        load_config(f, ["optim.schedule=linear"])
    with pytest.raises(ConfigError, match="bad override"):
        load_config(f, ["optim.lr"])
    with pytest.raises(ConfigError, match="not a mapping"):
        load_config(f, ["optim.lr.x=1"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_base_cycle_and_parse_errors(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", "base: b.yaml\n")
    _write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    _write(tmp_path / "bad.yaml", "task: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(tmp_path / "bad.yaml")


def test_override_parsing_and_diff() -> None:
    assert parse_override("a.b=1") == (["a", "b"], 1)
    assert parse_override("a=null") == (["a"], None)
    assert parse_override("a=") == (["a"], None)
    assert parse_override("a=x=y") == (["a"], "x=y")
    assert parse_override("a={k: 2}") == (["a"], {"k": 2})
    d = apply_overrides({"run": {"steps": 1}}, ["run.steps=5", "model.x=true"])
    assert d == {"run": {"steps": 5}, "model": {"x": True}}
    a = TrainConfig.from_dict({"task": "toy"}).to_dict()
    b = TrainConfig.from_dict({"task": "toy", "run": {"steps": 3}, "model": {"k": 1}}).to_dict()
    assert config_diff(a, b) == ["model.k", "run.steps"]
