"""Evaluation runner: code every image through real files, time it, measure it, aggregate.

Two entry points share one metric suite and one output schema (:mod:`mrt.eval.schema`):

* :func:`evaluate_models` runs MRT models through the Codec API (``mrt.codec.Codec``): each
  model is one rate point; bytes go to a real file and are read back before decoding.
* :func:`run_baseline` sweeps a classical codec (:mod:`mrt.eval.baselines`) over a quality
  grid, incrementally, through :class:`mrt.eval.cache.BaselineCache`.

Metrics come from ``mrt.metrics`` (imported lazily, on first use). Until that package provides
them, PSNR and MS-SSIM fall back to :mod:`mrt.eval.simple_metrics` (recorded as such) and
LPIPS / DISTS / FID / KID are left empty; the cache lets a later run fill them in.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from mrt.errors import MRTError
from mrt.eval.baselines import Baseline, bpp_of
from mrt.eval.cache import BaselineCache, CacheEntry, image_hash, point_key, record_key
from mrt.eval.schema import ImageRecord, RatePoint, ResultSet, aggregate

__all__ = [
    "IMAGE_EXTS",
    "CodecLike",
    "EvalError",
    "LoadedImage",
    "MetricStatus",
    "MetricSuite",
    "evaluate_codec",
    "evaluate_models",
    "list_image_files",
    "load_images",
    "run_baseline",
]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm")
PER_IMAGE_METRICS = ("psnr", "ms_ssim", "lpips", "dists")
_FALLBACK_IMPL = "mrt.eval.simple_metrics"
_MODULE_IMPL = "mrt.metrics"

Log = Callable[[str], None]


class EvalError(MRTError):
    """An evaluation could not run (no images, a codec returned the wrong shape, ...)."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedImage:
    """An RGB uint8 image and where it came from."""

    name: str  # file name relative to its root folder
    pixels: np.ndarray  # [H, W, 3] uint8
    hash: str

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def list_image_files(paths: Iterable[Path | str]) -> list[tuple[Path, str]]:
    """Image files under the given files/folders as ``(path, display name)``, sorted."""
    out: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append((p, p.name))
        elif p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
            out.extend((f, f.relative_to(p).as_posix()) for f in files)
        else:
            raise EvalError(f"no such file or folder: {p}")
    if not out:
        raise EvalError("no images found in " + ", ".join(str(p) for p in paths))
    return out


def _read_image(path: Path) -> np.ndarray:
    """RGB uint8 pixels; uses ``mrt.io.load_image`` when present, else Pillow."""
    try:
        from mrt.io import load_image  # type: ignore[attr-defined]  # noqa: PLC0415

        return np.asarray(load_image(path), dtype=np.uint8)
    except ImportError:
        pass
    from PIL import Image, ImageOps  # noqa: PLC0415

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, rgba)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except OSError as exc:
        raise EvalError(f"cannot read image {path}: {exc}") from exc


def load_images(paths: Iterable[Path | str], limit: int | None = None) -> list[LoadedImage]:
    """Load every image under ``paths`` (files or folders), optionally only the first ``limit``."""
    files = list_image_files(paths)
    if limit is not None:
        files = files[:limit]
    out = []
    for path, name in files:
        px = _read_image(path)
        out.append(LoadedImage(name=name, pixels=px, hash=image_hash(px)))
    return out


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricStatus:
    """Which implementation computes a metric, or why it is unavailable."""

    name: str
    available: bool
    impl: str = ""
    reason: str = ""


def _to_tensor(img: np.ndarray, device: str = "cpu") -> Any:
    import torch  # noqa: PLC0415

    arr = np.ascontiguousarray(img)
    if not arr.flags.writeable:
        arr = arr.copy()
    t = torch.from_numpy(arr).permute(2, 0, 1)  # [H, W, 3] -> [3, H, W]
    return (t.unsqueeze(0).to(device=device, dtype=torch.float32) / 255.0)  # [1, 3, H, W] in [0, 1]


def _scalar(v: Any) -> float:
    if hasattr(v, "detach"):
        v = v.detach().float().mean().item()
    return float(np.mean(np.asarray(v, dtype=np.float64)))


class MetricSuite:
    """Per-image metrics and dataset-level FID/KID with lazy, optional backends.

    ``module`` replaces ``mrt.metrics`` (tests pass a mock). ``metrics`` chooses the per-image
    metrics (``psnr``, ``ms_ssim``, ``lpips``, ``dists``); ``fid`` turns FID/KID on;
    ``fid_patch`` is the patch size of the GLC protocol (64 for Kodak, 256 for CLIC);
    ``device`` is where the metric networks run (``cpu`` or e.g. ``cuda``).
    """

    def __init__(
        self,
        metrics: Sequence[str] = PER_IMAGE_METRICS,
        *,
        fid: bool = True,
        fid_patch: int = 64,
        module: ModuleType | Any | None = None,
        allow_fallback: bool = True,
        batch: int = 32,
        device: str = "cpu",
    ) -> None:
        unknown = set(metrics) - set(PER_IMAGE_METRICS)
        if unknown:
            raise EvalError(f"unknown metric(s) {sorted(unknown)}; known: {list(PER_IMAGE_METRICS)}")
        self.metrics = tuple(metrics)
        self.want_fid = fid
        self.fid_patch = fid_patch
        self.allow_fallback = allow_fallback
        self.batch = batch
        self.device = device
        self._module = module
        self._module_error = ""
        self._resolved = False
        self._status: dict[str, MetricStatus] = {}
        self._fns: dict[str, Callable[[np.ndarray, np.ndarray], float | None]] = {}
        self._fid: dict[str, Any] = {}

    # ---- resolution -----------------------------------------------------------------------
    def _load_module(self) -> Any | None:
        if self._module is not None:
            return self._module
        try:
            self._module = importlib.import_module("mrt.metrics")
        except Exception as exc:  # noqa: BLE001 (a half-written package must not stop a run)
            self._module_error = f"import mrt.metrics failed: {exc}"
            return None
        return self._module

    def _resolve(self) -> None:
        if self._resolved:
            return
        self._resolved = True
        mod = self._load_module()
        for name in self.metrics:
            self._status[name] = self._resolve_one(mod, name)
        if self.want_fid:
            self._status["fid"] = self._resolve_fid(mod)
        else:
            self._status["fid"] = MetricStatus("fid", False, reason="disabled")

    def _missing(self, mod: Any | None, attr: str) -> str:
        if mod is None:
            return self._module_error or "mrt.metrics is not importable"
        return f"mrt.metrics has no {attr}"

    def _resolve_one(self, mod: Any | None, name: str) -> MetricStatus:
        import torch  # noqa: PLC0415

        if name in ("psnr", "ms_ssim"):
            fn = getattr(mod, name, None) if mod is not None else None
            if fn is not None:
                def call(x: np.ndarray, y: np.ndarray, fn: Any = fn) -> float | None:
                    with torch.no_grad():
                        return _scalar(fn(_to_tensor(x), _to_tensor(y)))  # [1,3,H,W] each

                self._fns[name] = call
                return MetricStatus(name, True, impl=_MODULE_IMPL)
            if self.allow_fallback:
                from mrt.eval import simple_metrics  # noqa: PLC0415

                self._fns[name] = simple_metrics.psnr_np if name == "psnr" else simple_metrics.ms_ssim_np
                return MetricStatus(name, True, impl=_FALLBACK_IMPL,
                                    reason=self._missing(mod, name) + " (fallback used)")
            return MetricStatus(name, False, reason=self._missing(mod, name))
        attr, kwargs = ("LPIPS", {"net": "alex"}) if name == "lpips" else ("DISTS", {})
        cls = getattr(mod, attr, None) if mod is not None else None
        if cls is None:
            return MetricStatus(name, False, reason=self._missing(mod, attr))
        try:
            net = cls(**kwargs).eval().to(self.device)
        except Exception as exc:  # noqa: BLE001 (e.g. weights not fetched yet)
            return MetricStatus(name, False, reason=f"{attr}() failed: {exc}")

        def call_net(x: np.ndarray, y: np.ndarray, net: Any = net) -> float | None:
            with torch.no_grad():
                return _scalar(net(_to_tensor(x, self.device), _to_tensor(y, self.device)))

        self._fns[name] = call_net
        impl = _MODULE_IMPL + (".LPIPS(alex)" if name == "lpips" else ".DISTS")
        return MetricStatus(name, True, impl=impl)

    def _resolve_fid(self, mod: Any | None) -> MetricStatus:
        need = ("FIDFeatureExtractor", "fid_from_features", "kid_from_features", "extract_patches")
        if mod is None:
            return MetricStatus("fid", False, reason=self._missing(mod, ""))
        lacking = [a for a in need if getattr(mod, a, None) is None]
        if lacking:
            return MetricStatus("fid", False, reason=f"mrt.metrics has no {', '.join(lacking)}")
        try:
            try:
                extractor = mod.FIDFeatureExtractor(device=self.device)
            except TypeError:  # an extractor without a device argument
                extractor = mod.FIDFeatureExtractor()
            if hasattr(extractor, "eval"):
                extractor = extractor.eval()
        except Exception as exc:  # noqa: BLE001
            return MetricStatus("fid", False, reason=f"FIDFeatureExtractor() failed: {exc}")
        self._fid = {"extractor": extractor, "mod": mod}
        return MetricStatus("fid", True, impl=f"{_MODULE_IMPL}.FID(patch={self.fid_patch})")

    # ---- queries --------------------------------------------------------------------------
    def status(self) -> dict[str, MetricStatus]:
        """Status of every requested metric (resolving backends on first call)."""
        self._resolve()
        return dict(self._status)

    def impl(self, name: str) -> str | None:
        """Implementation id of an available metric, else ``None``."""
        st = self.status().get(name)
        return st.impl if st is not None and st.available else None

    @property
    def fid_available(self) -> bool:
        return self.impl("fid") is not None

    @property
    def fid_id(self) -> str:
        """Identifier of the FID feature extractor + patch protocol (for caches)."""
        return f"fid-p{self.fid_patch}"

    def compute(self, x: np.ndarray, y: np.ndarray, only: Iterable[str] | None = None) -> dict[str, float | None]:
        """Per-image metrics of original ``x`` and reconstruction ``y`` (uint8 ``(H, W, 3)``)."""
        self._resolve()
        names = self.metrics if only is None else [n for n in self.metrics if n in set(only)]
        out: dict[str, float | None] = {}
        for name in names:
            fn = self._fns.get(name)
            out[name] = None if fn is None else fn(x, y)
        return out

    def patch_features(self, img: np.ndarray) -> np.ndarray:
        """FID features ``[N, D]`` of the ``fid_patch`` patches of one image."""
        import torch  # noqa: PLC0415

        if not self.fid_available:
            raise EvalError("FID is not available: " + self.status()["fid"].reason)
        mod, extractor = self._fid["mod"], self._fid["extractor"]
        with torch.no_grad():
            patches = mod.extract_patches(_to_tensor(img), patch=self.fid_patch)  # [N, 3, p, p]
            feats = []
            for i in range(0, int(patches.shape[0]), self.batch):
                f = extractor(patches[i : i + self.batch])
                feats.append(f.detach().cpu().double().numpy() if hasattr(f, "detach") else np.asarray(f))
        if not feats:
            return np.zeros((0, 0))
        return np.concatenate(feats, axis=0)

    def set_metrics(self, real: Sequence[np.ndarray], fake: Sequence[np.ndarray]) -> dict[str, float | None]:
        """FID and KID between the stacked patch features of originals and reconstructions."""
        mod = self._fid["mod"]
        r = np.concatenate(list(real), axis=0)
        f = np.concatenate(list(fake), axis=0)
        out: dict[str, float | None] = {"n_patches": float(r.shape[0])}
        if r.shape[0] < 2 or f.shape[0] < 2:
            return {**out, "fid": None, "kid": None}
        out["fid"] = _scalar(mod.fid_from_features(r, f))
        kid = mod.kid_from_features(r, f)
        if isinstance(kid, tuple):
            kid = kid[0]
        elif hasattr(kid, "mean") and not callable(kid.mean):  # mrt.metrics.KIDResult
            kid = kid.mean
        out["kid"] = _scalar(kid)
        return out

    def describe(self) -> dict[str, str]:
        """``{metric: implementation or 'unavailable: reason'}`` for result metadata."""
        return {k: (v.impl if v.available else f"unavailable: {v.reason}") for k, v in self.status().items()}


# ---------------------------------------------------------------------------------------------
# MRT models through the Codec API
# ---------------------------------------------------------------------------------------------


class CodecLike(Protocol):
    """What the runner needs from ``mrt.codec.Codec``."""

    name: str

    def compress(self, img: np.ndarray) -> bytes: ...

    def decompress(self, data: bytes) -> np.ndarray: ...


def _maybe_float(v: Any) -> float | None:
    if v is None:
        return None
    try:
        return float(v() if callable(v) else v)
    except (TypeError, ValueError):
        return None


def _safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s) or "x"


def _check_recon(rec: Any, img: LoadedImage, who: str) -> np.ndarray:
    rec = np.asarray(rec)
    if rec.shape != img.pixels.shape or rec.dtype != np.uint8:
        raise EvalError(
            f"{who} returned {rec.dtype} {rec.shape} for {img.name}, expected uint8 {img.pixels.shape}"
        )
    return rec


def evaluate_codec(
    codec: CodecLike,
    images: Sequence[LoadedImage],
    suite: MetricSuite,
    *,
    name: str,
    setting: str,
    bitstream_dir: Path | None = None,
    log: Log | None = _stderr,
) -> tuple[list[ImageRecord], RatePoint]:
    """Code every image with ``codec`` through a real file; return records and the rate point.

    Files go to ``bitstream_dir/<image>.mrt`` (a temporary folder when ``None``); the decoder
    reads them back from disk. ``bpp`` counts the whole file (header included);
    ``est_bpp`` is the codec's own estimate when it has ``estimate_bpp(img)``.
    """
    if not images:
        raise EvalError("no images to evaluate")
    records: list[ImageRecord] = []
    real_f: list[np.ndarray] = []
    fake_f: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(prefix="mrt-eval-") as tmp:
        folder = Path(bitstream_dir) if bitstream_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        estimate = getattr(codec, "estimate_bpp", None)
        encode_report = getattr(codec, "encode", None)  # mrt.codec.Codec: bytes + estimate at once
        for i, img in enumerate(images):
            est: float | None = None
            t0 = time.perf_counter()
            if callable(encode_report):
                rep = encode_report(img.pixels)
                enc_s = time.perf_counter() - t0
                data = rep.data
                est = _maybe_float(getattr(rep, "estimated_bpp", None))
            else:
                data = codec.compress(img.pixels)
                enc_s = time.perf_counter() - t0
            if est is None and callable(estimate):
                est = float(estimate(img.pixels))
            path = folder / (_safe_name(Path(img.name).with_suffix("").as_posix()) + ".mrt")
            path.write_bytes(bytes(data))
            stored = path.read_bytes()
            t1 = time.perf_counter()
            rec = _check_recon(codec.decompress(stored), img, f"{name} decompress")
            dec_s = time.perf_counter() - t1
            m = suite.compute(img.pixels, rec)
            r = ImageRecord(codec=name, setting=setting, image=img.name, height=img.height,
                            width=img.width, nbytes=len(stored),
                            bpp=bpp_of(len(stored), img.height, img.width), image_hash=img.hash,
                            est_bpp=est, enc_s=enc_s, dec_s=dec_s,
                            psnr=m.get("psnr"), ms_ssim=m.get("ms_ssim"), lpips=m.get("lpips"),
                            dists=m.get("dists"))
            records.append(r)
            if suite.fid_available:
                real_f.append(suite.patch_features(img.pixels))
                fake_f.append(suite.patch_features(rec))
            if log is not None:
                log(f"[{name} {setting}] {i + 1}/{len(images)} {img.name}: {r.bpp:.4f} bpp"
                    + (f", PSNR {r.psnr:.2f}" if r.psnr is not None else ""))
    point = aggregate(records, setting)
    if suite.fid_available:
        sm = suite.set_metrics(real_f, fake_f)
        point.fid, point.kid = sm.get("fid"), sm.get("kid")
    return records, point


def _default_loader(name_or_path: str | None) -> CodecLike:
    try:
        from mrt.codec import Codec  # noqa: PLC0415
    except ImportError as exc:
        raise EvalError(f"the Codec API (mrt.codec) is not available: {exc}") from exc
    return Codec.load(name_or_path)  # type: ignore[no-any-return]


def evaluate_models(
    models: Sequence[str | None],
    images: Sequence[LoadedImage],
    suite: MetricSuite,
    *,
    name: str = "mrt",
    description: str = "",
    bitstream_root: Path | None = None,
    loader: Callable[[str | None], CodecLike] | None = None,
    dataset: str = "",
    log: Log | None = _stderr,
) -> ResultSet:
    """Evaluate MRT models (names or paths; ``None`` = the default model), one rate point each."""
    load = loader or _default_loader
    rs = ResultSet(name=name, description=description or "MRT learned codec (file bytes, header included)")
    model_meta = []
    for spec in models:
        codec = load(spec)
        setting = str(getattr(codec, "name", None) or spec or "default")
        bdir = bitstream_root / _safe_name(setting) if bitstream_root is not None else None
        recs, point = evaluate_codec(codec, images, suite, name=name, setting=setting,
                                     bitstream_dir=bdir, log=log)
        rs.records.extend(recs)
        rs.points.append(point)
        mid = getattr(codec, "model_id", None)
        model_meta.append({"setting": setting, "spec": spec,
                           "model_id": f"{mid:06x}" if isinstance(mid, int) else mid})
    rs.meta = {"dataset": dataset, "n_images": len(images), "models": model_meta,
               "metrics": suite.describe(), "fid_patch": suite.fid_patch,
               "created": time.strftime("%Y-%m-%d %H:%M:%S"),
               "bpp": "file bytes * 8 / (H * W), header included"}
    return rs


# ---------------------------------------------------------------------------------------------
# classical baselines with the cache
# ---------------------------------------------------------------------------------------------


def _entry_metrics_missing(entry: CacheEntry, suite: MetricSuite) -> list[str]:
    """Metrics the suite can compute that the entry lacks (or has from another implementation)."""
    return [n for n in suite.metrics
            if (impl := suite.impl(n)) is not None and entry.metric_impl.get(n) != impl]


#: per-image metrics that are slow on CPU (skipped above ``heavy_max_bpp``); FID/KID too
HEAVY_METRICS = frozenset({"dists"})


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
    log: Log | None = _stderr,
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
    version = baseline.encoder_version()
    settings = baseline.settings_id()
    quals = [baseline.clamp_quality(q) for q in (qualities or baseline.default_qualities)]
    quals = list(dict.fromkeys(quals))  # unique, order kept
    fid_set = None if fid_qualities is None else {baseline.format_quality(baseline.clamp_quality(q))
                                                  for q in fid_qualities}
    light = [m for m in suite.metrics if m not in HEAVY_METRICS]
    heavy = [m for m in suite.metrics if m in HEAVY_METRICS]
    rs = ResultSet(name=baseline.name, description=baseline.description)
    n_enc = n_upd = 0
    impls: dict[str, set[str]] = {}

    def decode_entry(entry: CacheEntry, img: LoadedImage) -> np.ndarray:
        recon = _check_recon(baseline.decode(cache.read_bitstream(entry)), img, f"{baseline.name} decode")
        if entry.recon_hash and image_hash(recon) != entry.recon_hash:
            raise EvalError(f"{baseline.name}: decoding {entry.bitstream} is not deterministic "
                            "(reconstruction hash changed)")
        return recon

    def add_metrics(entry: CacheEntry, img: LoadedImage, recon: np.ndarray, names: list[str]) -> None:
        vals = suite.compute(img.pixels, recon, only=names)
        for k, v in vals.items():
            entry.metrics[k] = v
            entry.metric_impl[k] = suite.impl(k) or ""
        cache.put(entry)

    for q in quals:
        qtxt = baseline.format_quality(q)
        label = baseline.quality_label(q)
        entries: list[CacheEntry] = []
        recons: dict[str, np.ndarray] = {}
        # phase 1: bitstreams (encode only what the cache lacks) and the cheap metrics
        for img in images:
            key = record_key(baseline.name, version, settings, qtxt, img.hash)
            entry = cache.get(key)
            if entry is None:
                t0 = time.perf_counter()
                data = baseline.encode(img.pixels, q)
                enc_s = time.perf_counter() - t0
                rel = cache.write_bitstream(baseline.name, key, baseline.file_ext, data)
                stored = (cache.root / rel).read_bytes()
                t1 = time.perf_counter()
                recon = _check_recon(baseline.decode(stored), img, f"{baseline.name} decode")
                dec_s = time.perf_counter() - t1
                entry = CacheEntry(key=key, codec=baseline.name, version=version, settings=settings,
                                   quality=qtxt, image=img.name, image_hash=img.hash,
                                   height=img.height, width=img.width, nbytes=len(stored),
                                   bitstream=rel, recon_hash=image_hash(recon), enc_s=enc_s,
                                   dec_s=dec_s)
                recons[img.hash] = recon
                n_enc += 1
                cache.put(entry)
            missing = [m for m in _entry_metrics_missing(entry, suite) if m in light]
            if missing:
                if img.hash not in recons:
                    recons[img.hash] = decode_entry(entry, img)
                add_metrics(entry, img, recons[img.hash], missing)
                n_upd += 1
            entries.append(entry)
        mean_bpp = float(np.mean([bpp_of(e.nbytes, e.height, e.width) for e in entries]))
        heavy_ok = heavy_max_bpp is None or mean_bpp <= heavy_max_bpp
        # phase 2: slow metrics, only for the rate points that matter
        pkey = point_key(baseline.name, version, settings, qtxt, [im.hash for im in images], suite.fid_id)
        need_fid = (heavy_ok and suite.fid_available and cache.get_point(pkey) is None
                    and (fid_set is None or qtxt in fid_set))
        real_f: list[np.ndarray] = []
        fake_f: list[np.ndarray] = []
        if heavy_ok:
            for img, entry in zip(images, entries, strict=True):
                missing = [m for m in _entry_metrics_missing(entry, suite) if m in heavy]
                if not missing and not need_fid:
                    continue
                recon = recons.pop(img.hash, None)
                if recon is None:
                    recon = decode_entry(entry, img)
                if missing:
                    add_metrics(entry, img, recon, missing)
                    n_upd += 1
                if need_fid:
                    real = cache.load_features(suite.fid_id, img.hash)
                    if real is None:
                        real = suite.patch_features(img.pixels)
                        cache.save_features(suite.fid_id, img.hash, real)
                    real_f.append(real)
                    fake_f.append(suite.patch_features(recon))
        recons.clear()
        if need_fid:
            sm = suite.set_metrics(real_f, fake_f)
            cache.put_point(pkey, {**sm, "codec": baseline.name, "quality": qtxt,
                                   "impl": suite.impl("fid")})
        recs = [ImageRecord(
            codec=baseline.name, setting=label, image=img.name, height=e.height, width=e.width,
            nbytes=e.nbytes, bpp=bpp_of(e.nbytes, e.height, e.width), quality=q,
            image_hash=img.hash, enc_s=e.enc_s, dec_s=e.dec_s,
            psnr=e.metrics.get("psnr"), ms_ssim=e.metrics.get("ms_ssim"),
            lpips=e.metrics.get("lpips"), dists=e.metrics.get("dists"))
            for img, e in zip(images, entries, strict=True)]
        point = aggregate(recs, label, quality=q)
        cached_point = cache.get_point(pkey)  # FID/KID of this or an earlier run
        if cached_point is not None:
            point.fid, point.kid = cached_point.get("fid"), cached_point.get("kid")
            if cached_point.get("impl"):
                impls.setdefault("fid", set()).add(str(cached_point["impl"]))
        for e in entries:
            for k, v in e.metric_impl.items():
                if e.metrics.get(k) is not None:
                    impls.setdefault(k, set()).add(v)
        rs.points.append(point)
        rs.records.extend(recs)
        if log is not None:
            parts = [f"[{baseline.name} {label}] {point.bpp:.4f} bpp"]
            for k in ("psnr", "ms_ssim", "lpips", "dists", "fid"):
                v = point.get(k)
                if v is not None:
                    parts.append(f"{k} {v:.4f}")
            log(", ".join(parts))
    cache.compact()
    rs.meta = {
        "codec_version": version,
        "settings": settings,
        "dataset": dataset,
        "n_images": len(images),
        # implementations behind the values in this file (cached values included)
        "metrics": {k: ", ".join(sorted(v)) for k, v in sorted(impls.items())},
        "fid_patch": suite.fid_patch,
        "heavy_max_bpp": heavy_max_bpp,
        "bpp": "file bytes * 8 / (H * W), whole file",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "encoded_now": n_enc,
        "metrics_updated_now": n_upd,
        "cache": str(cache.root),
    }
    return rs
