"""The quality ladder: how much quality each stage of the pipeline loses (issue 11).

For one image, every *rung* is a reconstruction made with one more stage of the codec in the
path than the rung before, so the differences between rungs say where quality is lost:

* ``taef2``: the pretrained TAEF2 encoder + decoder round trip (the analysis transform's ceiling);
* ``latent_render``: the true TAEF2 latent through the model's own RGB decoder (its generator's
  last stage, fine-tuned in stage 2);
* ``stage0_hard`` / ``stage0_soft``: the stage-0 2-D codes (1/16 resolution, LFQ bits) through the
  pixel generator, hard (+-1) and soft (tanh of the pre-quantisation value) -- only when a
  stage-0 checkpoint is given;
* ``tokens_k{k}``: the MRT decoder fed the encoder's continuous tokens (before LFQ), first k per
  window, then the pixel generator (what quantisation of the 1-D tokens costs);
* ``file_k{k}``: the real decoded file of the rate variant with k tokens (bpp from its bytes).

``ladder_reconstructions`` makes the images; ``run_ladder`` scores them with the metric suite
and ``render_ladder`` writes the markdown table (means over the images).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mrt.eval.images import LoadedImage
from mrt.eval.suite import MetricSuite
from mrt.io import atomic_write_text
from mrt.metrics.registry import metric_spec
from mrt.models.codec_model import MRTCodecModel

RUNG_TEXT = {
    "taef2": "TAEF2 encoder -> pretrained TAEF2 decoder",
    "latent_render": "TAEF2 latent -> the model's RGB decoder",
    "stage0_hard": "stage-0 2-D codes (hard) -> pixel generator",
    "stage0_soft": "stage-0 2-D codes (soft) -> pixel generator",
    "tokens": "continuous 1-D tokens (before LFQ) -> MRT decoder -> generator",
    "file": "real file (LFQ + RCM + range coder) -> decoded image",
}


@dataclass
class Rung:
    """One reconstruction of one image."""

    name: str
    image: np.ndarray  # uint8 [H, W, 3]
    bpp: float | None = None


@dataclass
class LadderInputs:
    """What the ladder needs besides the model: optional extra networks and the coded variants."""

    taef2_decoder: nn.Module | None = None  # the pretrained TAEF2 decoder (rung ``taef2``)
    stage0: nn.Module | None = None  # a TargetAutoencoder (rungs ``stage0_*``)
    ks: Sequence[int] = (8, 16, 32)
    # k -> function image -> (file bytes, decoded image): the real codec of that rate variant
    coders: dict[int, Callable[[np.ndarray], tuple[bytes, np.ndarray]]] = field(default_factory=dict)


def _to_uint8(rgb: torch.Tensor, h: int, w: int) -> np.ndarray:
    """[1, 3, Hp, Wp] float -> uint8 [h, w, 3] (clamped, rounded, cropped)."""
    rgb = rgb[0, :, :h, :w].float().clamp(0.0, 1.0)
    return (rgb * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


@torch.inference_mode()
def ladder_reconstructions(model: MRTCodecModel, img: np.ndarray, inputs: LadderInputs) -> list[Rung]:
    """Every rung's reconstruction of ``img`` (uint8 [H, W, 3])."""
    h, w = img.shape[:2]
    geo = model.geometry(h, w)
    latent = model.analyse(model.image_to_tensor(img))  # [1, 32, Hp/8, Wp/8]
    rungs: list[Rung] = []
    if inputs.taef2_decoder is not None:
        rungs.append(Rung("taef2", _to_uint8(inputs.taef2_decoder(latent), h, w)))
    rungs.append(Rung("latent_render", _to_uint8(model.render(latent), h, w)))
    if inputs.stage0 is not None:
        z = inputs.stage0.encoder(latent)  # [1, bits, Hp/16, Wp/16] before LFQ
        for name, codes in (("stage0_hard", torch.where(z >= 0, 1.0, -1.0)), ("stage0_soft", torch.tanh(z))):
            rungs.append(Rung(name, _to_uint8(model.render(inputs.stage0.generator.latent_decoder(codes)), h, w)))
    tokens = model.encoder(latent)  # [1, nW, K, d] continuous
    for k in inputs.ks:
        logits = model.decoder(tokens[:, :, :k], geo.rows, geo.cols)
        rgb = model.render(model.synthesize_latent(model.codes_from_logits(logits)))
        rungs.append(Rung(f"tokens_k{k}", _to_uint8(rgb, h, w)))
    for k, coder in sorted(inputs.coders.items()):
        data, decoded = coder(img)
        rungs.append(Rung(f"file_k{k}", decoded, len(data) * 8 / (h * w)))
    return rungs


def run_ladder(
    model: MRTCodecModel,
    images: Sequence[LoadedImage],
    inputs: LadderInputs,
    suite: MetricSuite,
    cache: Path | None = None,
) -> dict[str, dict[str, dict[str, float | None]]]:
    """rung -> image name -> {metric: value, "bpp": value}; resumable through the JSON ``cache``."""
    table: dict[str, dict[str, dict[str, float | None]]] = {}
    if cache is not None and cache.is_file():
        table = json.loads(cache.read_text())
    for img in images:
        if table and all(img.name in per_image for per_image in table.values()):
            continue
        for rung in ladder_reconstructions(model, img.pixels, inputs):
            scores: dict[str, float | None] = dict(suite.compute(img.pixels, rung.image))
            scores["bpp"] = rung.bpp
            table.setdefault(rung.name, {})[img.name] = scores
        if cache is not None:
            atomic_write_text(cache, json.dumps(table, indent=1, sort_keys=True), force=True)
    return table


def _describe(rung: str) -> str:
    base = rung.split("_k")[0] if rung.startswith(("tokens_k", "file_k")) else rung
    text = RUNG_TEXT.get(base, rung)
    return text + (f", k = {rung.split('_k')[1]}" if base in ("tokens", "file") else "")


def render_ladder(table: dict[str, dict[str, dict[str, float | None]]], metrics: Sequence[str], header: str) -> str:
    """Markdown: one row per rung (in pipeline order), means over the images that have a value."""
    specs = [metric_spec(m) for m in metrics]
    cols = ["rung", "what is in the path", "bpp"] + [f"{s.label} {s.arrow}" for s in specs]
    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rung, per_image in table.items():
        def mean(key: str) -> float | None:
            vals = [v[key] for v in per_image.values() if v.get(key) is not None]
            return float(np.mean(vals)) if vals else None

        bpp = mean("bpp")
        cells = [rung, _describe(rung), "-" if bpp is None else f"{bpp:.4f}"]
        for s in specs:
            m = mean(s.name)
            cells.append("-" if m is None else s.fmt.format(m))
        lines.append("| " + " | ".join(cells) + " |")
    n = max((len(v) for v in table.values()), default=0)
    lines += ["", f"Means over {n} images."]
    return "\n".join(lines) + "\n"
