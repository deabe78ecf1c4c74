"""Regenerate ``docs/results/`` (markdown tables, BD-rates, figures) from results JSON files.

Inputs: every ``*.json`` in the results folder (schema in :mod:`mrt.eval.schema`). Outputs in
the report folder::

    README.md                 tables per codec, metrics at target rates, BD-rates vs the anchor
    figures/rd_<metric>.png   RD curves (bpp vs PSNR, MS-SSIM, LPIPS, DISTS, FID)
    figures/visual_*.png      same crop of each visual image per target bpp: original, learned models, VVC, others

Metric names, labels, directions and number formats come from :mod:`mrt.metrics.registry`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrt.eval.bdrate import BDResult, bd_rate_or_none
from mrt.eval.plots import plot_rd_all
from mrt.eval.schema import RatePoint, ResultSet, load_results, order_results
from mrt.eval.visuals import find_visual_image, make_visuals
from mrt.io import atomic_write_text
from mrt.metrics.registry import METRICS, metric_names, metric_spec

__all__ = [
    "BD_METRICS",
    "TARGET_BPPS",
    "ReportOutput",
    "bd_table",
    "generate_report",
    "interpolate_at",
    "render_markdown",
]

#: metrics of the BD tables, in column order (perceptual first)
BD_METRICS = ("dists", "lpips", "psnr", "ms_ssim", "fid")
TARGET_BPPS = (0.005, 0.01, 0.02, 0.03)
#: number formats of the non-metric columns
_FMT = {"bpp": "{:.4f}", "est_bpp": "{:.4f}", "enc_s": "{:.2f}", "dec_s": "{:.2f}"}


@dataclass
class ReportOutput:
    """What :func:`generate_report` wrote."""

    markdown: Path
    figures: dict[str, Path] = field(default_factory=dict)
    visuals: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(column: str, v: float | None) -> str:
    """A table cell: a metric (registry format) or a column of :data:`_FMT`; ``–`` if missing."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    fmt = _FMT.get(column) or metric_spec(column).fmt
    return fmt.format(v)


def interpolate_at(rs: ResultSet, metric: str, bpp: float) -> float | None:
    """Metric of ``rs`` at ``bpp`` by PCHIP in log-bpp; ``None`` outside the measured range."""
    from scipy.interpolate import PchipInterpolator  # noqa: PLC0415

    x, y = rs.curve(metric)
    if len(x) == 1:
        return y[0] if math.isclose(x[0], bpp, rel_tol=1e-9) else None
    if len(x) < 2 or not (x[0] <= bpp <= x[-1]):
        return None
    lx = np.log(np.asarray(x))
    ya = np.asarray(y, dtype=np.float64)
    keep = np.concatenate(([True], np.diff(lx) > 0))
    if keep.sum() < 2:
        return None
    return float(PchipInterpolator(lx[keep], ya[keep])(math.log(bpp)))


def bd_table(results: Sequence[ResultSet], anchor: str,
             metrics: Sequence[str] = BD_METRICS, kind: str = "rate") -> dict[str, dict[str, BDResult | None]]:
    """BD-rate (``kind="rate"``) or BD-metric (``kind="metric"``: mean metric difference at equal
    bpp over the overlapping bpp range) of every non-anchor result set against ``anchor``;
    ``{codec: {canonical metric name: result or None}}``."""
    by_name = {rs.name: rs for rs in results}
    if anchor not in by_name:
        return {}
    a = by_name[anchor]
    specs = [metric_spec(m) for m in metrics]
    table: dict[str, dict[str, BDResult | None]] = {}
    for rs in results:
        if rs.name == anchor:
            continue
        row: dict[str, BDResult | None] = {}
        for s in specs:
            ax, ay = a.curve(s.name)
            tx, ty = rs.curve(s.name)
            row[s.name] = bd_rate_or_none(ax, ay, tx, ty, lower_is_better=not s.higher_is_better, kind=kind)
        table[rs.name] = row
    return table


def _point_row(p: RatePoint, show_est: bool) -> list[str]:
    row = [p.setting, _fmt("bpp", p.bpp)]
    if show_est:
        row.append(_fmt("est_bpp", p.est_bpp))
    row += [_fmt(m, p.get(m)) for m in metric_names()]
    row += [_fmt("enc_s", p.enc_s), _fmt("dec_s", p.dec_s), str(p.n_images)]
    return row


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _bd_metric_cell(r: BDResult | None, metric: str) -> str:
    if r is None:
        return "n/a"
    return f"{metric_spec(metric).delta_fmt.format(r.value)} ({r.lo:.4f}–{r.hi:.4f} bpp)"


def _bd_cell(r: BDResult | None, metric: str) -> str:
    if r is None:
        return "n/a"
    fmt = metric_spec(metric).range_fmt
    return f"{r.value:+.1f}% ({fmt.format(r.lo)}–{fmt.format(r.hi)})"


def _and_list(words: Sequence[str]) -> str:
    """``a, b and c``."""
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


# ---------------------------------------------------------------------------------------------
# markdown sections
# ---------------------------------------------------------------------------------------------


def _intro(results: Sequence[ResultSet], command: str, notes: Sequence[str]) -> list[str]:
    lines = [
        "# MRT evaluation results",
        "",
        f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M')}; do not edit by hand.",
        "",
        "Rate is the size of the real file (container / headers included) × 8 / pixels. "
        "Every number is a mean over the images of the dataset; FID/KID are computed per rate point "
        "over 64×64 patches (GLC protocol). ↑ higher is better, ↓ lower is better.",
        "",
    ]
    datasets = {(rs.meta.get("dataset", ""), rs.meta.get("n_images")) for rs in results}
    if len(datasets) > 1:
        lines += ["**Warning:** the result sets come from different datasets: "
                  + "; ".join(f"{d or '?'} ({n} images)" for d, n in sorted(datasets, key=str)), ""]
    for n in notes:
        lines += [f"> {n}", ""]
    return lines


def _codecs_section(results: Sequence[ResultSet]) -> list[str]:
    lines = ["## Codecs", ""]
    rows = []
    for rs in results:
        meta = rs.meta
        ver = meta.get("codec_version") or ", ".join(
            f"{m.get('setting')} (id {m.get('model_id')})" for m in meta.get("models", [])) or "–"
        rows.append([f"`{rs.name}`", rs.description or "–", str(ver), str(meta.get("settings", "–")),
                     f"{meta.get('dataset', '')} ({meta.get('n_images', '?')} images)"])
    lines += _md_table(["name", "description", "version", "fixed settings", "dataset"], rows) + [""]
    impls: dict[str, str] = {}
    for rs in results:
        for k, v in (rs.meta.get("metrics") or {}).items():
            impls.setdefault(k, str(v))
    if impls:
        lines += ["Metric implementations: " + "; ".join(f"{k}: {v}" for k, v in impls.items()), ""]
    return lines


def _targets_section(results: Sequence[ResultSet]) -> list[str]:
    lines = ["## Quality at target rates", "",
             "Interpolated (PCHIP in log-bpp) between measured rate points; – where the codec's "
             "measured range does not reach that rate.", ""]
    for s in METRICS:
        if not s.rd or not any(rs.curve(s.name)[0] for rs in results):
            continue
        header = [f"{s.json_key} at bpp", *(f"{t:g}" for t in TARGET_BPPS), "measured bpp range"]
        rows = []
        for rs in results:
            x, _ = rs.curve(s.name)
            if not x:
                continue
            rng = f"{x[0]:.4f}–{x[-1]:.4f}"
            rows.append([rs.name, *(_fmt(s.name, interpolate_at(rs, s.name, t)) for t in TARGET_BPPS), rng])
        lines += [f"**{s.label}** {s.arrow}", ""] + _md_table(header, rows) + [""]
    return lines


def _bd_section(results: Sequence[ResultSet], anchor: str) -> list[str]:
    a = anchor.upper()
    lines = [f"## BD-rate vs {a}", ""]
    if anchor not in {rs.name for rs in results}:
        return lines + [f"No results for the anchor `{anchor}`; no BD-rates.", ""]
    mets = [m for m in BD_METRICS if any(rs.curve(m)[0] for rs in results)]
    labels = [metric_spec(m).label for m in mets]
    table = bd_table(results, anchor)
    lines += ["Bjontegaard delta rate (PCHIP of log-rate over the metric, integrated over the "
              "overlapping metric range shown in brackets). Negative = fewer bits than "
              f"{a} for the same quality; n/a = the curves do not overlap.", ""]
    rows = [[rs.name, *(_bd_cell(table[rs.name].get(m), m) for m in mets)]
            for rs in results if rs.name in table]
    lines += _md_table(["codec", *(f"BD-rate {lb}" for lb in labels)], rows) + [""]
    lower = _and_list([metric_spec(m).label for m in BD_METRICS if not metric_spec(m).higher_is_better])
    higher = _and_list([metric_spec(m).label for m in BD_METRICS if metric_spec(m).higher_is_better])
    mtable = bd_table(results, anchor, kind="metric")
    lines += [f"BD-metric vs {a}: mean difference of the metric (codec minus "
              f"{a}) at equal bpp, PCHIP over log-rate, integrated over the "
              "overlapping bpp range shown in brackets. It exists wherever the rate ranges overlap, "
              "also when the quality ranges do not (then BD-rate is n/a). Better: negative for "
              f"{lower}, positive for {higher}.", ""]
    rows = [[rs.name, *(_bd_metric_cell(mtable[rs.name].get(m), m) for m in mets)]
            for rs in results if rs.name in mtable]
    return lines + _md_table(["codec", *(f"Δ{lb}" for lb in labels)], rows) + [""]


def _figures_section(figures: dict[str, Path], visuals: Sequence[tuple[Path, str]],
                     rel: Callable[[Path], str]) -> list[str]:
    lines: list[str] = []
    if figures:
        lines += ["## Rate-distortion curves", ""]
        for m, p in figures.items():
            lines += [f"![{metric_spec(m).json_key}]({rel(p)})", ""]
    if visuals:
        lines += ["## Visual comparison", ""]
        for p, caption in visuals:
            lines += [f"{caption}", "", f"![visual]({rel(p)})", ""]
    return lines


def _points_section(results: Sequence[ResultSet]) -> list[str]:
    lines = ["## All rate points", ""]
    for rs in results:
        show_est = any(p.est_bpp is not None for p in rs.points)
        header = ["setting", "bpp", *(["est. bpp"] if show_est else []),
                  *(f"{s.label} {s.arrow}" for s in METRICS), "enc s", "dec s", "images"]
        lines += [f"### {rs.name}", ""]
        lines += _md_table(header, [_point_row(p, show_est) for p in rs.sorted_points()]) + [""]
    return lines


def render_markdown(
    results: Sequence[ResultSet],
    *,
    anchor: str = "vvc",
    figures: dict[str, Path] | None = None,
    visuals: Sequence[tuple[Path, str]] = (),
    out_dir: Path | None = None,
    command: str = "mrt report",
    notes: Sequence[str] = (),
) -> str:
    """The report's markdown text (``figures``: ``{metric: png}``; ``visuals``: ``[(png, caption)]``)."""
    results = order_results(results)

    def rel(p: Path) -> str:
        return Path(p).relative_to(out_dir).as_posix() if out_dir else Path(p).as_posix()

    lines = (_intro(results, command, notes) + _codecs_section(results) + _targets_section(results)
             + _bd_section(results, anchor) + _figures_section(figures or {}, visuals, rel)
             + _points_section(results))
    return "\n".join(lines).rstrip() + "\n"


#: Images of the visual comparison when none is named: parrots (eyes, beaks), a face, a face
#: with text-like detail (issue 11's panels).
VISUAL_NAMES = ("kodim23.png", "kodim04.png", "kodim15.png")


def generate_report(
    results_dir: Path,
    out_dir: Path,
    *,
    anchor: str = "vvc",
    visual_images: Sequence[Path] = (),
    visual_names: Sequence[str] = VISUAL_NAMES,
    visual_bpps: Sequence[float] = (0.01, 0.02),
    crop: tuple[int, int, int, int] | None = None,
    visuals: bool = True,
    command: str = "mrt report",
    bpp_range: tuple[float, float] | None = (0.003, 0.2),
    visual_cache: Path | None = None,
) -> ReportOutput:
    """Read every results JSON in ``results_dir`` and write the report into ``out_dir``."""
    results = load_results(Path(results_dir))
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures = plot_rd_all(order_results(results), fig_dir, bpp_range=bpp_range)
    vis: list[tuple[Path, str]] = []
    notes: list[str] = []
    if visuals:
        images = list(visual_images)
        if not images:
            for name in visual_names:
                found = find_visual_image(results, name)
                if found is None:
                    notes.append(f"visual comparison: image {name} not found in the results' sources "
                                 "(pass --visual PATH)")
                else:
                    images.append(found)
        if images:
            vis, vnotes = make_visuals(results, images, fig_dir, target_bpps=visual_bpps, crop=crop,
                                       cache_dir=visual_cache)
            notes.extend(vnotes)
    md = render_markdown(results, anchor=anchor, figures=figures, visuals=vis, out_dir=out_dir,
                         command=command, notes=notes)
    md_path = out_dir / "README.md"
    atomic_write_text(md_path, md, force=True)
    return ReportOutput(markdown=md_path, figures=figures, visuals=[p for p, _ in vis], notes=notes)
