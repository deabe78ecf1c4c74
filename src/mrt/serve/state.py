"""What the comparison server knows and does, apart from HTTP: models, codecs, files, requests.

Everything stays in memory: uploads are decoded from bytes, results are kept (for the download
link) in a small bounded store, and no name or path sent by the client is ever used to open a
file (a model is picked only among the names this server lists).
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qs

import numpy as np

from mrt.codec import Codec, list_models
from mrt.errors import ImageError, ModelError, MRTError, NotEnoughMemoryError
from mrt.eval.baselines import get_baseline
from mrt.eval.suite import PER_IMAGE_METRICS, MetricSuite
from mrt.io import encode_image, load_image
from mrt.serve.compare import CodedImage, Comparison, compare

__all__ = ["ClientError", "CompareRequest", "ServeConfig", "ServeState", "StoredFile"]

MAX_BUDGET_BYTES = 100_000_000  # a sanity bound on the requested byte budget


@dataclass(frozen=True)
class ServeConfig:
    """Settings of ``mrt serve`` (the defaults are the command's)."""

    host: str = "127.0.0.1"
    port: int = 8765
    model: str | None = None  # default model: a name or a .mrtm path given by the operator
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 1 << 24  # about 16.7 megapixels, checked before decoding
    metrics: tuple[str, ...] = PER_IMAGE_METRICS
    classical: tuple[str, ...] = ("jpeg", "vvc")
    device: str = "cpu"  # where the metric networks run
    keep_files: int = 32  # compressed files kept for download (oldest dropped first)
    quiet: bool = False  # no request log lines


class ClientError(Exception):
    """A request the server refuses: an HTTP status and a one-line message for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class CompareRequest:
    """A parsed upload: the image bytes and the choices made on the page."""

    body: bytes
    model: str
    max_bytes: int | None
    classical: tuple[str, ...]
    name: str  # the upload's name, only for the download's file name


@dataclass(frozen=True)
class StoredFile:
    """A compressed file kept for download."""

    data: bytes
    filename: str


def _first(query: dict[str, list[str]], key: str) -> str:
    return query.get(key, [""])[0].strip()


def download_name(name: str) -> str:
    """A safe ``<stem>.mrt`` for Content-Disposition from the upload's name (never a path)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in stem)[:64].strip("._")
    return (safe or "image") + ".mrt"


def _parse_budget(text: str) -> int | None:
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ClientError(400, f"max bytes must be a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_BUDGET_BYTES:
        raise ClientError(400, f"max bytes must be between 1 and {MAX_BUDGET_BYTES}, got {value}")
    return value


def _data_url(img: np.ndarray) -> str:
    """uint8 [H, W, 3] as a PNG data URL (lossless, so the page shows the exact pixels)."""
    return "data:image/png;base64," + base64.b64encode(encode_image(img, ".png")).decode("ascii")


def _result_json(item: CodedImage, download: str | None) -> dict[str, object]:
    return {
        "codec": item.codec, "label": item.label, "bytes": item.n_bytes, "bpp": item.bpp(),
        "setting": item.setting, "seconds": round(item.seconds, 3), "over_budget": item.over_budget,
        "metrics": item.metrics, "image": _data_url(item.recon), "download": download,
    }


class ServeState:
    """Models (loaded once), the metric suite, the classical codecs and the download store."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        self.suite = MetricSuite(cfg.metrics, fid=False, device=cfg.device)
        self.baselines = {name: get_baseline(name) for name in cfg.classical}
        self._codecs: dict[str, Codec] = {}
        self._files: OrderedDict[str, StoredFile] = OrderedDict()
        self._lock = threading.Lock()  # guards the caches
        self._work = threading.Lock()  # one comparison at a time (memory, CPU threads)
        self.default_model = self._load_default()

    def _load_default(self) -> str:
        """Load the default model now: a missing model fails at start, not on the first upload."""
        codec = Codec.load(self.cfg.model)
        self._codecs[codec.name] = codec
        return codec.name

    def model_names(self) -> list[str]:
        """The models a client may pick: the installed ones and the operator's default."""
        names = [m.name for m in list_models()]
        return names if self.default_model in names else [self.default_model, *names]

    def codec(self, name: str) -> Codec:
        """The loaded codec of an offered model name (:class:`ClientError` for any other string)."""
        with self._lock:
            if name in self._codecs:
                return self._codecs[name]
        if name not in self.model_names():
            raise ClientError(400, f"unknown model {name!r} (offered: {', '.join(self.model_names())})")
        codec = Codec.load(name)
        with self._lock:
            return self._codecs.setdefault(name, codec)

    def info(self) -> dict[str, object]:
        """What the page needs to build its form."""
        classical = []
        for name, baseline in self.baselines.items():
            av = baseline.availability()
            classical.append({"name": name, "available": av.ok, "reason": av.reason,
                              "description": baseline.description})
        return {"models": self.model_names(), "default_model": self.default_model,
                "classical": classical, "metrics": list(self.cfg.metrics),
                "max_upload_bytes": self.cfg.max_upload_bytes, "max_pixels": self.cfg.max_pixels}

    def parse(self, query: str, body: bytes) -> CompareRequest:
        """Check the query string (``model``, ``max_bytes``, ``classical``, ``name``)."""
        q = parse_qs(query, keep_blank_values=True)
        model = _first(q, "model") or self.default_model
        wanted = _first(q, "classical")
        classical = tuple(c for c in wanted.split(",") if c) if "classical" in q else tuple(self.baselines)
        unknown = [c for c in classical if c not in self.baselines]
        if unknown:
            raise ClientError(400, f"unknown classical codec(s) {unknown} (offered: {', '.join(self.baselines)})")
        return CompareRequest(body, model, _parse_budget(_first(q, "max_bytes")), classical, _first(q, "name"))

    def _image(self, body: bytes) -> np.ndarray:
        if not body:
            raise ClientError(400, "the upload is empty: choose an image file")
        try:
            return load_image(body, max_pixels=self.cfg.max_pixels)
        except ImageError as err:
            msg = str(err).replace("cannot read '<bytes>'", "cannot read the upload")
            status = 413 if "pixels" in msg and "limit" in msg else 400
            raise ClientError(status, msg) from None

    def run(self, req: CompareRequest) -> dict[str, object]:
        """Compare and return the page's JSON; the MRT file is kept for its download link."""
        img = self._image(req.body)
        codec = self.codec(req.model)
        try:
            with self._work:
                result = compare(img, codec, [self.baselines[c] for c in req.classical], self.suite, req.max_bytes)
        except ModelError:
            raise
        except NotEnoughMemoryError as err:
            raise ClientError(413, f"{err}: try a smaller image") from None
        except MRTError as err:  # e.g. the budget is below the smallest file the model makes
            raise ClientError(422, str(err)) from None
        file_id = self._store(StoredFile(result.mrt.data, download_name(req.name)))
        return self._payload(result, file_id, req)

    def _store(self, item: StoredFile) -> str:
        file_id = secrets.token_hex(8)
        with self._lock:
            self._files[file_id] = item
            while len(self._files) > self.cfg.keep_files:
                self._files.popitem(last=False)
        return file_id

    def stored(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(file_id)

    def _payload(self, result: Comparison, file_id: str, req: CompareRequest) -> dict[str, object]:
        h, w = result.original.shape[:2]
        download = f"/api/download/{file_id}"
        results = [_result_json(r, download if r.codec == "mrt" else None) for r in result.results]
        status = {k: v for k, v in self.suite.describe().items() if k in self.cfg.metrics}
        return {"id": file_id, "filename": download_name(req.name), "width": w, "height": h,
                "budget": result.budget, "model": req.model, "original": _data_url(result.original),
                "results": results, "notes": list(result.notes), "metrics": status}
