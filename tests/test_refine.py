"""The token search (``mrt.refine``): a slower encoder whose files any decoder reads.

What must hold: the search's loss is the loss of the file it writes (each step decodes hard bits),
the kept bits are never worse than the encoder's, a budget is kept, the crop path for large
images renders the same pixels as the whole-image path, and bad settings are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mrt.refine as refine_mod
from conftest import structured_image
from mrt.cli.main import main
from mrt.codec import Codec, decompress
from mrt.errors import ModelError
from mrt.refine import RefineSettings, TokenRefiner


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.load("mrt-s2-k16")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return structured_image(96, 160, seed=3)


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) / 255 - b.astype(np.float64) / 255) ** 2))


def test_search_lowers_the_written_files_error(codec: Codec, image: np.ndarray) -> None:
    plain = codec.encode(image)
    codec.set_refine(RefineSettings(steps=8, lr=0.1, w_mse=1, w_lpips=0))
    try:
        report = codec.encode(image)
    finally:
        codec.set_refine(None)
    r = report.refined
    assert r is not None and len(r.losses) == 9 and r.flipped > 0
    assert r.losses[0] == pytest.approx(_mse(codec.decompress(plain.data), image), rel=0.02, abs=2e-5)
    out = decompress(report.data)  # the module-level decoder: nothing about the search is needed
    # the search's loss is the loss of the file it wrote (up to rounding to 8 bits)
    assert r.chosen_loss == pytest.approx(_mse(out, image), rel=0.02, abs=2e-5)
    assert r.chosen_loss == min(r.losses) and r.chosen_loss < 0.97 * r.initial_loss
    assert report.k == plain.k and report.refined is r and plain.refined is None


def test_no_steps_is_the_plain_encoder(codec: Codec, image: np.ndarray) -> None:
    codec.set_refine(RefineSettings(steps=0))
    assert codec.refine is None and codec.setting == codec.name
    assert codec.compress(image) == Codec.load("mrt-s2-k16").compress(image)


def test_budget_is_kept(codec: Codec, image: np.ndarray) -> None:
    plain = codec.encode(image, max_bytes=60)
    codec.set_refine(RefineSettings(steps=6, lr=0.1, w_lpips=0))
    try:
        report = codec.encode(image, max_bytes=len(plain.data))
        assert codec.setting == "mrt-s2-k16+refine6-lpips0-lr0.1"
    finally:
        codec.set_refine(None)
    assert report.refined is not None and report.k == plain.k
    assert len(report.data) <= len(plain.data)
    assert report.encoded_ks == plain.encoded_ks


def test_fallback_is_the_encoders_bits(codec: Codec, image: np.ndarray) -> None:
    model = codec.model
    x = model.image_to_tensor(image)
    result = TokenRefiner(RefineSettings(steps=4, lr=0.2, w_lpips=0)).refine(model, x, 96, 160, 8, accept=lambda b: False)
    assert result.chosen_step == 0 and result.flipped == 0
    assert torch.equal(result.bits, model.encode_bits(image, 8)[0])


def test_rate_term_adds_the_estimated_bits(codec: Codec, image: np.ndarray) -> None:
    model, x = codec.model, codec.model.image_to_tensor(image)
    base = TokenRefiner(RefineSettings(steps=0, w_mse=1, w_lpips=0)).refine(model, x, 96, 160, 8)
    rated = TokenRefiner(RefineSettings(steps=0, w_mse=1, w_lpips=0, w_rate=0.5)).refine(model, x, 96, 160, 8)
    est = codec.encode(image, k=8).estimated_bpp
    # two float estimates of the same bits by different passes (the batched rate of training, the
    # coder's step-by-step one): they agree to ~1e-3 on this 2-window image, not bit for bit
    assert rated.losses[0] - base.losses[0] == pytest.approx(0.5 * est, rel=5e-3)


def test_crop_path_renders_the_same_pixels(codec: Codec, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large images: the RGB decoder on a crop with its halo = the whole render, cut."""
    model = codec.model
    img = structured_image(200, 264, seed=5)
    refiner = TokenRefiner(RefineSettings(steps=0, crop=64, seed=2, w_lpips=0))
    with torch.no_grad():
        bits = model.encode_bits(img, 8)
        geo = model.geometry(200, 264)
        codes = model.codes_from_logits(model.decoder(bits.float() * 2 - 1, geo.rows, geo.cols))
        latent = model.synthesize_latent(codes)
        full = model.generator.rgb_decoder(latent).clamp(0, 1)
        x = model.image_to_tensor(img)
        gen = torch.Generator().manual_seed(2)
        for _ in range(3):
            rgb, ref = refiner._render(model, latent, x, 200, 264, gen)
            assert rgb.shape[-2:] == ref.shape[-2:] == (64, 64)
            # find the crop's place from the reference pixels, then compare the renders there
            hits = [(py, px) for py in range(0, 200 - 63, 8) for px in range(0, 264 - 63, 8)
                    if torch.equal(x[:, :, py:py + 64, px:px + 64], ref)]
            assert len(hits) == 1
            py, px = hits[0]
            torch.testing.assert_close(rgb, full[:, :, py:py + 64, px:px + 64], atol=2e-5, rtol=0)
    # the search itself takes that path when the image is over the tiling threshold
    monkeypatch.setattr(refine_mod, "TILE_PIXELS", 100 * 100)
    result = TokenRefiner(RefineSettings(steps=3, lr=0.1, crop=64, w_lpips=0)).refine(model, x, 200, 264, 8)
    assert result.chosen_step == 3 and result.bits.shape == bits[0].shape


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": -1}, "steps must be >= 0"),
    ({"lr": 0.0}, "learning rate must be > 0"),
    ({"w_mse": 0.0, "w_lpips": 0.0}, "w_mse or w_lpips > 0"),
    ({"w_rate": -1.0}, "weights must be >= 0"),
    ({"crop": 100}, "multiple of 8"),
    ({"w_dists": -0.5}, "weights must be >= 0"),
    ({"dists_crop": 32}, "DISTS crop must be >= 64"),
])
def test_bad_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RefineSettings(**kwargs)  # type: ignore[arg-type]


def test_labels() -> None:
    assert RefineSettings().label == "refine30" and RefineSettings(steps=40).label == "refine40"
    assert RefineSettings(steps=20, w_mse=1, w_lpips=0, w_rate=0.1).label == "refine20-lpips0-mse1-rate0.1"
    assert RefineSettings(w_dists=2, w_rate=2).label == "refine30-dists2-rate2"
    assert RefineSettings(w_dists=2, dists_crop=128).label == "refine30-dists2-dcrop128"
    assert RefineSettings(dists_crop=128).label == "refine30"  # no DISTS term: the crop is unused


def test_random_crop_cuts_the_same_window() -> None:
    a = torch.arange(2 * 3 * 50 * 70, dtype=torch.float32).reshape(2, 3, 50, 70)
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(6):
        ca, cb = refine_mod.random_crop(a, a + 1, 32, gen)
        assert ca.shape == (2, 3, 32, 32) and torch.equal(cb, ca + 1)
        y0, x0 = divmod(int(ca[0, 0, 0, 0]), 70)
        assert 0 <= y0 <= 50 - 32 and 0 <= x0 <= 70 - 32
        seen.add((y0, x0))
    assert len(seen) > 1  # the window moves
    whole, _ = refine_mod.random_crop(a, a, 64, gen)  # shorter than the side along H: all of it
    assert whole.shape == (2, 3, 50, 64)


def test_dists_term_is_the_metric_of_the_written_file(codec: Codec, image: np.ndarray) -> None:
    """``w_dists``: DISTS (the metric's own implementation) of the decoded pixels, added to the
    objective; over a crop when the image is larger than ``dists_crop`` (then the last step is kept)."""
    from mrt.metrics.dists import DISTS

    model, x = codec.model, codec.model.image_to_tensor(image)
    base = TokenRefiner(RefineSettings(steps=0, w_mse=1, w_lpips=0)).refine(model, x, 96, 160, 8)
    whole = TokenRefiner(RefineSettings(steps=0, w_mse=1, w_lpips=0, w_dists=2, dists_crop=160))
    out = codec.decompress(codec.compress(image, k=8))
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    expected = 2 * float(DISTS()(to_t(out), to_t(image)))
    assert whole.refine(model, x, 96, 160, 8).losses[0] - base.losses[0] == pytest.approx(expected, rel=0.02)
    cropped = TokenRefiner(RefineSettings(steps=3, lr=0.1, w_mse=1, w_lpips=0, w_dists=2, dists_crop=64))
    result = cropped.refine(model, x, 96, 160, 8)
    assert result.chosen_step == 3 and len(set(result.losses)) == 4


def test_default_objective_is_stage_twos_pixel_and_lpips_terms(codec: Codec, image: np.ndarray) -> None:
    """20 x MSE + LPIPS-alex of the plain file's pixels (the metric's own implementation)."""
    from mrt.metrics.lpips import LPIPS

    model, x = codec.model, codec.model.image_to_tensor(image)
    result = TokenRefiner(RefineSettings(steps=0)).refine(model, x, 96, 160, 16)
    out = codec.decompress(codec.compress(image))
    to_t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    expected = 20 * _mse(out, image) + float(LPIPS(net="alex")(to_t(out), to_t(image)))
    assert result.losses[0] == pytest.approx(expected, rel=0.01)


def test_two_d_latent_codec_is_refused() -> None:
    from test_latent2d import make_tiny_2d

    codec = Codec.from_model(make_tiny_2d())  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="needs an MRT model"):
        codec.set_refine(RefineSettings(steps=3))


def test_cli_refine(tmp_path: Path, capsys: pytest.CaptureFixture[str], image: np.ndarray) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(image).save(src)
    out = tmp_path / "a.mrt"
    assert main(["compress", str(src), "-m", "mrt-s2-k16", "--refine", "3", "--refine-lpips", "0", "-o", str(out)]) == 0
    line = capsys.readouterr().out
    assert "searched 3 steps" in line and "bits changed" in line
    assert main(["decompress", str(out), "-o", str(tmp_path / "b.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "b.png")).shape == image.shape
    capsys.readouterr()
    bad = tmp_path / "bad.mrt"
    assert main(["compress", str(src), "--refine", "-2", "-o", str(bad)]) != 0
    err = capsys.readouterr().err
    assert "steps must be >= 0" in err and "Traceback" not in err and not bad.exists()
    assert main(["compress", str(src), "--refine", "2", "--refine-dists", "-1", "-o", str(bad)]) != 0
    err = capsys.readouterr().err
    assert "weights must be >= 0" in err and "Traceback" not in err and not bad.exists()


def test_published_searched_files_are_the_results_files() -> None:
    """docs/results/bitstreams/mrt-s2-refine30: every file has the size its results record, names
    the shipped mrt-s2 model and decodes (one per rate point) at the recorded size."""
    from mrt.bitstream import read_header
    from mrt.eval.schema import ResultSet

    root = Path(__file__).resolve().parents[1]
    rs = ResultSet.read_json(root / "docs/results/json/mrt-s2-refine30.json")
    folder = root / rs.meta["bitstream_root"]
    assert len(rs.records) == 72
    mrt_s2 = Codec.load("mrt-s2-k16")
    decoded = set()
    for r in rs.records:
        data = (folder / r.setting.replace("+", "_") / f"{Path(r.image).stem}.mrt").read_bytes()
        assert len(data) == r.nbytes
        head = read_header(data)
        assert head.model_id == mrt_s2.file_id and (head.height, head.width) == (r.height, r.width)
        if r.setting not in decoded:
            decoded.add(r.setting)
            assert decompress(data).shape == (r.height, r.width, 3)
    assert len(decoded) == 3
