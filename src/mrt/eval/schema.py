"""Result records and their files: a CompressAI-like JSON per codec plus a tidy CSV.

JSON layout (one file per codec / model family)::

    {
      "name": "vvc",
      "description": "VVC intra (VVenC ...)",
      "meta": {"codec_version": "...", "dataset": "kodak", "n_images": 24, ...},
      "results": {                      # one entry per rate point, sorted by bpp
        "setting": ["qp=63", ...], "bpp": [...], "est_bpp": [...], "psnr": [...],
        "ms-ssim": [...], "lpips": [...], "dists": [...], "fid": [...], "kid": [...],
        "enc_s": [...], "dec_s": [...]
      },
      "points": [{...RatePoint...}, ...],
      "images": [{...ImageRecord...}, ...]
    }

Missing values are ``null``. Aggregates are means over the images of a rate point (bpp, PSNR,
... averaged per image, as CompressAI does); a metric is aggregated only when every image of
the point has it. FID/KID are computed per rate point over the dataset's patches.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mrt.errors import MRTError
from mrt.io import atomic_write_text
from mrt.metrics.registry import METRICS, find_metric, metric_names

__all__ = [
    "CLASSICAL_ORDER",
    "CSV_COLUMNS",
    "METRIC_KEYS",
    "ImageRecord",
    "RatePoint",
    "ResultSet",
    "ResultsError",
    "aggregate",
    "load_results",
    "order_results",
    "write_csv",
]

#: per-image metrics (record attribute names) and their JSON ``results`` keys
METRIC_KEYS: dict[str, str] = {s.name: s.json_key for s in METRICS if s.per_image}
#: dataset-level metrics per rate point
SET_METRIC_KEYS: dict[str, str] = {s.name: s.json_key for s in METRICS if not s.per_image}
CSV_COLUMNS = ("codec", "setting", "image", "bpp", "est_bpp", *metric_names(per_image=True),
               "enc_s", "dec_s", "quality", "nbytes", "height", "width")
#: classical codecs in the order of report tables (learned codecs come first)
CLASSICAL_ORDER = ("vvc", "hevc", "heic", "avif", "jpeg2000", "webp", "jpeg")


class ResultsError(MRTError):
    """A results file is missing, unreadable or not in the expected schema."""


def _num(x: Any) -> float | None:
    """``float(x)`` or ``None`` for missing / non-finite values."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass
class ImageRecord:
    """One image coded at one setting."""

    codec: str
    setting: str
    image: str
    height: int
    width: int
    nbytes: int
    bpp: float
    quality: float | None = None
    image_hash: str = ""
    est_bpp: float | None = None
    psnr: float | None = None
    ms_ssim: float | None = None
    lpips: float | None = None
    dists: float | None = None
    enc_s: float | None = None
    dec_s: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageRecord:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw.setdefault("extra", {})
        return cls(**kw)


@dataclass
class RatePoint:
    """Aggregate of one setting over the dataset."""

    setting: str
    n_images: int
    bpp: float
    quality: float | None = None
    est_bpp: float | None = None
    psnr: float | None = None
    ms_ssim: float | None = None
    lpips: float | None = None
    dists: float | None = None
    fid: float | None = None
    kid: float | None = None
    enc_s: float | None = None
    dec_s: float | None = None

    def get(self, metric: str) -> float | None:
        """Value of a metric by its name or an alias (``ms_ssim`` or ``ms-ssim``), or of another
        field by its attribute name (``est_bpp``)."""
        spec = find_metric(metric)
        return getattr(self, spec.name if spec is not None else metric, None)


def _mean(values: Sequence[float | None]) -> float | None:
    """Mean when every value is present, else ``None``."""
    if not values or any(v is None for v in values):
        return None
    return float(sum(values)) / len(values)  # type: ignore[arg-type]


def aggregate(records: Sequence[ImageRecord], setting: str, quality: float | None = None) -> RatePoint:
    """Mean bpp / metrics / times of the records of one setting."""
    if not records:
        raise ResultsError(f"no records for setting {setting!r}")
    means = {k: _mean([getattr(r, k) for r in records])
             for k in ("est_bpp", *metric_names(per_image=True), "enc_s", "dec_s")}
    return RatePoint(setting=setting, n_images=len(records), quality=quality,
                     bpp=float(sum(r.bpp for r in records)) / len(records), **means)


@dataclass
class ResultSet:
    """All rate points of one codec (or model family) on one dataset."""

    name: str
    description: str = ""
    points: list[RatePoint] = field(default_factory=list)
    records: list[ImageRecord] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def sorted_points(self) -> list[RatePoint]:
        """Rate points in increasing bpp."""
        return sorted(self.points, key=lambda p: p.bpp)

    def curve(self, metric: str) -> tuple[list[float], list[float]]:
        """``(bpp, metric)`` of the points that have the metric, in increasing bpp."""
        xs: list[float] = []
        ys: list[float] = []
        for p in self.sorted_points():
            v = p.get(metric)
            if v is not None:
                xs.append(p.bpp)
                ys.append(v)
        return xs, ys

    def to_json_dict(self) -> dict[str, Any]:
        """The CompressAI-like JSON object described in the module docstring."""
        pts = self.sorted_points()
        results: dict[str, list[Any]] = {"setting": [p.setting for p in pts],
                                         "bpp": [p.bpp for p in pts]}
        for attr, key in [("est_bpp", "est_bpp"), *METRIC_KEYS.items(), *SET_METRIC_KEYS.items(),
                          ("enc_s", "enc_s"), ("dec_s", "dec_s")]:
            results[key] = [getattr(p, attr) for p in pts]
        return {
            "name": self.name,
            "description": self.description,
            "meta": self.meta,
            "results": results,
            "points": [asdict(p) for p in pts],
            "images": [r.to_dict() for r in self.records],
        }

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> ResultSet:
        """Read the JSON object; accepts plain CompressAI files (``results`` only) too."""
        if not isinstance(d, dict) or "name" not in d or "results" not in d:
            raise ResultsError("not a results object (needs 'name' and 'results')")
        points: list[RatePoint] = []
        if d.get("points"):
            names = {f.name for f in fields(RatePoint)}
            points = [RatePoint(**{k: v for k, v in p.items() if k in names}) for p in d["points"]]
        else:  # CompressAI-style: parallel lists under "results"
            res = d["results"]
            bpps = res.get("bpp") or []
            n = len(bpps)

            def col(*keys: str) -> list[float | None]:
                for k in keys:
                    if k in res:
                        return [_num(v) for v in res[k]]
                return [None] * n

            cols = {s.name: col(*dict.fromkeys((s.json_key, s.name, *s.aliases))) for s in METRICS}
            settings = res.get("setting") or [f"#{i}" for i in range(n)]
            for i in range(n):
                points.append(RatePoint(setting=str(settings[i]), n_images=0, bpp=float(bpps[i]),
                                        **{k: v[i] for k, v in cols.items()}))
        records = [ImageRecord.from_dict(r) for r in d.get("images", [])]
        return cls(name=str(d["name"]), description=str(d.get("description", "")), points=points,
                   records=records, meta=dict(d.get("meta", {})))

    def write_json(self, path: Path) -> None:
        """Write the JSON file (folder created; replaced atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_json_dict(), indent=1, allow_nan=False) + "\n",
                          force=True)

    @classmethod
    def read_json(cls, path: Path) -> ResultSet:
        """Read one results JSON file."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ResultsError(f"cannot read results file {path}: {exc}") from exc
        try:
            return cls.from_json_dict(data)
        except (TypeError, KeyError, ValueError) as exc:
            raise ResultsError(f"{path}: not in the results schema ({exc})") from exc


def merge_results(parts: Sequence[ResultSet], name: str, description: str = "", later_wins: bool = False) -> ResultSet:
    """One result set from several (say, the rate points of one model family evaluated by
    parallel processes): their points and records (renamed to codec ``name``), ``meta`` of the
    first with the ``models`` lists joined. Fails when two parts hold the same setting, unless
    ``later_wins``: then a setting is taken (point, records and model entry) from the last part
    that holds it (e.g. a rerun of two rate points with FID over a first run without it)."""
    if not parts:
        raise ResultsError("nothing to merge")
    settings = [p.setting for rs in parts for p in rs.points]
    dup = sorted({s for s in settings if settings.count(s) > 1})
    if dup and not later_wins:
        raise ResultsError(f"settings in more than one result set: {', '.join(dup)}")
    owner = {p.setting: i for i, rs in enumerate(parts) for p in rs.points}  # the last part wins
    meta = dict(parts[0].meta)
    models = [m for i, rs in enumerate(parts) for m in rs.meta.get("models", []) if owner.get(_model_setting(m), i) == i]
    if models:
        meta["models"] = models
    return ResultSet(name=name, description=description or parts[0].description, meta=meta,
                     points=[p for i, rs in enumerate(parts) for p in rs.points if owner[p.setting] == i],
                     records=[replace(r, codec=name) for i, rs in enumerate(parts) for r in rs.records
                              if owner.get(r.setting) == i])


def _model_setting(entry: Any) -> str:
    """The setting a ``meta["models"]`` entry describes (a dict with ``setting``, or the name itself)."""
    return str(entry.get("setting")) if isinstance(entry, dict) else str(entry)


def rename_settings(rs: ResultSet, old: str, new: str) -> ResultSet:
    """``rs`` with every setting that starts with ``old`` starting with ``new`` instead (points,
    records and ``meta["models"]``): the results of a model evaluated under a working name, then
    released under another with the same model ids (the ids do not depend on the name)."""

    def ren(setting: str) -> str:
        return new + setting[len(old):] if setting.startswith(old) else setting

    models = []
    for m in rs.meta.get("models", []):
        models.append({**m, "setting": ren(str(m.get("setting")))} if isinstance(m, dict) else ren(str(m)))
    meta = {**rs.meta, "models": models} if "models" in rs.meta else dict(rs.meta)
    return ResultSet(name=rs.name, description=rs.description, meta=meta,
                     points=[replace(p, setting=ren(p.setting)) for p in rs.points],
                     records=[replace(r, setting=ren(r.setting)) for r in rs.records])


def write_csv(records: Iterable[ImageRecord], path: Path) -> None:
    """Tidy CSV, one row per (codec, setting, image), columns :data:`CSV_COLUMNS`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for r in records:
        row = []
        for c in CSV_COLUMNS:
            v = getattr(r, c)
            row.append("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v))
        w.writerow(row)
    atomic_write_text(path, buf.getvalue(), force=True)


def order_results(results: Sequence[ResultSet]) -> list[ResultSet]:
    """Learned codecs first (by name), then the classical ones in :data:`CLASSICAL_ORDER`."""
    def key(rs: ResultSet) -> tuple[int, int, str]:
        if rs.name in CLASSICAL_ORDER:
            return (1, CLASSICAL_ORDER.index(rs.name), rs.name)
        return (0, 0, rs.name)

    return sorted(results, key=key)


def load_results(folder: Path) -> list[ResultSet]:
    """Every ``*.json`` results file in ``folder`` (sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ResultsError(f"results folder not found: {folder}")
    out = [ResultSet.read_json(p) for p in sorted(folder.glob("*.json"))]
    if not out:
        raise ResultsError(f"no results (*.json) in {folder}")
    return out
