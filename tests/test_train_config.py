"""TrainConfig: YAML with base includes, dotted overrides, type coercion and clear errors;
the typed-config builder (:mod:`mrt.dataclass_config`) it shares with the model config."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from mrt.dataclass_config import build
from mrt.errors import ConfigError
from mrt.models.config import MRTConfig, RCMConfig, canonical_json
from mrt.train.config import (
    DataConfig,
    TaskArgs,
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
        "task: stage1\nmodel: {dim: 64, rcm: {dim: 32, depth: 1}}\n"
        "optim: {lr: 1e-4, betas: [0.9, 0.95]}\ndata: {crop: 256, sources: ../x}\nrun: {steps: 100}\n",
    )
    _write(
        tmp_path / "child.yaml",
        "base: base.yaml\ntask: stage2\nmodel: {rcm: {depth: 3}}\nrun: {steps: 200, bf16: true}\n",
    )
    cfg = load_config(
        tmp_path / "child.yaml",
        ["optim.lr=3e-4", "model.rcm.groups=2", "task_args.k_choices=[1, 2]", "run.init_from=runs/s1", "data.crop=128"],
    )
    assert cfg.task == "stage2"
    assert cfg.model == MRTConfig(dim=64, rcm=RCMConfig(dim=32, depth=3, groups=2))
    assert cfg.task_args == TaskArgs(k_choices=[1, 2])
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
    b = TrainConfig.from_dict({"task": "toy", "run": {"steps": 3}, "model": {"dim": 64}}).to_dict()
    assert config_diff(a, b) == ["model.dim", "run.steps"]


def test_model_and_task_args_are_typed_at_load_time(tmp_path: Path) -> None:
    f = _write(tmp_path / "c.yaml", "task: stage1\nmodel: {dim: 64}\ntask_args: {w_lpips: 0.5}\n")
    cfg = load_config(f)
    assert isinstance(cfg.model, MRTConfig) and cfg.model.dim == 64 and cfg.model.heads == 4
    assert isinstance(cfg.task_args, TaskArgs) and cfg.task_args.w_lpips == 0.5
    with pytest.raises(ConfigError, match=r"^config key 'task_args.w_lpips' must be a number, got 'abc'$"):
        load_config(f, ["task_args.w_lpips=abc"])
    with pytest.raises(ConfigError, match=r"unknown config key 'task_args.w_lpip' \(did you mean 'task_args.w_lpips'"):
        load_config(f, ["task_args.w_lpip=1"])
    with pytest.raises(ConfigError, match="config key 'model.rcm.depth' must be an integer, got 'x'"):
        load_config(f, ["model.rcm.depth=x"])
    with pytest.raises(ConfigError, match="config key 'model.mixing' must be one of 'birwkv', 'none', 'global_vit'"):
        load_config(f, ["model.mixing=rwkv"])
    with pytest.raises(ConfigError, match=r"^model: dim \(64\) must be divisible by heads \(5\)$"):
        load_config(f, ["model.heads=5"])
    with pytest.raises(ConfigError, match="config key 'task_args.k_choices\\[1\\]' must be an integer"):
        load_config(f, ["task_args.k_choices=[4, four]"])
    with pytest.raises(ConfigError, match="config section 'model' must be a mapping"):
        load_config(f, ["model=[1]"])


def test_resolved_config_round_trips_and_old_partial_model_dicts_load() -> None:
    cfg = TrainConfig.from_dict({"task": "stage1", "model": {"dim": 64}, "task_args": {"k_choices": [4]}})
    tree = cfg.to_dict()
    assert tree["model"] == MRTConfig(dim=64).to_dict() and tree["task_args"]["k_choices"] == [4]
    assert TrainConfig.from_dict(tree) == cfg
    # a checkpoint written before the sections were typed stored only the keys its YAML set
    old = {"task": "stage1", "model": {"dim": 64}, "task_args": {"k_choices": [4]}}
    assert TrainConfig.from_dict(old).to_dict() == tree


def test_model_config_canonical_json_is_unchanged_by_the_builder() -> None:
    """Model ids hash the canonical JSON: building must keep every value exactly (ints stay ints)."""
    shipped = (
        '{"dec_depth":3,"decode":"soft","dim":128,"enc_depth":2,"heads":4,"mixing":"birwkv","mlp_ratio":3.0,'
        '"n_tokens":32,"name":"mrt-s","patch":16,"rcm":{"depth":2,"dim":96,"groups":4,"passes":2},'
        '"target":{"bits":16,"depth":2,"dim":128,"pixel_generator":"taef2"},"token_bits":16,"window":128}'
    )
    import json

    assert canonical_json(MRTConfig.from_dict(json.loads(shipped)).to_dict()) == shipped
    assert canonical_json(MRTConfig.from_dict({"mlp_ratio": 3}).to_dict()) == canonical_json(
        {**MRTConfig().to_dict(), "mlp_ratio": 3}
    )


@dataclass(frozen=True)
class _Inner:
    n: int = 1
    names: tuple[str, ...] = ()


@dataclass
class _Outer:
    required: str
    mode: Literal["a", "b"] = "a"
    ratio: float | None = None
    pair: tuple[int, float] = (0, 0.0)
    inner: _Inner = field(default_factory=_Inner)
    table: dict[str, _Inner] = field(default_factory=dict)
    free: Any = None
    files: list[str] = field(default_factory=list)


def test_builder_types_and_messages() -> None:
    got = build(
        _Outer,
        {"required": "x", "mode": "b", "ratio": "1e-3", "pair": [2, 3], "inner": {"n": 4.0, "names": ["p"]},
         "table": {"k": {"n": 2}}, "free": {"any": [1]}, "files": "one.png"},
    )  # fmt: skip
    assert got == _Outer("x", "b", 1e-3, (2, 3), _Inner(4, ("p",)), {"k": _Inner(2)}, {"any": [1]}, ["one.png"])
    assert isinstance(got.inner.n, int) and isinstance(got.pair[1], int)  # an int stays an int where a float fits
    assert build(_Outer, {"required": "x", "inner": None}).inner == _Inner()
    bad = [
        ({}, "missing config key 'required'"),
        ({"required": 1}, "config key 'required' must be a string, got 1"),
        ({"required": "x", "mode": "c"}, "config key 'mode' must be one of 'a', 'b', got 'c'"),
        ({"required": "x", "ratio": True}, "config key 'ratio' must be a number, got True"),
        ({"required": "x", "pair": [1]}, "config key 'pair' must have 2 items, got 1"),
        ({"required": "x", "inner": {"n": 1.5}}, "config key 'inner.n' must be an integer, got 1.5"),
        ({"required": "x", "inner": {"nn": 1}}, "unknown config key 'inner.nn' \\(did you mean 'inner.n'\\?\\)"),
        ({"required": "x", "table": {"k": {"n": "2"}}}, "config key 'table.k.n' must be an integer, got '2'"),
        ({"required": "x", "table": [1]}, "config key 'table' must be a mapping"),
    ]
    for data, message in bad:
        with pytest.raises(ConfigError, match=message):
            build(_Outer, data)
