"""The codec API: image -> bytes -> image, with real entropy coding and a self-describing file.

    from mrt.codec import Codec
    codec = Codec.load()                  # the default shipped model (or a name / a .mrtm path)
    data = codec.compress(img)            # img: uint8 [H, W, 3]
    out = codec.decompress(data)          # uint8 [H, W, 3], same size
    out = decompress(data)                # module level: finds the model named in the header

This module finds models (shipped files and ``MRT_MODEL_PATH``), checks images, and wraps the
RCM's payload in the container (docs/bitstream.md). The symbols and their coding belong to the
model: ``model.encode_bits`` / ``model.rcm.encode`` and ``model.rcm.decode`` / ``model.decode_bits``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from mrt.bitstream import MAX_SIDE, pack, symbols_digest, unpack, verify
from mrt.errors import ModelError
from mrt.io.images import check_rgb_image
from mrt.models.codec_model import MRTCodecModel
from mrt.models.modelfile import SUFFIX, ModelFileInfo, Variant, load_model_file, read_model_info

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_FAMILY = "mrt-s"  # file stem of the default shipped model family
MODEL_PATH_ENV = "MRT_MODEL_PATH"  # extra folders/files with model files, os.pathsep-separated


@dataclass(frozen=True)
class ModelInfo:
    """One selectable model (a rate variant of a model file), as listed by ``mrt models``."""

    name: str
    model_id: int
    description: str
    n_tokens: int
    bits: int
    window: int
    params: int
    file_size: int
    path: str
    default: bool


@dataclass(frozen=True)
class EncodeReport:
    """``Codec.encode`` result: the file bytes and the model's own estimate of their size."""

    data: bytes
    height: int
    width: int
    estimated_bits: float  # sum of -log2 p(symbol) under the float model probabilities
    table_bits: float  # the same under the quantised integer tables (what the coder pays)
    n_symbols: int

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.height * self.width)

    @property
    def estimated_bpp(self) -> float:
        return self.estimated_bits / (self.height * self.width)


def _search_path() -> list[Path]:
    paths = [WEIGHTS_DIR]
    extra = os.environ.get(MODEL_PATH_ENV, "")
    paths.extend(Path(p) for p in extra.split(os.pathsep) if p)
    return paths


def _model_files() -> list[Path]:
    files: list[Path] = []
    for p in _search_path():
        if p.is_file() and p.suffix == SUFFIX:
            files.append(p)
        elif p.is_dir():
            files.extend(sorted(p.glob(f"*{SUFFIX}")))
    return files


@lru_cache(maxsize=64)
def _info_cached(path: str, mtime: float) -> ModelFileInfo:
    return read_model_info(path)


def _infos() -> list[ModelFileInfo]:
    return [_info_cached(str(p), p.stat().st_mtime) for p in _model_files()]


def _default_info() -> ModelFileInfo | None:
    """The model file used when none is named: ``DEFAULT_FAMILY`` if installed, else the first found."""
    infos = _infos()
    for info in infos:
        if info.path.stem == DEFAULT_FAMILY:
            return info
    return infos[0] if infos else None


def list_models() -> list[ModelInfo]:
    """Every rate variant of every model file on the search path (shipped ones first)."""
    out = []
    default = _default_info()
    for info in _infos():
        for v in info.variants:
            out.append(
                ModelInfo(
                    name=v.name,
                    model_id=v.model_id,
                    description=info.description,
                    n_tokens=v.k_code,
                    bits=info.config.token_bits,
                    window=info.config.window,
                    params=info.n_params,
                    file_size=info.file_size,
                    path=str(info.path),
                    default=info is default and v.name == info.default_variant,
                )
            )
    return out


def _resolve(name_or_path: str | None) -> tuple[Path, str | None]:
    """(model file, variant name or None for the file's default) of a model name or path."""
    if name_or_path is None:
        info = _default_info()
        if info is None:
            raise ModelError(
                "no trained model is installed (the package ships none yet); pass a model file with --model PATH"
            )
        return info.path, None
    path_part, _, variant = name_or_path.partition("#")
    candidate = Path(path_part)
    if candidate.suffix == SUFFIX or candidate.is_file():
        if not candidate.is_file():
            raise ModelError(f"model file not found: {candidate}")
        return candidate, variant or None
    for info in _infos():
        for v in info.variants:
            if v.name == name_or_path:
                return info.path, v.name
        if info.path.stem == name_or_path:
            return info.path, None
    known = ", ".join(m.name for m in list_models()) or "none installed"
    raise ModelError(f"unknown model {name_or_path!r} (known: {known})")


def _check_image(img: np.ndarray) -> np.ndarray:
    return check_rgb_image(img, MAX_SIDE)


class Codec:
    """A loaded model (one rate variant) that compresses and decompresses images."""

    def __init__(self, model: MRTCodecModel, info: ModelFileInfo, variant: Variant) -> None:
        self.model = model.eval()
        self.info = info
        self.variant = variant

    @classmethod
    def load(cls, name_or_path: str | None = None) -> "Codec":
        """A shipped model by name (``mrt models``), a ``.mrtm`` path (``path#variant`` picks a rate), or the default."""
        path, variant = _resolve(name_or_path)
        model, info, chosen = load_model_file(path, variant)
        return cls(model, info, chosen)

    @classmethod
    def from_model(cls, model: MRTCodecModel, name: str = "in-memory") -> "Codec":
        """Wrap an untrained/in-memory model (tests, experiments); its id hashes its current weights."""
        from mrt.models.modelfile import variant_id, weights_hash

        sha = weights_hash(model.state_dict())
        cfg = model.cfg
        variant = Variant(name, model.k_code, variant_id(cfg, model.k_code, sha))
        info = ModelFileInfo(Path(name), cfg, sha, (variant,), name, "in-memory model", "", "{}", 0,
                             sum(p.numel() for p in model.parameters()))
        return cls(model, info, variant)

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def model_id(self) -> int:
        return self.variant.model_id

    # ----- encoding -----
    def encode(self, img: np.ndarray) -> EncodeReport:
        """Compress an image and report the model's rate estimate beside the real size."""
        img = _check_image(img)
        bits = self.model.encode_bits(img)[0]  # [nW, K, d] in {0, 1}
        coded = self.model.rcm.encode(bits)
        h, w = img.shape[:2]
        data = pack(self.model_id, h, w, coded.payload, symbols_digest(coded.symbols))
        return EncodeReport(data, h, w, coded.estimated_bits, coded.table_bits, int(coded.symbols.size))

    def compress(self, img: np.ndarray) -> bytes:
        """uint8 [H, W, 3] -> file bytes (header + arithmetic-coded payload)."""
        return self.encode(img).data

    def estimate_bpp(self, img: np.ndarray) -> float:
        return self.encode(img).estimated_bpp

    # ----- decoding -----
    def decode_symbols(self, data: bytes) -> tuple[torch.Tensor, int, int]:
        """File bytes -> ({0,1} token bits [1, nW, K, d], height, width), checked against the checksum."""
        container = unpack(data)
        if container.model_id != self.model_id:
            raise ModelError(
                f"file was made by model {container.model_id:06x}, not by {self.name} ({self.model_id:06x})"
            )
        geo = self.model.geometry(container.height, container.width)
        bits, symbols = self.model.rcm.decode(container.payload, geo.n_windows, self.model.k_code)
        verify(container, symbols_digest(symbols))
        return bits[None], container.height, container.width

    def decompress(self, data: bytes) -> np.ndarray:
        """File bytes -> uint8 [H, W, 3]; raises ``BitstreamError`` on any corruption."""
        bits, h, w = self.decode_symbols(data)
        return self.model.decode_bits(bits, h, w)

    def reconstruct(self, img: np.ndarray) -> np.ndarray:
        """The eval-mode forward (no entropy coding): equals ``decompress(compress(img))`` exactly."""
        return self.model.reconstruct(_check_image(img))


def open_for(data: bytes) -> Codec:
    """The installed model that made ``data`` (by the model id in its header)."""
    container = unpack(data)
    for info in _infos():
        for v in info.variants:
            if v.model_id == container.model_id:
                return _load_cached(str(info.path), v.name)
    raise ModelError(
        f"file needs model {container.model_id:06x}, which is not installed "
        f"(installed: {', '.join(f'{m.name}={m.model_id:06x}' for m in list_models()) or 'none'}; "
        f"add model files with {MODEL_PATH_ENV})"
    )


@lru_cache(maxsize=4)
def _load_cached(path: str, variant: str) -> Codec:
    model, info, chosen = load_model_file(path, variant)
    return Codec(model, info, chosen)


def compress(img: np.ndarray, model: str | None = None) -> bytes:
    """Module-level convenience: compress with a named (or the default) model."""
    return Codec.load(model).compress(img)


def decompress(data: bytes) -> np.ndarray:
    """Module-level convenience: decompress with the model named in the file header."""
    return open_for(data).decompress(data)
