"""MRT evaluation: code every image through real files with the Codec API, time it, measure it.

:func:`evaluate_models` runs MRT models (``mrt.codec.Codec``): each model is one rate point;
the bytes go to a real file and are read back before decoding. The output is a
:class:`~mrt.eval.schema.ResultSet` (the results schema shared with the classical baselines).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mrt.eval.baselines import bpp_of
from mrt.eval.cache import FeatureStore
from mrt.eval.common import EvalError, Log, safe_name, stderr_log
from mrt.eval.images import LoadedImage, check_recon
from mrt.eval.schema import ImageRecord, RatePoint, ResultSet, aggregate
from mrt.eval.suite import MetricSuite

__all__ = ["CodecLike", "evaluate_codec", "evaluate_models"]


class CodecLike(Protocol):
    """What the evaluation needs from ``mrt.codec.Codec``."""

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


def _encode(codec: CodecLike, pixels: np.ndarray) -> tuple[bytes, float, float | None]:
    """``(file bytes, encode seconds, estimated bpp or None)`` of one image.

    ``mrt.codec.Codec.encode`` gives the bytes and the estimate at once; other codecs are asked
    for ``estimate_bpp(img)`` when they have it.
    """
    est: float | None = None
    encode_report = getattr(codec, "encode", None)
    t0 = time.perf_counter()
    if callable(encode_report):
        rep = encode_report(pixels)
        enc_s = time.perf_counter() - t0
        data = rep.data
        est = _maybe_float(getattr(rep, "estimated_bpp", None))
    else:
        data = codec.compress(pixels)
        enc_s = time.perf_counter() - t0
    estimate = getattr(codec, "estimate_bpp", None)
    if est is None and callable(estimate):
        est = float(estimate(pixels))
    return bytes(data), enc_s, est


def _code_one(codec: CodecLike, img: LoadedImage, suite: MetricSuite, folder: Path, name: str,
              setting: str, reuse: bool = False) -> tuple[ImageRecord, np.ndarray]:
    """Encode to a file, read it back, decode, measure; the record and the reconstruction.

    ``reuse``: decode the file already in ``folder`` for this image, if there is one, instead of
    encoding (no encode time or estimate is recorded for it).
    """
    path = folder / (safe_name(Path(img.name).with_suffix("").as_posix()) + ".mrt")
    if reuse and path.is_file():
        enc_s, est = None, None
    else:
        data, enc_s, est = _encode(codec, img.pixels)
        path.write_bytes(data)
    stored = path.read_bytes()
    t1 = time.perf_counter()
    rec = check_recon(codec.decompress(stored), img, f"{name} decompress")
    dec_s = time.perf_counter() - t1
    m = suite.compute(img.pixels, rec)
    r = ImageRecord(codec=name, setting=setting, image=img.name, height=img.height,
                    width=img.width, nbytes=len(stored),
                    bpp=bpp_of(len(stored), img.height, img.width), image_hash=img.hash,
                    est_bpp=est, enc_s=enc_s, dec_s=dec_s, **m)
    return r, rec


def evaluate_codec(
    codec: CodecLike,
    images: Sequence[LoadedImage],
    suite: MetricSuite,
    *,
    name: str,
    setting: str,
    bitstream_dir: Path | None = None,
    log: Log | None = stderr_log,
    reuse: bool = False,
    features: FeatureStore | None = None,
) -> tuple[list[ImageRecord], RatePoint]:
    """Code every image with ``codec`` through a real file; return records and the rate point.

    Files go to ``bitstream_dir/<image>.mrt`` (a temporary folder when ``None``); the decoder
    reads them back from disk. ``bpp`` counts the whole file (header included);
    ``est_bpp`` is the codec's own estimate when it has ``estimate_bpp(img)``.
    ``reuse``: decode the files a previous run left in ``bitstream_dir`` instead of encoding again
    (e.g. to add FID to results of a slow encoder); they must be this setting's files of these
    images (a file of another model is refused when decoded; its size must match the image's).
    ``features``: where the originals' FID features are kept between rate points and runs
    (computed once per image; in memory for this call when ``None``).
    """
    if not images:
        raise EvalError("no images to evaluate")
    records: list[ImageRecord] = []
    store = features if features is not None else FeatureStore(None)
    real_f: list[np.ndarray] = []
    fake_f: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(prefix="mrt-eval-") as tmp:
        folder = Path(bitstream_dir) if bitstream_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(images):
            r, rec = _code_one(codec, img, suite, folder, name, setting, reuse and bitstream_dir is not None)
            records.append(r)
            if suite.fid_available:
                real_f.append(store.get(suite.fid_id, img.hash, lambda img=img: suite.patch_features(img.pixels)))
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
    from mrt.codec import Codec  # noqa: PLC0415 (torch and the models: only when evaluating)

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
    log: Log | None = stderr_log,
    reuse: bool = False,
    features: FeatureStore | None = None,
) -> ResultSet:
    """Evaluate MRT models (names or paths; ``None`` = the default model), one rate point each.

    The originals' FID features are computed once for all models (and kept in ``features``).
    """
    load = loader or _default_loader
    features = features if features is not None else FeatureStore(None)
    rs = ResultSet(name=name, description=description or "MRT learned codec (file bytes, header included)")
    model_meta = []
    for spec in models:
        codec = load(spec)
        setting = str(getattr(codec, "setting", None) or getattr(codec, "name", None) or spec or "default")
        bdir = bitstream_root / safe_name(setting) if bitstream_root is not None else None
        recs, point = evaluate_codec(codec, images, suite, name=name, setting=setting,
                                     bitstream_dir=bdir, log=log, reuse=reuse, features=features)
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

