"""Evaluation runner and CLIs with a fake codec and mocked metrics (no real networks)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mrt.eval.baselines import Availability, Baseline
from mrt.eval.cache import BaselineCache
from mrt.eval.evaluate import evaluate_codec, evaluate_models
from mrt.eval.images import load_images
from mrt.eval.schema import CSV_COLUMNS, ResultSet
from mrt.eval.suite import MetricSuite
from mrt.eval.sweep import run_baseline

# ---------------------------------------------------------------------------------------------
# fakes
# ---------------------------------------------------------------------------------------------


def fake_metrics_module() -> types.SimpleNamespace:
    """Same call signatures as ``mrt.metrics``, trivial maths."""

    def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
        mse = float(((x - y) ** 2).mean())
        return 99.0 if mse == 0 else float(10 * np.log10(1.0 / mse))

    def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> float:
        return float(1.0 - (x - y).abs().mean())

    class _Dist:
        def __init__(self, **_: object) -> None:
            pass

        def eval(self) -> _Dist:
            return self

        def to(self, _device: str) -> _Dist:
            return self

        def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return (x - y).abs().mean(dim=(1, 2, 3))  # [B]

    class FIDFeatureExtractor:
        def __init__(self, device: str = "cpu") -> None:
            pass

        def __call__(self, p: torch.Tensor) -> np.ndarray:
            m = p.mean(dim=(2, 3))  # [N, 3]
            s = p.std(dim=(2, 3))
            return torch.cat([m, s], 1).double().numpy()  # [N, 6]

    def extract_patches(img: torch.Tensor, patch: int = 64) -> torch.Tensor:
        b, c, h, w = img.shape
        nh, nw = h // patch, w // patch
        x = img[:, :, : nh * patch, : nw * patch]
        return x.reshape(b, c, nh, patch, nw, patch).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, patch, patch)

    def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
        return float(((a.mean(0) - b.mean(0)) ** 2).sum())

    def kid_from_features(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        return float(abs(a.mean() - b.mean())), 0.0

    return types.SimpleNamespace(psnr=psnr, ms_ssim=ms_ssim, LPIPS=_Dist, DISTS=_Dist,
                                 FIDFeatureExtractor=FIDFeatureExtractor, extract_patches=extract_patches,
                                 fid_from_features=fid_from_features, kid_from_features=kid_from_features)


class FakeCodec:
    """Lossy 'codec': quantise to ``levels`` grey steps, zlib, 6-byte header with H and W."""

    def __init__(self, name: str, levels: int) -> None:
        self.name = name
        self.levels = levels
        self.model_id = 0xABC123 + levels

    def compress(self, img: np.ndarray) -> bytes:
        step = 256 // self.levels
        q = (img // step).astype(np.uint8)
        h, w = img.shape[:2]
        return b"FK" + h.to_bytes(2, "big") + w.to_bytes(2, "big") + zlib.compress(q.tobytes(), 9)

    def decompress(self, data: bytes) -> np.ndarray:
        assert data[:2] == b"FK"
        h, w = int.from_bytes(data[2:4], "big"), int.from_bytes(data[4:6], "big")
        q = np.frombuffer(zlib.decompress(data[6:]), np.uint8).reshape(h, w, 3)
        step = 256 // self.levels
        return (q.astype(np.int32) * step + step // 2).clip(0, 255).astype(np.uint8)

    def estimate_bpp(self, img: np.ndarray) -> float:
        return len(self.compress(img)) * 8.0 / (img.shape[0] * img.shape[1])


def fake_codec_module() -> types.SimpleNamespace:
    class Codec:
        @staticmethod
        def load(name_or_path: str | None = None) -> FakeCodec:
            levels = {"fake-a": 4, "fake-b": 16, None: 8}[name_or_path]
            return FakeCodec(name_or_path or "default", levels)

    def open_for(data: bytes) -> FakeCodec:
        return FakeCodec("any", 4)

    return types.SimpleNamespace(Codec=Codec, open_for=open_for, list_models=lambda: [])


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(64, 96), (80, 64), (64, 64)]):
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([xx * 2 % 256, yy * 3 % 256, (xx + yy + 20 * i) % 256], -1).astype(np.float64)
        img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / ("sub" if i == 2 else "") / f"img{i}.png")
    (d / "notes.txt").write_text("not an image")
    return d


def _fake_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """The metric suite built by the CLI gets the fake metrics instead of ``mrt.metrics``."""
    fake = fake_metrics_module()
    monkeypatch.setattr("mrt.eval.suite.metrics_module", lambda: fake)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_metrics(monkeypatch)
    monkeypatch.setitem(sys.modules, "mrt.codec", fake_codec_module())


def _parse(argv: list[str]) -> tuple[argparse.Namespace, object]:
    from mrt.cli import cmd_baselines, cmd_eval, cmd_report

    ap = argparse.ArgumentParser(prog="mrt")
    sub = ap.add_subparsers(dest="command", required=True)
    mods = {"eval": cmd_eval, "baselines": cmd_baselines, "report": cmd_report}
    for m in mods.values():
        m.register(sub)
    args = ap.parse_args(argv)
    return args, mods[args.command]


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------


def test_load_images_recursive_sorted(image_dir: Path) -> None:
    imgs = load_images([image_dir])
    assert [i.name for i in imgs] == ["img0.png", "img1.png", "sub/img2.png"]
    assert all(i.pixels.dtype == np.uint8 and i.pixels.shape[2] == 3 for i in imgs)
    assert len({i.hash for i in imgs}) == 3


def test_eval_cli_writes_valid_json_and_csv(mocked: None, image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    bs = tmp_path / "bitstreams"
    feats = tmp_path / "features"
    args, mod = _parse(["eval", str(image_dir), "--model", "fake-a", "--model", "fake-b",
                        "-o", str(out), "--bitstreams", str(bs), "--name", "mrt-test", "--feature-cache", str(feats)])
    assert mod.run(args) == 0  # type: ignore[attr-defined]
    # the originals' FID features: one file per image, shared by both models
    assert len(list((feats / "fid-p64").glob("*.npy"))) == 3
    data = json.loads((out / "mrt-test.json").read_text())
    assert data["name"] == "mrt-test"
    res = data["results"]
    for key in ("bpp", "psnr", "ms-ssim", "lpips", "dists", "fid", "kid", "est_bpp", "setting"):
        assert len(res[key]) == 2, key
    assert res["bpp"] == sorted(res["bpp"])
    assert res["setting"] == ["fake-a", "fake-b"]  # fewer levels -> fewer bits
    assert all(v is not None for k in ("psnr", "ms-ssim", "lpips", "dists", "fid", "kid") for v in res[k])
    assert data["meta"]["models"][0]["model_id"] == f"{0xABC123 + 4:06x}"
    assert len(data["images"]) == 6
    # bpp counts the real files on disk (header included)
    for rec in data["images"]:
        stem = rec["image"].replace("/", "_").removesuffix(".png")
        f = bs / "mrt-test" / rec["setting"] / f"{stem}.mrt"
        assert rec["bpp"] == pytest.approx(f.stat().st_size * 8 / (rec["height"] * rec["width"]))
        assert rec["est_bpp"] == pytest.approx(rec["bpp"])
        assert rec["enc_s"] >= 0 and rec["dec_s"] >= 0
    rs = ResultSet.read_json(out / "mrt-test.json")
    assert [p.setting for p in rs.sorted_points()] == ["fake-a", "fake-b"]
    with (out / "mrt-test.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert len(rows) == 6 and {r["codec"] for r in rows} == {"mrt-test"}
    assert all(float(r["bpp"]) > 0 and r["psnr"] for r in rows)


def test_originals_fid_features_are_computed_once(image_dir: Path, tmp_path: Path) -> None:
    """Two rate points and a second run: each original's patch features are computed once, and
    the FID/KID they give equal those of features computed afresh."""
    from mrt.eval.cache import FeatureStore

    imgs = load_images([image_dir])
    calls: list[tuple[int, ...]] = []

    def counting_suite() -> MetricSuite:
        suite = MetricSuite(["psnr"], fid=True, module=fake_metrics_module())
        inner = suite.patch_features

        def patch_features(img: np.ndarray) -> np.ndarray:
            calls.append(img.shape)
            return inner(img)

        suite.patch_features = patch_features  # type: ignore[method-assign]
        return suite

    load = fake_codec_module().Codec.load
    fresh = evaluate_models(["fake-a", "fake-b"], imgs, counting_suite(), loader=load, log=None,
                            features=FeatureStore(None))
    assert len(calls) == 3 + 2 * 3  # originals once, reconstructions once per rate point
    calls.clear()
    store = tmp_path / "feat"
    first = evaluate_models(["fake-a", "fake-b"], imgs, counting_suite(), loader=load, log=None,
                            features=FeatureStore(store))
    assert len(calls) == 9 and len(list(store.rglob("*.npy"))) == 3
    calls.clear()
    again = evaluate_models(["fake-a", "fake-b"], imgs, counting_suite(), loader=load, log=None,
                            features=FeatureStore(store))
    assert len(calls) == 2 * 3  # a new run reads the originals' features from disk
    for rs in (first, again):
        assert [(p.fid, p.kid) for p in rs.points] == [(p.fid, p.kid) for p in fresh.points]
    assert all(p.fid is not None and p.fid > 0 for p in fresh.points)


def test_eval_without_fid_and_with_unavailable_metrics(image_dir: Path, tmp_path: Path) -> None:
    """A network whose weights are missing is reported with the reason and left empty."""
    mod = fake_metrics_module()

    def no_weights(**_: object) -> None:
        raise FileNotFoundError("lpips_alex.safetensors not fetched")

    mod.LPIPS = no_weights
    suite = MetricSuite(["psnr", "ms-ssim", "lpips"], fid=False, module=mod)  # an alias is accepted
    assert suite.metrics == ("psnr", "ms_ssim", "lpips")
    st = suite.status()
    assert st["psnr"].impl == "mrt.metrics" and st["ms_ssim"].impl == "mrt.metrics"
    assert not st["lpips"].available and "LPIPS() failed" in st["lpips"].reason
    assert "not fetched" in st["lpips"].reason
    assert not st["fid"].available and st["fid"].reason == "disabled"
    imgs = load_images([image_dir])
    rs = evaluate_models(["fake-b"], imgs, suite, loader=fake_codec_module().Codec.load, log=None)
    p = rs.points[0]
    assert p.psnr is not None and p.ms_ssim is not None and p.lpips is None and p.fid is None
    assert rs.meta["metrics"]["lpips"].startswith("unavailable: LPIPS() failed")


def test_unknown_metric_is_a_clear_error() -> None:
    from mrt.eval.common import EvalError

    with pytest.raises(EvalError, match=r"unknown metric\(s\) \['fid', 'foo'\]; known: \['psnr', 'ms_ssim'"):
        MetricSuite(["psnr", "foo", "fid"], module=fake_metrics_module())


class CountingBaseline(Baseline):
    """A quantising fake baseline that counts its encodes."""

    name = "countq"
    file_ext = ".bin"
    quality_range = (2.0, 64.0)
    default_qualities = (2, 8, 32)

    def __init__(self) -> None:
        self.encodes = 0
        self.decodes = 0

    def availability(self) -> Availability:
        return Availability(True)

    def encoder_version(self) -> str:
        return "count 1.0"

    def encode(self, img: np.ndarray, quality: float) -> bytes:
        self.encodes += 1
        return FakeCodec("q", int(quality)).compress(img)

    def decode(self, data: bytes) -> np.ndarray:
        self.decodes += 1
        return FakeCodec("q", 4).decompress(data)  # levels do not matter for the header


def test_baseline_cache_is_incremental_and_metrics_can_be_added(image_dir: Path, tmp_path: Path) -> None:
    imgs = load_images([image_dir])
    cache_dir = tmp_path / "cache"
    fake = fake_metrics_module()
    b = CountingBaseline()
    light = MetricSuite(["psnr"], fid=False, module=fake)
    rs1 = run_baseline(b, imgs, light, BaselineCache(cache_dir), log=None)
    assert b.encodes == 9
    assert [p.lpips for p in rs1.points] == [None] * 3
    assert (cache_dir / "records.jsonl").is_file()
    assert len(list((cache_dir / "bitstreams" / "countq").iterdir())) == 9
    # rerun: nothing encoded again
    rs2 = run_baseline(b, imgs, light, BaselineCache(cache_dir), log=None)
    assert b.encodes == 9
    assert [p.bpp for p in rs2.points] == [p.bpp for p in rs1.points]
    # add LPIPS, DISTS and FID later: decoded from stored bitstreams, never re-encoded
    full = MetricSuite(module=fake)
    dec_before = b.decodes
    rs3 = run_baseline(b, imgs, full, BaselineCache(cache_dir), log=None, heavy_max_bpp=None)
    assert b.encodes == 9 and b.decodes > dec_before
    assert all(p.lpips is not None and p.dists is not None and p.fid is not None for p in rs3.points)
    # FID only at chosen settings
    b3 = CountingBaseline()
    b3.name = "countq3"
    rs5 = run_baseline(b3, imgs, full, BaselineCache(cache_dir), log=None, fid_qualities=[8])
    assert [p.fid is not None for p in rs5.sorted_points()] == [False, True, False]
    # heavy metrics are skipped above heavy_max_bpp
    b2 = CountingBaseline()
    b2.name = "countq2"
    rs4 = run_baseline(b2, imgs, full, BaselineCache(cache_dir), log=None, heavy_max_bpp=1e-9)
    assert all(p.lpips is not None and p.dists is None and p.fid is None for p in rs4.points)
    # one line per key after compaction
    lines = (cache_dir / "records.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(x)["key"] for x in lines}) == 27


def test_baselines_cli_skips_unavailable_and_writes_json(image_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import mrt.eval.baselines as bl

    class Missing(CountingBaseline):
        name = "missing"

        def availability(self) -> Availability:
            return Availability(False, "libmissing not installed")

    monkeypatch.setitem(bl._REGISTRY, "countq", CountingBaseline)
    monkeypatch.setitem(bl._REGISTRY, "missing", Missing)
    _fake_metrics(monkeypatch)
    out = tmp_path / "res"
    args, mod = _parse(["baselines", str(image_dir), "--codecs", "missing,countq", "--qualities",
                        "countq=4,16", "-o", str(out), "--cache", str(tmp_path / "c"), "--no-fid"])
    assert mod.run(args) == 0  # type: ignore[attr-defined]
    assert "skip missing: unavailable (libmissing not installed)" in capsys.readouterr().err
    rs = ResultSet.read_json(out / "countq.json")
    assert [p.setting for p in rs.sorted_points()] == ["q=4", "q=16"]
    assert rs.meta["codec_version"] == "count 1.0" and rs.meta["n_images"] == 3
    assert (out / "countq.csv").is_file() and not (out / "missing.json").exists()


def test_evaluate_the_real_codec_api(image_dir: Path, tmp_path: Path, tiny_model: object) -> None:
    """A tiny random MRT model through ``mrt.codec.Codec``: real .mrt files, estimate beside them."""
    from mrt.codec import Codec

    codec = Codec.from_model(tiny_model, name="tiny")  # type: ignore[arg-type]
    imgs = load_images([image_dir], limit=2)
    suite = MetricSuite(["psnr"], fid=False, module=fake_metrics_module())
    recs, point = evaluate_codec(codec, imgs, suite, name="mrt", setting="tiny",
                                 bitstream_dir=tmp_path / "bs", log=None)
    for r in recs:
        f = tmp_path / "bs" / (Path(r.image).stem + ".mrt")
        assert r.nbytes == f.stat().st_size
        assert r.bpp == pytest.approx(r.nbytes * 8 / (r.height * r.width))
        assert r.est_bpp is not None and 0 < r.est_bpp <= r.bpp  # the header is not in the estimate
        assert r.psnr is not None
    assert point.n_images == 2


def test_quality_grid_options() -> None:
    from mrt.cli.cmd_baselines import _grids
    from mrt.eval.cli_support import UsageError

    assert _grids(None, ["vvc", "jpeg"]) == {"vvc": None, "jpeg": None}
    assert _grids(["63,60"], ["vvc", "jpeg"]) == {"vvc": [63.0, 60.0], "jpeg": [63.0, 60.0]}
    assert _grids(["vvc=63,60", "jpeg=1,5"], ["vvc", "jpeg"]) == {"vvc": [63.0, 60.0], "jpeg": [1.0, 5.0]}
    with pytest.raises(UsageError):
        _grids(["hevc=40"], ["vvc"])
    with pytest.raises(UsageError):
        _grids(["vvc=a,b"], ["vvc"])


def test_reuse_decodes_the_stored_files(image_dir: Path, tmp_path: Path, tiny_model: object) -> None:
    """``reuse``: the files a previous run left are decoded, not encoded again (FID added later)."""
    from mrt.codec import Codec

    codec = Codec.from_model(tiny_model, name="tiny")  # type: ignore[arg-type]
    imgs = load_images([image_dir], limit=2)
    suite = MetricSuite(["psnr"], fid=False, module=fake_metrics_module())
    first, _ = evaluate_codec(codec, imgs, suite, name="mrt", setting="tiny", bitstream_dir=tmp_path / "bs", log=None)
    # a smaller file (other tokens per window) in place of the first image's: reuse must decode it
    other = codec.compress(imgs[0].pixels, k=2)
    (tmp_path / "bs" / "img0.mrt").write_bytes(other)

    def no_encode(_img: np.ndarray) -> bytes:
        raise AssertionError("encoded again")

    codec.encode = no_encode  # type: ignore[method-assign]
    again, _ = evaluate_codec(codec, imgs, suite, name="mrt", setting="tiny", bitstream_dir=tmp_path / "bs",
                              log=None, reuse=True)
    assert again[0].nbytes == len(other) < first[0].nbytes and again[0].enc_s is None
    assert again[1].nbytes == first[1].nbytes and again[1].psnr == first[1].psnr
    with pytest.raises(AssertionError, match="encoded again"):
        evaluate_codec(codec, imgs, suite, name="mrt", setting="tiny", bitstream_dir=tmp_path / "bs2",
                       log=None, reuse=True)
