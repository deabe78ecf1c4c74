"""Issue 12's comparison: the factorised-prior ablation of the RCM, every comparison config
building and training one step, and the claims report's BD table."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mrt.codec import Codec
from mrt.data.batch import Batch
from mrt.errors import ConfigError
from mrt.models.config import MRTConfig, RCMConfig, model_id
from mrt.models.rcm import RCM
from mrt.train.config import load_config
from mrt.train.tasks import build_task

from conftest import make_tiny_model, structured_image, tiny_config

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = sorted((ROOT / "configs/claims").glob("*.yaml"))


def _factorized(seed: int = 0):
    return make_tiny_model(seed, rcm=RCMConfig(dim=16, depth=1, groups=2, passes=2, context="factorized"))


def test_factorized_prior_ignores_every_coded_bit() -> None:
    """The context-free prior's tables depend on the token index and step only, never on other bits."""
    rcm = _factorized().rcm
    torch.nn.init.normal_(rcm.token_index.weight)  # a trained-looking prior, not the uniform start
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 2, (1, 3, 8, 8), generator=gen).float() * 2 - 1  # [B, nW, K, d]
    b = torch.randint(0, 2, (1, 3, 8, 8), generator=gen).float() * 2 - 1
    for step in rcm.steps():
        la, lb = rcm.step_logits(a, step), rcm.step_logits(b, step)
        assert torch.equal(la, lb)
        assert torch.equal(la[:, 0], la[:, 2])  # the same tables in every window
    assert not torch.allclose(rcm.step_logits(a, rcm.steps()[0])[0, 0, 0], rcm.step_logits(a, rcm.steps()[0])[0, 0, 2])
    # the context model proper does depend on the coded bits
    ctx = make_tiny_model(0).rcm
    assert not torch.equal(ctx.step_logits(a, ctx.steps()[-1]), ctx.step_logits(b, ctx.steps()[-1]))


def test_factorized_prior_has_no_mixer_and_keeps_the_ids_of_the_context_model() -> None:
    fac, ctx = RCM(tiny_config(rcm=RCMConfig(dim=16, depth=1, groups=2, passes=2, context="factorized"))), RCM(tiny_config())
    assert len(fac.blocks) == 0 and fac.expand is None
    assert sum(p.numel() for p in fac.parameters()) < sum(p.numel() for p in ctx.parameters()) / 2
    cfg = tiny_config()
    assert "context" not in cfg.to_dict()["rcm"]  # default left out: every recorded id stays
    f = cfg.replace(rcm=RCMConfig(dim=16, depth=1, groups=2, passes=2, context="factorized"))
    assert f.to_dict()["rcm"]["context"] == "factorized"
    assert MRTConfig.from_dict(f.to_dict()) == f and model_id(f, "0" * 64) != model_id(cfg, "0" * 64)
    with pytest.raises(ConfigError, match="rcm.context"):
        tiny_config(rcm=RCMConfig(context="hyperprior"))  # type: ignore[arg-type]


def test_factorized_prior_round_trip_and_rate_match_the_file(tmp_path: Path) -> None:
    model = _factorized(3)
    torch.nn.init.normal_(model.rcm.token_index.weight, std=2.0)
    gen = torch.Generator().manual_seed(1)
    bits01 = torch.randint(0, 2, (6, 8, 8), generator=gen)  # [nW, k, d]
    with torch.no_grad():
        rate = float(model.rcm.rate_bits(bits01[None].float() * 2 - 1)[0])
    coded = model.rcm.encode(bits01)
    assert abs(len(coded.payload) * 8 - rate) <= 0.01 * rate + 32
    decoded, symbols = model.rcm.decode(coded.payload, 6, 8)
    assert torch.equal(decoded, bits01) and np.array_equal(symbols, coded.symbols)
    # the whole codec: compress / decompress through a model file, equal to the eval forward
    from mrt.models.modelfile import save_model_file

    path = tmp_path / "fac.mrtm"
    save_model_file(model, path, variants={"fac-k4": 4, "fac-k8": 8}, default_variant="fac-k8", description="test")
    codec = Codec.load(str(path))
    img = structured_image(64, 96)
    data = codec.compress(img)
    assert np.array_equal(Codec.load(str(path)).decompress(data), codec.reconstruct(img))


@pytest.mark.parametrize("path", CLAIMS, ids=[p.stem for p in CLAIMS])
def test_claims_config_builds_and_trains_one_step(path: Path) -> None:
    """Every variant of the comparison (and its shared stage 0) builds from its config and takes a
    finite, differentiable training step (no stage-0 run or TAEF2 weights needed)."""
    cfg = load_config(path, ["task_args.stage0=null", "task_args.init_taef2=false"])
    assert cfg.run.out_dir.startswith("runs/claims/")
    torch.manual_seed(0)
    task = build_task(cfg)
    crop = cfg.model.window  # one window (256 px for the 2-D codec, 128 px for MRT)
    lat = torch.randn(2, 32, crop // 8, crop // 8)
    pix = torch.rand(2, 3, crop, crop) if cfg.data.with_pixels else None
    out = task(Batch(pixels=pix, latents=lat), step=1)
    assert torch.isfinite(out.total)
    out.total.backward()
    grads = [p.grad for p in task.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_claims_variants_differ_only_where_stated() -> None:
    """The MRT variants are the paper's config with one change each, and every variant (the 2-D
    codec included) has the same steps x batch, crop and data."""
    cfgs = {p.stem: load_config(p) for p in CLAIMS if p.stem != "stage0"}
    base = cfgs["mrt_birwkv"]
    assert base.model.mixing == "birwkv" and base.model.rcm.context == "scctx"
    changes = {"mrt_none": {"mixing": "none"}, "mrt_global_vit": {"mixing": "global_vit"}}
    for name, change in changes.items():
        assert cfgs[name].model == base.model.replace(**change)
    assert cfgs["mrt_factorized"].model == base.model.replace(rcm=RCMConfig(**{**base.model.rcm.__dict__, "context": "factorized"}))
    for name, c in cfgs.items():
        assert (c.run.steps, c.data.batch_size, c.data.crop, c.data.cache_dir) == (
            base.run.steps, base.data.batch_size, base.data.crop, base.data.cache_dir), name
        assert c.task_args.stage0 == "runs/claims/stage0" and c.run.seed == base.run.seed
        if name != "latent2d":
            assert c.task_args == base.task_args and c.optim == base.optim


def _claims_module():
    spec = importlib.util.spec_from_file_location("claims", ROOT / "benchmarks/claims.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["claims"] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


def _results(name: str, bpp: list[float], dists: list[float]) -> dict:
    return {"name": name, "description": name, "meta": {"dataset": "kodak", "n_images": 1},
            "results": {"setting": [f"{name}-{i}" for i in range(len(bpp))], "bpp": bpp, "dists": dists,
                        "lpips": dists, "psnr": [20.0 + 10 * d for d in bpp]}}


def test_claims_report_bd_table_and_kept_conclusions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The report writes the BD table between the markers and keeps the hand-written text around it;
    a test needing half the bits of its anchor for every quality shows about -50%."""
    mod = _claims_module()
    monkeypatch.setattr(mod, "OUT", tmp_path)
    monkeypatch.setattr(mod, "RUNS", tmp_path / "runs")
    (tmp_path / "json").mkdir()
    bpp = [0.005, 0.01, 0.02, 0.04]
    d = [0.30, 0.25, 0.20, 0.15]
    (tmp_path / "json/latent2d.json").write_text(json.dumps(_results("latent2d", bpp, d)))
    (tmp_path / "json/mrt_birwkv.json").write_text(json.dumps(_results("mrt_birwkv", [b / 2 for b in bpp], d)))
    (tmp_path / "README.md").write_text(f"# t\n\nintro\n\n{mod.START}\nold\n{mod.END}\n\nconclusions stay\n")
    assert mod.main(["report"]) == 0
    text = (tmp_path / "README.md").read_text()
    assert "intro" in text and "conclusions stay" in text and "old" not in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| mrt_birwkv | latent2d |"))
    assert "-50.0%" in row.split("|")[3]
    assert (tmp_path / "rd_dists.png").is_file()
