"""Report generation from synthetic results: markdown, BD-rate table, figures, schema I/O."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrt.eval.report import bd_table, generate_report, interpolate_at
from mrt.eval.visuals import make_visuals
from mrt.eval.schema import (
    ImageRecord,
    RatePoint,
    ResultSet,
    ResultsError,
    aggregate,
    load_results,
    merge_results,
    rename_settings,
)


def _curve(name: str, scale: float, with_perceptual: bool = True) -> ResultSet:
    """log-linear synthetic curves; ``scale`` < 1 means fewer bits for the same quality."""
    pts = []
    for i, r in enumerate([0.005, 0.01, 0.02, 0.04, 0.08]):
        pts.append(RatePoint(
            setting=f"s{i}", n_images=24, bpp=r * scale, psnr=30 + 2 * math.log(r),
            ms_ssim=0.9 + 0.02 * math.log(r),
            lpips=(0.3 - 0.08 * math.log(r / 0.08)) if with_perceptual else None,
            dists=(0.2 - 0.05 * math.log(r / 0.08)) if with_perceptual else None,
            fid=(40 - 8 * math.log(r / 0.08)) if with_perceptual else None))
    return ResultSet(name=name, description=f"synthetic {name}", points=pts,
                     meta={"dataset": "kodak", "n_images": 24, "codec_version": "x 1.0"})


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    d = tmp_path / "json"
    _curve("vvc", 1.0).write_json(d / "vvc.json")
    _curve("mrt", 0.5).write_json(d / "mrt.json")
    _curve("jpeg2000", 1.6, with_perceptual=False).write_json(d / "jpeg2000.json")
    # a plain CompressAI file is accepted too
    (d / "other.json").write_text(json.dumps({"name": "other", "description": "", "results": {
        "bpp": [0.01, 0.02, 0.04], "psnr-rgb": [21.0, 22.0, 23.0], "ms-ssim": [0.8, 0.85, 0.9]}}))
    return d


def test_bd_table_and_interpolation(results_dir: Path) -> None:
    results = load_results(results_dir)
    table = bd_table(results, "vvc")
    assert table["mrt"]["psnr"].value == pytest.approx(-50.0, abs=1e-6)  # type: ignore[union-attr]
    assert table["mrt"]["dists"].value == pytest.approx(-50.0, abs=1e-6)  # type: ignore[union-attr]
    assert table["jpeg2000"]["psnr"].value == pytest.approx(60.0, abs=1e-6)  # type: ignore[union-attr]
    assert table["jpeg2000"]["dists"] is None  # no DISTS data -> n/a
    # BD-metric: mrt reaches vvc's quality at half the rate -> +2 ln 2 dB, -0.05 ln 2 DISTS
    mtable = bd_table(results, "vvc", kind="metric")
    assert mtable["mrt"]["psnr"].value == pytest.approx(2 * math.log(2), abs=1e-6)  # type: ignore[union-attr]
    assert mtable["mrt"]["dists"].value == pytest.approx(-0.05 * math.log(2), abs=1e-6)  # type: ignore[union-attr]
    assert mtable["mrt"]["psnr"].lo == pytest.approx(0.005) and mtable["mrt"]["psnr"].hi == pytest.approx(0.04)  # type: ignore[union-attr]
    vvc = next(r for r in results if r.name == "vvc")
    assert interpolate_at(vvc, "psnr", 0.02) == pytest.approx(30 + 2 * math.log(0.02))
    assert interpolate_at(vvc, "psnr", 0.001) is None


def test_generate_report_writes_markdown_and_pngs(results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    rep = generate_report(results_dir, out, visuals=False)
    md = rep.markdown.read_text()
    assert rep.markdown == out / "README.md"
    assert "## BD-rate vs VVC" in md
    assert "| mrt | -50.0% (" in md.replace("−", "-")
    assert "n/a" in md  # jpeg2000 has no DISTS
    # the BD-metric table (columns DISTS, LPIPS, PSNR, ...)
    assert "| mrt | -0.035 (0.0050–0.0400 bpp) | -0.055 (0.0050–0.0400 bpp) | +1.39 (0.0050–0.0400 bpp) |" in md
    assert "### other" in md and "### vvc" in md
    assert "Quality at target rates" in md
    for m in ("psnr", "ms-ssim", "lpips", "dists", "fid"):
        png = out / "figures" / f"rd_{m}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", m
        assert f"figures/rd_{m}.png" in md


def test_report_visual_comparison_with_real_codecs(results_dir: Path, tmp_path: Path) -> None:
    img = (np.random.default_rng(0).integers(0, 255, (96, 128, 3))).astype(np.uint8)
    img = np.asarray(Image.fromarray(img).resize((128, 96), Image.Resampling.BILINEAR))
    path = tmp_path / "pic.png"
    Image.fromarray(img).save(path)
    kw = dict(target_bpps=[0.5], crop=(16, 16, 64, 48), baselines=["jpeg2000", "webp"],
              cache_dir=tmp_path / "vcache")
    made, notes = make_visuals(load_results(results_dir), [path], tmp_path / "vis", **kw)  # type: ignore[arg-type]
    assert len(made) == 1
    png, caption = made[0]
    assert png.is_file() and png.stat().st_size > 1000 and "0.5000 bpp" in caption
    cached = sorted(p.name for p in (tmp_path / "vcache").iterdir())
    assert len(cached) == 4  # one bitstream + one json per codec
    again, _ = make_visuals(load_results(results_dir), [path], tmp_path / "vis2", **kw)  # type: ignore[arg-type]
    assert again[0][0].is_file()


def test_schema_round_trip_and_aggregation(tmp_path: Path) -> None:
    recs = [ImageRecord(codec="c", setting="q=1", image=f"i{i}.png", height=4, width=4, nbytes=2 + i,
                        bpp=(2 + i) * 8 / 16, psnr=20.0 + i, lpips=None if i == 0 else 0.5)
            for i in range(2)]
    p = aggregate(recs, "q=1", quality=1.0)
    assert p.bpp == pytest.approx((1.0 + 1.5) / 2) and p.psnr == pytest.approx(20.5)
    assert p.lpips is None  # not every image has it
    rs = ResultSet(name="c", points=[p], records=recs, meta={"k": 1})
    rs.write_json(tmp_path / "c.json")
    back = ResultSet.read_json(tmp_path / "c.json")
    assert back.points[0] == p and back.records == recs and back.meta == {"k": 1}
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["results"]["ms-ssim"] == [None] and data["results"]["bpp"] == [p.bpp]


def test_visual_refuses_a_bitstream_that_a_later_run_replaced(tiny_model_file: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two result sets sharing a bitstream folder: the older one's panel must not show the newer file."""
    from conftest import structured_image

    from mrt.codec import Codec
    from mrt.eval.common import safe_name
    from mrt.eval.visuals import _mrt_recon

    monkeypatch.setenv("MRT_MODEL_PATH", str(tiny_model_file))
    img = structured_image(64, 64)
    data = Codec.load(str(tiny_model_file)).compress(img)
    folder = tmp_path / "bs" / safe_name("tiny-k8")
    folder.mkdir(parents=True)
    (folder / "pic.mrt").write_bytes(data)
    rec = ImageRecord(codec="t", setting="tiny-k8", image="pic.png", height=64, width=64, nbytes=len(data),
                      bpp=len(data) * 8 / 64**2)
    rs = ResultSet(name="t", description="", points=[aggregate([rec], "tiny-k8")],
                   meta={"bitstream_root": str(tmp_path / "bs"), "models": ["tiny-k8"]}, records=[rec])
    got = _mrt_recon(rs, "tiny-k8", "pic.png", img)
    assert got is not None and got[0].shape == img.shape
    rec.nbytes += 1  # the results were made from another file than the one stored now
    with pytest.raises(ValueError, match="stored bitstream"):
        _mrt_recon(rs, "tiny-k8", "pic.png", img)


def test_merge_results_joins_rate_points_and_refuses_duplicates() -> None:
    def part(setting: str, bpp: float) -> ResultSet:
        rec = ImageRecord(codec="m", setting=setting, image="a.png", height=8, width=8, nbytes=1, bpp=bpp)
        return ResultSet(name=f"m-{setting}", description="d", points=[aggregate([rec], setting)], records=[rec],
                         meta={"dataset": "kodak", "models": [{"setting": setting}]})

    merged = merge_results([part("k8", 0.01), part("k32", 0.04)], "m")
    assert merged.name == "m" and [p.setting for p in merged.sorted_points()] == ["k8", "k32"]
    assert len(merged.records) == 2 and [r.codec for r in merged.records] == ["m", "m"]
    assert merged.meta["models"] == [{"setting": "k8"}, {"setting": "k32"}]
    assert merged.meta["dataset"] == "kodak"
    with pytest.raises(ResultsError, match="k8"):
        merge_results([part("k8", 0.01), part("k8", 0.02)], "m")
    with pytest.raises(ResultsError, match="nothing"):
        merge_results([], "m")
    # a rerun of one point (say with FID) replaces the first run's point, records and model entry
    again = part("k8", 0.03)
    again.points[0].fid = 99.0
    later = merge_results([part("k8", 0.01), part("k32", 0.04), again], "m", later_wins=True)
    assert [(p.setting, p.bpp, p.fid) for p in later.sorted_points()] == [("k8", 0.03, 99.0), ("k32", 0.04, None)]
    assert [r.bpp for r in later.records] == [0.04, 0.03] and len(later.meta["models"]) == 2


def test_rename_settings_moves_a_working_name_to_the_released_one() -> None:
    rec = ImageRecord(codec="soup", setting="soup-k8", image="a.png", height=8, width=8, nbytes=1, bpp=0.1)
    rs = ResultSet(name="soup", description="d", points=[aggregate([rec], "soup-k8")], records=[rec],
                   meta={"models": [{"setting": "soup-k8", "spec": "runs/soup.mrtm#soup-k8", "model_id": "70e800"}]})
    out = rename_settings(rs, "soup-", "mrt-s2-")
    assert [p.setting for p in out.points] == ["mrt-s2-k8"] and [r.setting for r in out.records] == ["mrt-s2-k8"]
    assert out.meta["models"] == [{"setting": "mrt-s2-k8", "spec": "runs/soup.mrtm#soup-k8", "model_id": "70e800"}]
    assert rs.points[0].setting == "soup-k8"  # the input is left as it was


def test_visual_panels_pick_each_models_nearest_rate_and_code_again_without_stored_files(
        tiny_model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per image and target: each learned model's nearest point; the image is coded again with the
    installed model when the evaluation's bitstream folder is gone, and only if the size agrees."""
    from conftest import structured_image

    from mrt.codec import Codec

    monkeypatch.setenv("MRT_MODEL_PATH", str(tiny_model_file))
    img = structured_image(64, 96)
    path = tmp_path / "pic.png"
    Image.fromarray(img).save(path)
    sizes = {v: len(Codec.load(v).compress(img)) for v in ("tiny-k4", "tiny-k8")}
    assert sizes["tiny-k4"] < sizes["tiny-k8"]
    recs = [ImageRecord(codec="t", setting=v, image="pic.png", height=64, width=96, nbytes=n,
                        bpp=n * 8 / (64 * 96)) for v, n in sizes.items()]
    rs = ResultSet(name="t", points=[aggregate([r], r.setting) for r in recs], records=recs,
                   meta={"bitstream_root": str(tmp_path / "gone"), "models": list(sizes)})
    bpps = [r.bpp for r in recs]
    targets = [b * 1.1 for b in bpps]  # one figure per target, each nearest one model point
    made, notes = make_visuals([rs], [path, path], tmp_path / "vis", target_bpps=targets, baselines=[],
                               max_over=1.2)
    assert notes == [] and len(made) == 4  # two images x two targets
    for (_, caption), bpp in zip(made, bpps * 2):  # classical codecs matched to the learned file's rate
        assert f"not above {bpp:.4f} bpp" in caption
    recs[1].nbytes += 1  # the results came from another file than the model makes now
    made, notes = make_visuals([rs], [path], tmp_path / "vis2", target_bpps=targets[1:], baselines=[],
                               max_over=1.2)
    assert len(made) == 1 and len(notes) == 1 and "coded again" in notes[0] and "bytes" in notes[0]
    made, notes = make_visuals([rs], [path], tmp_path / "vis3", target_bpps=[targets[1] * 100],
                               baselines=[], max_over=1.2)
    assert len(made) == 1 and notes == []  # no point near that rate: original only, no error
    # results that name their model ids: the same model is shown even if the container grew a
    # byte since (a later format version); another model is refused
    ids = {v: f"{Codec.load(v).variant.model_id:06x}" for v in sizes}
    rs.meta["models"] = [{"setting": v, "spec": v, "model_id": ids[v]} for v in sizes]
    made, notes = make_visuals([rs], [path], tmp_path / "vis4", target_bpps=targets[1:], baselines=[],
                               max_over=1.2)
    assert notes == [] and f"not above {bpps[1]:.4f} bpp" in made[0][1]
    rs.meta["models"][1]["model_id"] = "abcdef"
    _, notes = make_visuals([rs], [path], tmp_path / "vis5", target_bpps=targets[1:], baselines=[],
                            max_over=1.2)
    assert len(notes) == 1 and "made by abcdef" in notes[0]
