"""The baseline sweep: a classical codec over a quality grid, incremental through the cache.

:func:`run_baseline` encodes only what :class:`~mrt.eval.cache.BaselineCache` lacks; a metric
missing from a cached record (or computed by another implementation) is filled in by decoding
the stored bitstream again. Metrics marked ``heavy`` in the registry (DISTS, FID/KID: slow on
CPU) are computed only for the rate points that matter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mrt.eval.baselines import Baseline, bpp_of
from mrt.eval.cache import BaselineCache, CacheEntry, image_hash, point_key, record_key
from mrt.eval.common import EvalError, Log, stderr_log
from mrt.eval.images import LoadedImage, check_recon
from mrt.eval.schema import ImageRecord, RatePoint, ResultSet, aggregate
from mrt.eval.suite import MetricSuite
from mrt.metrics.registry import metric_names, metric_spec

__all__ = ["run_baseline"]


@dataclass
class _Sweep:
    """One baseline over one image set: the fixed context and the counters of this run."""

    baseline: Baseline
    images: Sequence[LoadedImage]
    suite: MetricSuite
    cache: BaselineCache
    heavy_max_bpp: float | None
    fid_set: set[str] | None  # FID/KID only at these settings (None: wherever heavy metrics run)
    log: Log | None
    version: str = ""
    settings: str = ""
    n_enc: int = 0
    n_upd: int = 0
    impls: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.version = self.baseline.encoder_version()
        self.settings = self.baseline.settings_id()

    # ---- helpers --------------------------------------------------------------------------
    def missing(self, entry: CacheEntry, heavy: bool) -> list[str]:
        """Light or heavy metrics the suite can compute that the entry lacks (or has from
        another implementation)."""
        return [n for n in self.suite.metrics
                if metric_spec(n).heavy == heavy
                and (impl := self.suite.impl(n)) is not None and entry.metric_impl.get(n) != impl]

    def decode(self, entry: CacheEntry, img: LoadedImage) -> np.ndarray:
        """Decode a stored bitstream; its reconstruction must hash as when it was encoded."""
        b = self.baseline
        recon = check_recon(b.decode(self.cache.read_bitstream(entry)), img, f"{b.name} decode")
        if entry.recon_hash and image_hash(recon) != entry.recon_hash:
            raise EvalError(f"{b.name}: decoding {entry.bitstream} is not deterministic "
                            "(reconstruction hash changed)")
        return recon

    def add_metrics(self, entry: CacheEntry, img: LoadedImage, recon: np.ndarray, names: list[str]) -> None:
        """Compute ``names`` and store them (with their implementation) in the cache."""
        for k, v in self.suite.compute(img.pixels, recon, only=names).items():
            entry.metrics[k] = v
            entry.metric_impl[k] = self.suite.impl(k) or ""
        self.cache.put(entry)
        self.n_upd += 1

    # ---- phase 1: bitstreams and cheap metrics --------------------------------------------
    def encode(self, img: LoadedImage, q: float, key: str, qtxt: str) -> tuple[CacheEntry, np.ndarray]:
        """Encode, store the file, read it back and decode it: a new cache entry."""
        b = self.baseline
        t0 = time.perf_counter()
        data = b.encode(img.pixels, q)
        enc_s = time.perf_counter() - t0
        rel = self.cache.write_bitstream(b.name, key, b.file_ext, data)
        stored = (self.cache.root / rel).read_bytes()
        t1 = time.perf_counter()
        recon = check_recon(b.decode(stored), img, f"{b.name} decode")
        dec_s = time.perf_counter() - t1
        entry = CacheEntry(key=key, codec=b.name, version=self.version, settings=self.settings,
                           quality=qtxt, image=img.name, image_hash=img.hash, height=img.height,
                           width=img.width, nbytes=len(stored), bitstream=rel,
                           recon_hash=image_hash(recon), enc_s=enc_s, dec_s=dec_s)
        self.n_enc += 1
        self.cache.put(entry)
        return entry, recon

    def light_pass(self, q: float, qtxt: str) -> tuple[list[CacheEntry], dict[str, np.ndarray]]:
        """Entries of every image at ``q`` (encoding what the cache lacks) with cheap metrics;
        also the reconstructions decoded on the way (by image hash)."""
        entries: list[CacheEntry] = []
        recons: dict[str, np.ndarray] = {}
        for img in self.images:
            key = record_key(self.baseline.name, self.version, self.settings, qtxt, img.hash)
            entry = self.cache.get(key)
            if entry is None:
                entry, recons[img.hash] = self.encode(img, q, key, qtxt)
            missing = self.missing(entry, heavy=False)
            if missing:
                if img.hash not in recons:
                    recons[img.hash] = self.decode(entry, img)
                self.add_metrics(entry, img, recons[img.hash], missing)
            entries.append(entry)
        return entries, recons

    # ---- phase 2: slow metrics, only for the rate points that matter ----------------------
    def heavy_pass(self, qtxt: str, pkey: str, entries: list[CacheEntry],
                   recons: dict[str, np.ndarray]) -> None:
        """Heavy per-image metrics and FID/KID of one rate point (FID/KID cached under ``pkey``)."""
        suite, cache = self.suite, self.cache
        need_fid = (suite.fid_available and cache.get_point(pkey) is None
                    and (self.fid_set is None or qtxt in self.fid_set))
        real_f: list[np.ndarray] = []
        fake_f: list[np.ndarray] = []
        for img, entry in zip(self.images, entries, strict=True):
            missing = self.missing(entry, heavy=True)
            if not missing and not need_fid:
                continue
            recon = recons.pop(img.hash, None)
            if recon is None:
                recon = self.decode(entry, img)
            if missing:
                self.add_metrics(entry, img, recon, missing)
            if need_fid:
                real_f.append(cache.features.get(suite.fid_id, img.hash,
                                                 lambda img=img: suite.patch_features(img.pixels)))
                fake_f.append(suite.patch_features(recon))
        if need_fid:
            sm = suite.set_metrics(real_f, fake_f)
            cache.put_point(pkey, {**sm, "codec": self.baseline.name, "quality": qtxt,
                                   "impl": suite.impl("fid")})

    # ---- one rate point -------------------------------------------------------------------
    def point(self, q: float) -> tuple[RatePoint, list[ImageRecord]]:
        """Everything for setting ``q``: bitstreams, metrics, the rate point and its records."""
        b = self.baseline
        qtxt, label = b.format_quality(q), b.quality_label(q)
        entries, recons = self.light_pass(q, qtxt)
        mean_bpp = float(np.mean([bpp_of(e.nbytes, e.height, e.width) for e in entries]))
        pkey = point_key(b.name, self.version, self.settings, qtxt, [im.hash for im in self.images],
                         self.suite.fid_id)
        if self.heavy_max_bpp is None or mean_bpp <= self.heavy_max_bpp:
            self.heavy_pass(qtxt, pkey, entries, recons)
        recons.clear()
        recs = [ImageRecord(
            codec=b.name, setting=label, image=img.name, height=e.height, width=e.width,
            nbytes=e.nbytes, bpp=bpp_of(e.nbytes, e.height, e.width), quality=q,
            image_hash=img.hash, enc_s=e.enc_s, dec_s=e.dec_s,
            **{n: e.metrics.get(n) for n in metric_names(per_image=True)})
            for img, e in zip(self.images, entries, strict=True)]
        point = aggregate(recs, label, quality=q)
        self._add_set_metrics(point, pkey)
        for e in entries:
            for k, v in e.metric_impl.items():
                if e.metrics.get(k) is not None:
                    self.impls.setdefault(k, set()).add(v)
        return point, recs

    def _add_set_metrics(self, point: RatePoint, pkey: str) -> None:
        """FID/KID of this or an earlier run, from the cache."""
        cached = self.cache.get_point(pkey)
        if cached is None:
            return
        point.fid, point.kid = cached.get("fid"), cached.get("kid")
        if cached.get("impl"):
            self.impls.setdefault("fid", set()).add(str(cached["impl"]))

    def log_point(self, point: RatePoint) -> None:
        """One progress line: bpp and the RD metrics this point has."""
        if self.log is None:
            return
        parts = [f"[{self.baseline.name} {point.setting}] {point.bpp:.4f} bpp"]
        parts += [f"{k} {v:.4f}" for k in metric_names(rd=True) if (v := point.get(k)) is not None]
        self.log(", ".join(parts))

    def meta(self, dataset: str) -> dict[str, Any]:
        """The ``meta`` object of the result set."""
        return {
            "codec_version": self.version,
            "settings": self.settings,
            "dataset": dataset,
            "n_images": len(self.images),
            # implementations behind the values in this file (cached values included)
            "metrics": {k: ", ".join(sorted(v)) for k, v in sorted(self.impls.items())},
            "fid_patch": self.suite.fid_patch,
            "heavy_max_bpp": self.heavy_max_bpp,
            "bpp": "file bytes * 8 / (H * W), whole file",
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "encoded_now": self.n_enc,
            "metrics_updated_now": self.n_upd,
            "cache": str(self.cache.root),
        }


def run_baseline(
    baseline: Baseline,
    images: Sequence[LoadedImage],
    suite: MetricSuite,
    cache: BaselineCache,
    *,
    qualities: Sequence[float] | None = None,
    dataset: str = "",
    heavy_max_bpp: float | None = None,
    fid_qualities: Sequence[float] | None = None,
    log: Log | None = stderr_log,
) -> ResultSet:
    """Sweep ``baseline`` over ``qualities`` (default: its grid) on ``images``, incrementally.

    A (codec, version, settings, quality, image) already in ``cache`` is not encoded again;
    metrics it lacks are computed from its stored bitstream. DISTS and FID/KID (slow on CPU)
    are computed only for rate points whose mean bpp is at most ``heavy_max_bpp`` (all when
    ``None``); ``fid_qualities`` further restricts FID/KID to those settings of the grid.
    Raises :class:`~mrt.eval.baselines.BaselineUnavailable` when the codec cannot run here.
    """
    baseline.require()
    if not images:
        raise EvalError("no images to evaluate")
    quals = [baseline.clamp_quality(q) for q in (qualities or baseline.default_qualities)]
    quals = list(dict.fromkeys(quals))  # unique, order kept
    fid_set = None if fid_qualities is None else {baseline.format_quality(baseline.clamp_quality(q))
                                                  for q in fid_qualities}
    sweep = _Sweep(baseline, images, suite, cache, heavy_max_bpp, fid_set, log)
    rs = ResultSet(name=baseline.name, description=baseline.description)
    for q in quals:
        point, recs = sweep.point(q)
        rs.points.append(point)
        rs.records.extend(recs)
        sweep.log_point(point)
    cache.compact()
    rs.meta = sweep.meta(dataset)
    return rs
