"""The quality ladder on a tiny model: every rung is made, scored, cached and rendered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mrt.eval.images import LoadedImage
from mrt.eval.ladder import LadderInputs, ladder_reconstructions, render_ladder, run_ladder
from mrt.eval.suite import MetricSuite
from mrt.models.codec_model import MRTCodecModel
from mrt.models.config import MRTConfig, RCMConfig, TargetConfig
from mrt.models.generator import TargetAutoencoder
from mrt.models.taef2 import TAEF2Decoder


def _model() -> MRTCodecModel:
    torch.manual_seed(0)
    cfg = MRTConfig(window=64, dim=32, heads=2, enc_depth=1, dec_depth=1, n_tokens=4, token_bits=8,
                    rcm=RCMConfig(dim=16, depth=1, groups=2, passes=2), target=TargetConfig(bits=8, dim=16, depth=1))
    return MRTCodecModel(cfg).eval()


def _inputs(model: MRTCodecModel, calls: list[int]) -> LadderInputs:
    def coder(img: np.ndarray) -> tuple[bytes, np.ndarray]:
        calls.append(1)
        return b"x" * 10, model.reconstruct(img)

    stage0 = TargetAutoencoder(model.cfg.target).eval()
    return LadderInputs(taef2_decoder=TAEF2Decoder().eval(), stage0=stage0, ks=(2, 4), coders={4: coder})


def test_every_rung_has_the_image_size() -> None:
    model = _model()
    img = np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    rungs = ladder_reconstructions(model, img, _inputs(model, []))
    names = [r.name for r in rungs]
    assert names == ["taef2", "latent_render", "stage0_hard", "stage0_soft", "tokens_k2", "tokens_k4", "file_k4"]
    assert all(r.image.shape == img.shape and r.image.dtype == np.uint8 for r in rungs)
    assert rungs[-1].bpp == 80 / (40 * 70)
    # the file rung is the codec's reconstruction, which the decoder of hard tokens must equal
    assert np.array_equal(rungs[-1].image, model.reconstruct(img))


def test_run_scores_caches_and_renders(tmp_path: Path) -> None:
    model = _model()
    rng = np.random.default_rng(1)
    images = [LoadedImage(f"im{i}", rng.integers(0, 256, (32, 48, 3), dtype=np.uint8), f"h{i}") for i in range(2)]
    calls: list[int] = []
    suite = MetricSuite(["psnr"], fid=False)
    cache = tmp_path / "ladder.json"
    table = run_ladder(model, images, _inputs(model, calls), suite, cache=cache)
    assert len(calls) == 2 and cache.is_file()
    assert set(table["file_k4"]) == {"im0", "im1"} and table["file_k4"]["im0"]["psnr"] > 0
    again = run_ladder(model, images, _inputs(model, calls), suite, cache=cache)
    assert len(calls) == 2 and again == table  # resumed from the cache, nothing recomputed
    text = render_ladder(table, ["psnr"], "# ladder")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| rung")]
    assert len(rows) == 7 and "real file" in text and "Means over 2 images." in text
