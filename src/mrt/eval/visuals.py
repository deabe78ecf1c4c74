"""Visual comparison: the same crop of one image from each learned model and each classical codec.

One figure per image and target rate. Each learned model (a results set with ``models`` in its
metadata) shows its rate point whose file for this image is nearest the target (within
``max_over``); its pixels come from the bitstream the evaluation stored, or, when that folder is
gone (another machine), from coding the image again with the installed model, accepted only if
it is the model the results name (model id) or, without a recorded id, if the file has exactly the
recorded size. The classical codecs are matched by bisection on their
quality knob to the rate of the learned panel nearest the target (their highest rate not above
it). The matched bitstreams can be kept on disk so that regenerating the report does not bisect
again.
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


def _stored_bitstream(rs: ResultSet, setting: str, image_name: str) -> bytes | None:
    """The file the evaluation stored for one image at one setting, if its folder is still there."""
    root = rs.meta.get("bitstream_root")
    if not root:
        return None
    path = Path(root) / safe_name(setting) / f"{safe_name(Path(image_name).with_suffix('').as_posix())}.mrt"
    return path.read_bytes() if path.is_file() else None


def _recorded_model_id(rs: ResultSet, setting: str) -> str | None:
    """The model id (hex) the results recorded for ``setting``, if they did."""
    for m in rs.meta.get("models") or []:
        if isinstance(m, dict) and m.get("setting") == setting and m.get("model_id"):
            return str(m["model_id"])
    return None


def _mrt_recon(rs: ResultSet, setting: str, image_name: str, pixels: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Reconstruction of one image by an evaluated MRT model, and its bpp.

    From the stored bitstream, which must have the size the results recorded for this image;
    else by coding ``pixels`` again with the installed model named ``setting``, which must be the
    model the results name (same model id: same weights; the file may then differ from the
    recorded one by container bytes of a later format version), or, when the results name no id,
    make a file of the recorded size. ``None`` when there is neither (no stored file, model not
    installed).
    """
    from mrt.codec import Codec, open_for  # noqa: PLC0415  (torch only when a panel is made)
    from mrt.errors import ModelError  # noqa: PLC0415

    recorded = [r.nbytes for r in rs.records if r.setting == setting and r.image == image_name]
    data = _stored_bitstream(rs, setting, image_name)
    if data is not None:
        if recorded and recorded[0] != len(data):  # a later run wrote another file there
            raise ValueError(f"stored bitstream has {len(data)} bytes, the results {recorded[0]}")
        rec = np.asarray(open_for(data).decompress(data))
    else:
        try:
            codec = Codec.load(setting)
        except ModelError:
            return None
        want, have = _recorded_model_id(rs, setting), f"{codec.variant.model_id:06x}"
        if want is not None and want != have:
            raise ValueError(f"the installed {setting} is model {have}, the results were made by {want}")
        data = codec.compress(pixels)
        if want is None and recorded and recorded[0] != len(data):
            raise ValueError(f"file coded again with the installed {setting} has {len(data)} bytes, "
                             f"the results {recorded[0]}")
        rec = np.asarray(codec.decompress(data))  # the codec that made it: no second model load
    if rec.shape != pixels.shape:
        return None
    return rec, bpp_of(len(data), pixels.shape[0], pixels.shape[1])


def _nearest_setting(rs: ResultSet, image_name: str, target: float, max_over: float) -> str | None:
    """The setting whose file of this image (else whose mean rate) is nearest ``target`` in log-rate."""
    best: tuple[float, str] | None = None
    for p in rs.sorted_points():
        per_image = [r.bpp for r in rs.records if r.setting == p.setting and r.image == image_name]
        bpp = per_image[0] if per_image else p.bpp
        if bpp <= 0:
            continue
        off = abs(np.log(bpp / target))
        if off <= np.log(max_over) and (best is None or off < best[0]):
            best = (off, p.setting)
    return None if best is None else best[1]


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


def _learned_panels(results: Sequence[ResultSet], img_name: str, pixels: np.ndarray, target: float,
                    max_over: float, notes: list[str]) -> list[tuple[float, Panel]]:
    """``(bpp, panel)`` of each learned model's rate point nearest ``target`` for this image."""
    panels: list[tuple[float, Panel]] = []
    for rs in order_results(results):
        if rs.name in CLASSICAL_ORDER or not rs.meta.get("models"):
            continue
        setting = _nearest_setting(rs, img_name, target, max_over)
        if setting is None:
            continue
        try:
            got = _mrt_recon(rs, setting, img_name, pixels)
        except Exception as exc:  # noqa: BLE001 (a missing or changed model must not stop the report)
            notes.append(f"visual: {rs.name} {setting} on {img_name}: not shown ({exc})")
            continue
        if got is None:
            notes.append(f"visual: {rs.name} {setting} on {img_name}: no stored bitstream and model not installed")
            continue
        rec, bpp = got
        panels.append((bpp, Panel(f"{rs.name} {setting}\n{bpp:.4f} bpp", rec)))
    return panels


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
    image_paths: Sequence[Path],
    out_dir: Path,
    *,
    target_bpps: Sequence[float] = (0.01, 0.02),
    crop: tuple[int, int, int, int] | None = None,
    baselines: Sequence[str] | None = None,
    cache_dir: Path | None = None,
    max_over: float = 1.5,
) -> tuple[list[tuple[Path, str]], list[str]]:
    """Visual comparison figures, one per image and target; returns ``[(png, caption)]`` and notes.

    Learned models show their rate point nearest each target (see the module docstring); the
    classical codecs are matched to the learned panel nearest the target, or to the target when
    no learned model has a point within ``max_over`` of it. ``cache_dir`` keeps the matched
    bitstreams. A codec whose smallest file is above ``max_over`` x the rate it is matched to is
    left out (named in the caption).
    """
    notes: list[str] = []
    if baselines is not None:
        classical = list(baselines)
    else:
        classical = [rs.name for rs in order_results(results) if rs.name in CLASSICAL_ORDER]
    made: list[tuple[Path, str]] = []
    for image_path in image_paths:
        pixels = load_image(Path(image_path))
        img_name = Path(image_path).name
        for target in target_bpps:
            learned = _learned_panels(results, img_name, pixels, target, max_over, notes)
            match = min((bpp for bpp, _ in learned), key=lambda b: abs(np.log(b / target)), default=target)
            panels, unreachable = _classical_panels(classical, pixels, match, cache_dir, max_over, notes)
            out = Path(out_dir) / f"visual_{Path(img_name).stem}_{target:.4f}bpp.png"
            plot_visual([Panel("original", pixels), *(p for _, p in learned), *panels], out, crop=crop,
                        title=f"{img_name}, about {target:g} bpp")
            box = "x, y, w, h = " + ", ".join(map(str, crop)) if crop else "centre 512×320"
            caption = (f"{img_name} at about {target:g} bpp (crop {box}): each learned model at its rate "
                       f"point nearest {target:g} bpp for this image; each classical codec at its highest "
                       f"rate not above {match:.4f} bpp (bisection on its quality knob).")
            if unreachable:
                caption += " Not shown, cannot get that low: " + ", ".join(unreachable) + "."
            made.append((out, caption))
    return made, notes
