"""Regenerate ``docs/results/`` (markdown tables, BD-rates, figures) from results JSON files.

Inputs: every ``*.json`` in the results folder (schema in :mod:`mrt.eval.schema`). Outputs in
the report folder::

    README.md                 tables per codec, metrics at target rates, BD-rates vs the anchor
    figures/rd_<metric>.png   RD curves (bpp vs PSNR, MS-SSIM, LPIPS, DISTS, FID)
    figures/visual_*.png      same crop of one image: original, MRT, VVC, others at matched bpp
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mrt.eval.bdrate import BDResult, bd_rate_or_none, is_lower_better
from mrt.eval.plots import Panel, plot_rd_all, plot_visual
from mrt.eval.schema import RatePoint, ResultSet, load_results

__all__ = [
    "BD_METRICS",
    "TARGET_BPPS",
    "ReportOutput",
    "bd_table",
    "generate_report",
    "interpolate_at",
    "render_markdown",
]

BD_METRICS = ("dists", "lpips", "psnr", "ms-ssim", "fid")
TARGET_BPPS = (0.005, 0.01, 0.02, 0.03)
_TABLE_METRICS = ("psnr", "ms-ssim", "lpips", "dists", "fid", "kid")
_FMT = {"psnr": "{:.2f}", "ms-ssim": "{:.4f}", "lpips": "{:.4f}", "dists": "{:.4f}",
        "fid": "{:.1f}", "kid": "{:.4f}", "bpp": "{:.4f}", "est_bpp": "{:.4f}",
        "enc_s": "{:.2f}", "dec_s": "{:.2f}"}
CLASSICAL_ORDER = ("vvc", "hevc", "heic", "avif", "jpeg2000", "webp", "jpeg")


@dataclass
class ReportOutput:
    """What :func:`generate_report` wrote."""

    markdown: Path
    figures: dict[str, Path] = field(default_factory=dict)
    visuals: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(metric: str, v: float | None) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return _FMT.get(metric, "{:.4g}").format(v)


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
    bpp over the overlapping bpp range) of every non-anchor result set against ``anchor``."""
    by_name = {rs.name: rs for rs in results}
    if anchor not in by_name:
        return {}
    a = by_name[anchor]
    table: dict[str, dict[str, BDResult | None]] = {}
    for rs in results:
        if rs.name == anchor:
            continue
        row: dict[str, BDResult | None] = {}
        for m in metrics:
            ax, ay = a.curve(m)
            tx, ty = rs.curve(m)
            row[m] = bd_rate_or_none(ax, ay, tx, ty, lower_is_better=is_lower_better(m), kind=kind)
        table[rs.name] = row
    return table


def _order(results: Sequence[ResultSet]) -> list[ResultSet]:
    """Learned codecs first, then the classical ones in a fixed order."""
    def key(rs: ResultSet) -> tuple[int, int, str]:
        if rs.name in CLASSICAL_ORDER:
            return (1, CLASSICAL_ORDER.index(rs.name), rs.name)
        return (0, 0, rs.name)

    return sorted(results, key=key)


def _point_row(p: RatePoint, show_est: bool) -> list[str]:
    row = [p.setting, _fmt("bpp", p.bpp)]
    if show_est:
        row.append(_fmt("est_bpp", p.est_bpp))
    row += [_fmt(m, p.get(m)) for m in _TABLE_METRICS]
    row += [_fmt("enc_s", p.enc_s), _fmt("dec_s", p.dec_s), str(p.n_images)]
    return row


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _bd_metric_cell(r: BDResult | None, metric: str) -> str:
    if r is None:
        return "n/a"
    digits = 2 if metric in ("psnr", "fid") else 3
    return f"{r.value:+.{digits}f} ({r.lo:.4f}–{r.hi:.4f} bpp)"


def _bd_cell(r: BDResult | None, metric: str) -> str:
    if r is None:
        return "n/a"
    rng = f"{r.lo:.2f}–{r.hi:.2f}" if metric == "psnr" else f"{r.lo:.3g}–{r.hi:.3g}"
    return f"{r.value:+.1f}% ({rng})"


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
    """The report's markdown text."""
    results = _order(results)
    figures = figures or {}
    rel = (lambda p: Path(p).relative_to(out_dir).as_posix()) if out_dir else (lambda p: Path(p).as_posix())
    lines: list[str] = [
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

    # ---- codecs and versions ------------------------------------------------------------
    lines += ["## Codecs", ""]
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

    # ---- metrics at target rates --------------------------------------------------------
    lines += ["## Quality at target rates", "",
              "Interpolated (PCHIP in log-bpp) between measured rate points; – where the codec's "
              "measured range does not reach that rate.", ""]
    for m in ("psnr", "ms-ssim", "lpips", "dists", "fid"):
        if not any(rs.curve(m)[0] for rs in results):
            continue
        header = [f"{m} at bpp", *(f"{t:g}" for t in TARGET_BPPS), "measured bpp range"]
        rows = []
        for rs in results:
            x, _ = rs.curve(m)
            if not x:
                continue
            rng = f"{x[0]:.4f}–{x[-1]:.4f}"
            rows.append([rs.name, *(_fmt(m, interpolate_at(rs, m, t)) for t in TARGET_BPPS), rng])
        lines += [f"**{m.upper()}** {'↓' if is_lower_better(m) else '↑'}", ""] + _md_table(header, rows) + [""]

    # ---- BD-rate ------------------------------------------------------------------------
    names = {rs.name for rs in results}
    lines += [f"## BD-rate vs {anchor.upper()}", ""]
    if anchor not in names:
        lines += [f"No results for the anchor `{anchor}`; no BD-rates.", ""]
    else:
        table = bd_table(results, anchor)
        mets = [m for m in BD_METRICS if any(rs.curve(m)[0] for rs in results)]
        lines += ["Bjontegaard delta rate (PCHIP of log-rate over the metric, integrated over the "
                  "overlapping metric range shown in brackets). Negative = fewer bits than "
                  f"{anchor.upper()} for the same quality; n/a = the curves do not overlap.", ""]
        rows = [[rs.name, *(_bd_cell(table[rs.name].get(m), m) for m in mets)]
                for rs in results if rs.name in table]
        lines += _md_table(["codec", *(f"BD-rate {m.upper()}" for m in mets)], rows) + [""]
        mtable = bd_table(results, anchor, kind="metric")
        lines += [f"BD-metric vs {anchor.upper()}: mean difference of the metric (codec minus "
                  f"{anchor.upper()}) at equal bpp, PCHIP over log-rate, integrated over the "
                  "overlapping bpp range shown in brackets. It exists wherever the rate ranges overlap, "
                  "also when the quality ranges do not (then BD-rate is n/a). Better: negative for "
                  "DISTS, LPIPS and FID, positive for PSNR and MS-SSIM.", ""]
        rows = [[rs.name, *(_bd_metric_cell(mtable[rs.name].get(m), m) for m in mets)]
                for rs in results if rs.name in mtable]
        lines += _md_table(["codec", *(f"Δ{m.upper()}" for m in mets)], rows) + [""]

    # ---- figures ------------------------------------------------------------------------
    if figures:
        lines += ["## Rate-distortion curves", ""]
        for m, p in figures.items():
            lines += [f"![{m}]({rel(p)})", ""]
    if visuals:
        lines += ["## Visual comparison", ""]
        for p, caption in visuals:
            lines += [f"{caption}", "", f"![visual]({rel(p)})", ""]

    # ---- per codec tables ---------------------------------------------------------------
    lines += ["## All rate points", ""]
    for rs in results:
        show_est = any(p.est_bpp is not None for p in rs.points)
        header = ["setting", "bpp", *(["est. bpp"] if show_est else []),
                  "PSNR ↑", "MS-SSIM ↑", "LPIPS ↓", "DISTS ↓", "FID ↓", "KID ↓", "enc s", "dec s", "images"]
        lines += [f"### {rs.name}", ""]
        lines += _md_table(header, [_point_row(p, show_est) for p in rs.sorted_points()]) + [""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# visual comparison
# ---------------------------------------------------------------------------------------------


def _find_visual_image(results: Sequence[ResultSet], name: str) -> Path | None:
    for rs in results:
        for src in rs.meta.get("sources", []) or []:
            p = Path(src)
            cand = p / name if p.is_dir() else (p if p.name == name else None)
            if cand is not None and cand.is_file():
                return cand
    return None


def _mrt_recon(rs: ResultSet, setting: str, image_name: str, pixels: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Reconstruction of one image by an evaluated MRT model, from its stored bitstream."""
    root = rs.meta.get("bitstream_root")
    if not root:
        return None
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in setting) or "x"
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(image_name).with_suffix("").as_posix())
    path = Path(root) / safe / f"{stem}.mrt"
    if not path.is_file():
        return None
    from mrt.codec import open_for  # type: ignore[attr-defined]  # noqa: PLC0415

    data = path.read_bytes()
    rec = np.asarray(open_for(data).decompress(data))
    if rec.shape != pixels.shape:
        return None
    return rec, len(data) * 8.0 / (pixels.shape[0] * pixels.shape[1])


def _matched_encode(b: Any, pixels: np.ndarray, target: float, cache_dir: Path | None) -> tuple[bytes, float]:
    """``b.encode_at_bpp(pixels, target)``, memoised on disk under ``cache_dir``."""
    import hashlib  # noqa: PLC0415
    import json  # noqa: PLC0415

    from mrt.eval.cache import image_hash  # noqa: PLC0415

    if cache_dir is None:
        return b.encode_at_bpp(pixels, target)  # type: ignore[no-any-return]
    key = hashlib.sha256("|".join([b.name, b.encoder_version(), b.settings_id(), image_hash(pixels),
                                   f"{target:.6f}"]).encode()).hexdigest()[:24]
    meta_path = Path(cache_dir) / f"{b.name}_{key}.json"
    bin_path = meta_path.with_suffix(b.file_ext or ".bin")
    if meta_path.is_file() and bin_path.is_file():
        return bin_path.read_bytes(), float(json.loads(meta_path.read_text())["quality"])
    data, q = b.encode_at_bpp(pixels, target)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    bin_path.write_bytes(data)
    meta_path.write_text(json.dumps({"codec": b.name, "quality": q, "target_bpp": target}))
    return data, q


def make_visuals(
    results: Sequence[ResultSet],
    image_path: Path,
    out_dir: Path,
    *,
    target_bpps: Sequence[float] = (0.02,),
    crop: tuple[int, int, int, int] | None = None,
    baselines: Sequence[str] | None = None,
    cache_dir: Path | None = None,
    max_over: float = 1.5,
) -> tuple[list[tuple[Path, str]], list[str]]:
    """Visual comparison figures; returns ``[(png, caption)]`` and notes on what was skipped.

    For every MRT rate point that has a stored bitstream of this image, the classical codecs are
    matched to its bpp; without MRT results, to each of ``target_bpps``. ``cache_dir`` keeps
    the matched bitstreams so that regenerating the report does not bisect again. A codec
    whose smallest file is above ``max_over`` x the target is left out (named in the caption).
    """
    from mrt.eval.baselines import BaselineError, get_baseline  # noqa: PLC0415
    from mrt.eval.runner import _read_image  # noqa: PLC0415

    notes: list[str] = []
    pixels = _read_image(Path(image_path))
    img_name = Path(image_path).name
    classical = [rs.name for rs in _order(results) if rs.name in CLASSICAL_ORDER]
    if baselines is not None:
        classical = [c for c in baselines]
    jobs: list[tuple[float, list[Panel]]] = []  # (target bpp, learned panels)
    for rs in results:
        if rs.name in CLASSICAL_ORDER or not rs.meta.get("models"):
            continue
        for p in rs.sorted_points():
            try:
                got = _mrt_recon(rs, p.setting, img_name, pixels)
            except Exception as exc:  # noqa: BLE001 (a missing model must not stop the report)
                notes.append(f"visual: {rs.name} {p.setting}: cannot decode stored bitstream ({exc})")
                continue
            if got is not None:
                rec, bpp = got
                jobs.append((bpp, [Panel(f"{rs.name} {p.setting}\n{bpp:.4f} bpp", rec)]))
    if not jobs:
        jobs = [(t, []) for t in target_bpps]
    made: list[tuple[Path, str]] = []
    for target, learned in jobs:
        panels = [Panel("original", pixels), *learned]
        unreachable: list[str] = []
        for name in classical:
            try:
                b = get_baseline(name)
                if not b.availability().ok:
                    continue
                data, q = _matched_encode(b, pixels, target, cache_dir)
                rec = b.decode(data)
            except BaselineError as exc:
                notes.append(f"visual: {name}: {exc}")
                continue
            bpp = len(data) * 8.0 / (pixels.shape[0] * pixels.shape[1])
            if bpp > target * max_over:
                unreachable.append(f"{name} (smallest file {bpp:.4f} bpp)")
                continue
            over = " (its lowest rate)" if bpp > target * 1.0001 else ""
            panels.append(Panel(f"{name} {b.quality_label(q)}\n{bpp:.4f} bpp{over}", rec))
        out = Path(out_dir) / f"visual_{Path(img_name).stem}_{target:.4f}bpp.png"
        plot_visual(panels, out, crop=crop, title=f"{img_name}, target {target:.4f} bpp")
        box = "x, y, w, h = " + ", ".join(map(str, crop)) if crop else "centre 512×320"
        caption = (f"{img_name} at {target:.4f} bpp (crop {box}); each classical codec at its "
                   "highest rate not above the target (bisection on its quality knob).")
        if unreachable:
            caption += " Not shown, cannot get that low: " + ", ".join(unreachable) + "."
        made.append((out, caption))
    return made, notes


def generate_report(
    results_dir: Path,
    out_dir: Path,
    *,
    anchor: str = "vvc",
    visual_image: Path | None = None,
    visual_name: str = "kodim23.png",
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
    figures = plot_rd_all(_order(results), fig_dir, bpp_range=bpp_range)
    vis: list[tuple[Path, str]] = []
    notes: list[str] = []
    if visuals:
        img = visual_image or _find_visual_image(results, visual_name)
        if img is None:
            notes.append(f"visual comparison skipped: image {visual_name} not found "
                         "(pass --visual PATH)")
        else:
            vis, vnotes = make_visuals(results, Path(img), fig_dir, target_bpps=visual_bpps, crop=crop,
                                       cache_dir=visual_cache)
            notes.extend(vnotes)
    md = render_markdown(results, anchor=anchor, figures=figures, visuals=vis, out_dir=out_dir,
                         command=command, notes=notes)
    md_path = out_dir / "README.md"
    md_path.write_text(md)
    return ReportOutput(markdown=md_path, figures=figures, visuals=[p for p, _ in vis], notes=notes)

