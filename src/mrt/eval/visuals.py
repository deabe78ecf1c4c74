"""Visual comparison: the same crop of one image from MRT and from every classical codec.

For every MRT rate point that has a stored bitstream of the image, the classical codecs are
matched to its bpp by bisection on their quality knob; without MRT bitstreams, to fixed
target bpps. The matched bitstreams can be kept on disk so that regenerating the report does
not bisect again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mrt.eval.baselines import Baseline, BaselineError, bpp_of, get_baseline
from mrt.eval.cache import image_hash
from mrt.eval.common import safe_name
from mrt.eval.plots import Panel, plot_visual
from mrt.eval.schema import CLASSICAL_ORDER, ResultSet, order_results
from mrt.io import atomic_write_bytes, atomic_write_text, load_image

__all__ = ["find_visual_image", "make_visuals"]


def find_visual_image(results: Sequence[ResultSet], name: str) -> Path | None:
    """``name`` inside the source folders recorded in the results' metadata, if there."""
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
    path = Path(root) / safe_name(setting) / f"{safe_name(Path(image_name).with_suffix('').as_posix())}.mrt"
    if not path.is_file():
        return None
    from mrt.codec import open_for  # type: ignore[attr-defined]  # noqa: PLC0415

    data = path.read_bytes()
    recorded = [r.nbytes for r in rs.records if r.setting == setting and r.image == image_name]
    if recorded and recorded[0] != len(data):  # a later run wrote another file there: not this result
        raise ValueError(f"stored bitstream {path} has {len(data)} bytes, the results {recorded[0]}")
    rec = np.asarray(open_for(data).decompress(data))
    if rec.shape != pixels.shape:
        return None
    return rec, bpp_of(len(data), pixels.shape[0], pixels.shape[1])


def _matched_encode(b: Baseline, pixels: np.ndarray, target: float, cache_dir: Path | None) -> tuple[bytes, float]:
    """``b.encode_at_bpp(pixels, target)``, memoised on disk under ``cache_dir``."""
    if cache_dir is None:
        return b.encode_at_bpp(pixels, target)
    key = hashlib.sha256("|".join([b.name, b.encoder_version(), b.settings_id(), image_hash(pixels),
                                   f"{target:.6f}"]).encode()).hexdigest()[:24]
    meta_path = Path(cache_dir) / f"{b.name}_{key}.json"
    bin_path = meta_path.with_suffix(b.file_ext or ".bin")
    if meta_path.is_file() and bin_path.is_file():
        return bin_path.read_bytes(), float(json.loads(meta_path.read_text())["quality"])
    data, q = b.encode_at_bpp(pixels, target)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(bin_path, data, force=True)
    atomic_write_text(meta_path, json.dumps({"codec": b.name, "quality": q, "target_bpp": target}),
                      force=True)
    return data, q


def _learned_panels(results: Sequence[ResultSet], img_name: str, pixels: np.ndarray,
                    notes: list[str]) -> list[tuple[float, list[Panel]]]:
    """``(bpp, [panel])`` for every MRT rate point with a stored bitstream of the image."""
    jobs: list[tuple[float, list[Panel]]] = []
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
    return jobs


def _classical_panels(classical: Sequence[str], pixels: np.ndarray, target: float,
                      cache_dir: Path | None, max_over: float,
                      notes: list[str]) -> tuple[list[Panel], list[str]]:
    """One panel per classical codec matched to ``target``; and those that cannot get that low."""
    panels: list[Panel] = []
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
        bpp = bpp_of(len(data), pixels.shape[0], pixels.shape[1])
        if bpp > target * max_over:
            unreachable.append(f"{name} (smallest file {bpp:.4f} bpp)")
            continue
        over = " (its lowest rate)" if bpp > target * 1.0001 else ""
        panels.append(Panel(f"{name} {b.quality_label(q)}\n{bpp:.4f} bpp{over}", rec))
    return panels, unreachable


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
    notes: list[str] = []
    pixels = load_image(Path(image_path))
    img_name = Path(image_path).name
    if baselines is not None:
        classical = list(baselines)
    else:
        classical = [rs.name for rs in order_results(results) if rs.name in CLASSICAL_ORDER]
    jobs = _learned_panels(results, img_name, pixels, notes) or [(t, []) for t in target_bpps]
    made: list[tuple[Path, str]] = []
    for target, learned in jobs:
        panels, unreachable = _classical_panels(classical, pixels, target, cache_dir, max_over, notes)
        out = Path(out_dir) / f"visual_{Path(img_name).stem}_{target:.4f}bpp.png"
        plot_visual([Panel("original", pixels), *learned, *panels], out, crop=crop,
                    title=f"{img_name}, target {target:.4f} bpp")
        box = "x, y, w, h = " + ", ".join(map(str, crop)) if crop else "centre 512×320"
        caption = (f"{img_name} at {target:.4f} bpp (crop {box}); each classical codec at its "
                   "highest rate not above the target (bisection on its quality knob).")
        if unreachable:
            caption += " Not shown, cannot get that low: " + ", ".join(unreachable) + "."
        made.append((out, caption))
    return made, notes
