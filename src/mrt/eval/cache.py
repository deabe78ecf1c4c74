"""On-disk cache of baseline runs, so that reruns are incremental.

Layout under the cache root (default ``./cache/baselines``, outside git)::

    records.jsonl                    one JSON object per line, the last line of a key wins
    points.jsonl                     dataset-level metrics (FID/KID) per rate point
    bitstreams/<codec>/<key><ext>    the exact file bytes each encoder produced
    features/<extractor>/<hash>.npy  FID features of the original images' patches

A record's key hashes (codec, encoder version, fixed settings, quality, image hash), so a new
encoder version or setting never reuses old bitstreams. Metrics live in the record beside
the name of the implementation that computed them; a metric that is missing (or was computed
by another implementation) is filled in later by decoding the stored bitstream again, never
by re-encoding.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from mrt.io import atomic_write, atomic_write_bytes, atomic_write_text

__all__ = ["BaselineCache", "CacheEntry", "FeatureStore", "image_hash", "point_key", "record_key"]


def image_hash(img: np.ndarray) -> str:
    """Content hash (16 hex digits) of an image's pixels and shape."""
    h = hashlib.sha256()
    h.update(repr((img.shape, str(img.dtype))).encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()[:16]


def _digest(parts: Iterable[str], n: int = 24) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()[:n]


def record_key(codec: str, version: str, settings: str, quality: str, img_hash: str) -> str:
    """Cache key of one (codec, encoder version, settings, quality, image)."""
    return _digest([codec, version, settings, quality, img_hash])


def point_key(codec: str, version: str, settings: str, quality: str, img_hashes: Iterable[str],
              metric_id: str) -> str:
    """Cache key of a dataset-level metric of one rate point."""
    return _digest([codec, version, settings, quality, *sorted(img_hashes), metric_id])


@dataclass
class CacheEntry:
    """One cached encoding: file, timings and whatever metrics were computed so far."""

    key: str
    codec: str
    version: str
    settings: str
    quality: str
    image: str
    image_hash: str
    height: int
    width: int
    nbytes: int
    bitstream: str  # path relative to the cache root
    recon_hash: str = ""
    enc_s: float | None = None
    dec_s: float | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    metric_impl: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CacheEntry:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class BaselineCache:
    """The JSON-lines index plus stored bitstreams and feature arrays under one root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.features = FeatureStore(self.root / "features")
        self._records: dict[str, CacheEntry] = {}
        self._points: dict[str, dict[str, Any]] = {}
        self._n_lines = 0
        for line in self._read_lines(self.root / "records.jsonl"):
            entry = CacheEntry.from_dict(line)
            self._records[entry.key] = entry
            self._n_lines += 1
        for line in self._read_lines(self.root / "points.jsonl"):
            self._points[str(line["key"])] = line

    @staticmethod
    def _read_lines(path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        out = []
        for raw in path.read_text().splitlines():
            raw = raw.strip()
            if not raw:
                continue
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                continue  # a torn last line after an interrupted run
        return out

    @staticmethod
    def _append(path: Path, obj: dict[str, Any]) -> None:
        with path.open("a") as fh:
            fh.write(json.dumps(obj, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    # ---- records --------------------------------------------------------------------------
    def get(self, key: str) -> CacheEntry | None:
        """The entry of ``key`` whose bitstream file still exists, else ``None``."""
        e = self._records.get(key)
        if e is None or not (self.root / e.bitstream).is_file():
            return None
        return e

    def put(self, entry: CacheEntry) -> None:
        """Store (or update) an entry."""
        self._records[entry.key] = entry
        self._append(self.root / "records.jsonl", asdict(entry))
        self._n_lines += 1

    def entries(self) -> list[CacheEntry]:
        """All current entries."""
        return list(self._records.values())

    def write_bitstream(self, codec: str, key: str, ext: str, data: bytes) -> str:
        """Store file bytes; returns the path relative to the root."""
        rel = Path("bitstreams") / codec / f"{key}{ext}"
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data, force=True)
        return rel.as_posix()

    def read_bitstream(self, entry: CacheEntry) -> bytes:
        """The stored file bytes of an entry."""
        return (self.root / entry.bitstream).read_bytes()

    def compact(self) -> None:
        """Rewrite ``records.jsonl`` with one line per key (drops superseded lines)."""
        if self._n_lines <= len(self._records):
            return
        text = "".join(json.dumps(asdict(e), sort_keys=True) + "\n" for e in self._records.values())
        atomic_write_text(self.root / "records.jsonl", text, force=True)
        self._n_lines = len(self._records)

    # ---- dataset-level metrics ------------------------------------------------------------
    def get_point(self, key: str) -> dict[str, Any] | None:
        """Cached FID/KID (and friends) of a rate point."""
        return self._points.get(key)

    def put_point(self, key: str, values: dict[str, Any]) -> None:
        """Store dataset-level metrics of a rate point."""
        obj = {"key": key, **values}
        self._points[key] = obj
        self._append(self.root / "points.jsonl", obj)


class FeatureStore:
    """FID features of original images, keyed by extractor id and image content hash.

    The originals' patch features are the same for every codec and rate point, and computing
    them is half the cost of FID; they are kept on disk (``<root>/<extractor>/<hash>.npy``,
    written atomically) and in memory. ``root=None`` keeps them in memory only.
    """

    def __init__(self, root: Path | None) -> None:
        self.root = None if root is None else Path(root)
        self._memo: dict[tuple[str, str], np.ndarray] = {}

    def path(self, extractor_id: str, img_hash: str) -> Path | None:
        """Where the features of one original are stored (``None`` in memory only)."""
        return None if self.root is None else self.root / extractor_id / f"{img_hash}.npy"

    def get(self, extractor_id: str, img_hash: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The stored features, else ``compute()`` (then stored)."""
        key = (extractor_id, img_hash)
        if key in self._memo:
            return self._memo[key]
        p = self.path(extractor_id, img_hash)
        if p is not None and p.is_file():
            feats = np.load(p)
        else:
            feats = np.asarray(compute())
            if p is not None:
                p.parent.mkdir(parents=True, exist_ok=True)
                with atomic_write(p, force=True) as fh:
                    np.save(fh, feats)
        self._memo[key] = feats
        return feats
