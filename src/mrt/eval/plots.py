"""Rate-distortion curves and side-by-side visual comparisons (matplotlib, Agg backend).

The Agg backend is selected inside each function (never at import), so importing this module
has no side effect on an interactive session.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrt.eval.schema import ResultSet
from mrt.io import atomic_write_bytes
from mrt.metrics.registry import metric_names, metric_spec

__all__ = ["Panel", "plot_rd", "plot_rd_all", "plot_visual"]

_STYLE: dict[str, dict[str, Any]] = {
    "vvc": {"color": "black", "marker": "s"},
    "hevc": {"color": "tab:gray", "marker": "v"},
    "heic": {"color": "tab:brown", "marker": "v"},
    "avif": {"color": "tab:green", "marker": "^"},
    "jpeg2000": {"color": "tab:purple", "marker": "D"},
    "webp": {"color": "tab:olive", "marker": "P"},
    "jpeg": {"color": "tab:pink", "marker": "x"},
}


def _pyplot() -> Any:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _style(name: str, i: int) -> dict[str, Any]:
    if name in _STYLE:
        return dict(_STYLE[name])
    palette = ["tab:red", "tab:blue", "tab:orange", "tab:cyan", "crimson", "navy"]
    return {"color": palette[i % len(palette)], "marker": "o", "linewidth": 2.2}


def plot_rd(
    results: Sequence[ResultSet],
    metric: str,
    out: Path,
    *,
    bpp_range: tuple[float, float] | None = (0.003, 0.2),
    title: str = "",
    logx: bool = True,
) -> Path | None:
    """One RD figure (bpp vs ``metric``) with a curve per result set; ``None`` if no data."""
    spec = metric_spec(metric)
    curves = [(rs, *rs.curve(metric)) for rs in results]
    curves = [(rs, x, y) for rs, x, y in curves if x]
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    n_other = 0
    for rs, x, y in curves:
        st = _style(rs.name, n_other)
        if rs.name not in _STYLE:
            n_other += 1
        ax.plot(x, y, label=rs.name, markersize=4, linewidth=st.pop("linewidth", 1.4), **st)
    if logx:
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: PLC0415

        ax.set_xscale("log")
        ticks = [0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    if bpp_range is not None:
        ax.set_xlim(*bpp_range)
        visible = [v for _, x, y in curves for xi, v in zip(x, y, strict=True)
                   if bpp_range[0] <= xi <= bpp_range[1]]
        if visible:
            lo, hi = min(visible), max(visible)
            pad = 0.05 * (hi - lo or abs(hi) or 1.0)
            ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("bits per pixel (file bytes)")
    ax.set_ylabel(f"{spec.axis_label} {spec.arrow}")
    better = "higher" if spec.higher_is_better else "lower"
    ax.set_title(title or f"{spec.label} ({better} is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save_figure(fig, out)


def plot_rd_all(
    results: Sequence[ResultSet],
    out_dir: Path,
    metrics: Sequence[str] = metric_names(rd=True),
    bpp_range: tuple[float, float] | None = (0.003, 0.2),
) -> dict[str, Path]:
    """``rd_<key>.png`` (``key``: the metric's results-file spelling, e.g. ``ms-ssim``) for every
    metric that has data; returns ``{canonical name: path}``."""
    made: dict[str, Path] = {}
    for m in metrics:
        spec = metric_spec(m)
        p = plot_rd(results, spec.name, Path(out_dir) / f"rd_{spec.json_key}.png", bpp_range=bpp_range)
        if p is not None:
            made[spec.name] = p
    return made


@dataclass(frozen=True)
class Panel:
    """One tile of a visual comparison: a label and a full-size RGB uint8 image."""

    label: str
    image: np.ndarray


def plot_visual(
    panels: Sequence[Panel],
    out: Path,
    *,
    crop: tuple[int, int, int, int] | None = None,
    title: str = "",
    tile_inches: float = 3.0,
    jpeg_quality: int | None = None,
) -> Path:
    """Side-by-side crops (same region ``(x, y, w, h)`` of every panel) saved as ``out``.

    The format follows ``out``'s extension (PNG for the report; ``.jpg`` with ``jpeg_quality``
    for a figure a tenth of the size). ``crop`` defaults to the centre 512 x 320 pixels (or the
    whole image when smaller).
    """
    if not panels:
        raise ValueError("no panels to plot")
    h, w = panels[0].image.shape[:2]
    if crop is None:  # centre 512 x 320 (both parrots of kodim23), or the whole small image
        cw0, ch0 = min(w, 512), min(h, 320)
        crop = ((w - cw0) // 2, (h - ch0) // 2, cw0, ch0)
    x0, y0, cw, ch = crop
    x0, y0 = max(0, min(x0, w - 1)), max(0, min(y0, h - 1))
    cw, ch = min(cw, w - x0), min(ch, h - y0)
    plt = _pyplot()
    n = len(panels)
    cols = min(n, 5)  # original, two learned models, VVC, one more classical codec: one row
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(tile_inches * cols, (tile_inches * ch / cw + 0.55) * rows + 0.3),
                             dpi=max(100, int(cw / tile_inches)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, p in zip(axes.ravel(), panels, strict=False):
        ax.imshow(p.image[y0 : y0 + ch, x0 : x0 + cw], interpolation="nearest")
        ax.set_title(p.label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(h_pad=1.2)
    return _save_figure(fig, out, None if jpeg_quality is None else {"quality": jpeg_quality})


def _save_figure(fig: Any, out: str | Path, pil_kwargs: dict[str, Any] | None = None) -> Path:
    """Render ``fig`` in the format of ``out``'s extension, write it atomically (an interrupted
    report leaves no partial figure) and close it."""
    out = Path(out)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=out.suffix.lstrip(".").lower() or "png", pil_kwargs=pil_kwargs)
    finally:
        _pyplot().close(fig)  # also when rendering fails (an unknown extension): no figure left open
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buf.getvalue(), force=True)
    return out
