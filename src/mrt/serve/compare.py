"""One comparison: an image through MRT and through classical codecs at the same size, with metrics.

No HTTP here (the server in :mod:`mrt.serve.server` turns a :class:`Comparison` into JSON), and
no files: the codecs work on arrays and bytes in memory.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mrt.codec import Codec
from mrt.eval.baselines import Baseline, BaselineError, bpp_of
from mrt.eval.suite import MetricSuite

__all__ = ["CodedImage", "Comparison", "compare", "encode_mrt", "encode_classical"]


@dataclass(frozen=True)
class CodedImage:
    """One codec's file for the image and what it decodes to."""

    codec: str  # "mrt" or a baseline name ("jpeg", "vvc")
    label: str  # shown on the page, e.g. "MRT (mrt-s-k16)"
    data: bytes  # the exact file bytes
    recon: np.ndarray  # uint8 [H, W, 3], what the file decodes to
    setting: str  # the rate knob chosen, e.g. "12 tokens" or "q=3"
    seconds: float  # encode + decode wall time
    over_budget: bool = False  # the codec's smallest file is larger than the target
    metrics: dict[str, float | None] = field(default_factory=dict)

    @property
    def n_bytes(self) -> int:
        return len(self.data)

    def bpp(self) -> float:
        h, w = self.recon.shape[:2]
        return bpp_of(len(self.data), h, w)


@dataclass(frozen=True)
class Comparison:
    """The original and every codec's result (MRT first), plus notes on codecs that were skipped."""

    original: np.ndarray  # uint8 [H, W, 3]
    budget: int | None  # the byte budget asked for (None: the model's own rate)
    results: tuple[CodedImage, ...]
    notes: tuple[str, ...] = ()

    @property
    def mrt(self) -> CodedImage:
        return self.results[0]


def encode_mrt(img: np.ndarray, codec: Codec, max_bytes: int | None) -> CodedImage:
    """Compress with ``codec`` (the most tokens whose file fits ``max_bytes`` when given) and decode it back.

    Raises ``BudgetError`` when even one token per window does not fit.
    """
    start = time.perf_counter()
    report = codec.encode(img, max_bytes=max_bytes)
    recon = codec.decompress(report.data)
    # with a budget the rate variant does not matter: rate control picks k among all of the file's K
    name = codec.name if max_bytes is None else codec.info.path.stem
    return CodedImage("mrt", f"MRT ({name})", report.data, recon, f"{report.k} tokens/window",
                      time.perf_counter() - start)


def encode_classical(img: np.ndarray, baseline: Baseline, max_bytes: int) -> CodedImage:
    """The baseline's largest file within ``max_bytes`` (bisection on its quality knob).

    When even its lowest setting is larger, that smallest file is returned, marked over budget.
    """
    start = time.perf_counter()
    h, w = img.shape[:2]
    data, quality = baseline.encode_at_bpp(img, bpp_of(max_bytes, h, w))
    recon = baseline.decode(data)
    return CodedImage(baseline.name, baseline.name.upper(), data, recon, baseline.quality_label(quality),
                      time.perf_counter() - start, over_budget=len(data) > max_bytes)


def _with_metrics(item: CodedImage, original: np.ndarray, suite: MetricSuite) -> CodedImage:
    metrics = suite.compute(original, item.recon)
    return CodedImage(item.codec, item.label, item.data, item.recon, item.setting, item.seconds,
                      item.over_budget, metrics)


def compare(
    img: np.ndarray,
    codec: Codec,
    baselines: Sequence[Baseline],
    suite: MetricSuite,
    max_bytes: int | None = None,
) -> Comparison:
    """MRT at ``max_bytes`` (or its own rate), then each available baseline at the MRT file's size.

    A baseline that cannot run here or fails on this image is skipped with a note.
    """
    mrt = encode_mrt(img, codec, max_bytes)
    results = [mrt]
    notes: list[str] = []
    for baseline in baselines:
        av = baseline.availability()
        if not av.ok:
            notes.append(f"{baseline.name}: unavailable ({av.reason})")
            continue
        try:
            item = encode_classical(img, baseline, mrt.n_bytes)
        except BaselineError as err:
            notes.append(f"{baseline.name}: skipped ({err})")
            continue
        results.append(item)
        if item.over_budget:
            notes.append(f"{item.label} cannot go down to {mrt.n_bytes} bytes: its smallest file "
                         f"({item.setting}) has {item.n_bytes} bytes")
    scored = tuple(_with_metrics(r, img, suite) for r in results)
    return Comparison(img, max_bytes, scored, tuple(notes))
