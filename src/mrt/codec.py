"""The codec API: image -> bytes -> image, with real entropy coding and a self-describing file.

    from mrt.codec import Codec
    codec = Codec.load()                  # the default shipped model (or a name / a .mrtm path)
    data = codec.compress(img)            # img: uint8 [H, W, 3]; the variant's k tokens per window
    data = codec.compress(img, max_bytes=600)  # the most tokens whose file fits (or BudgetError)
    data = codec.compress(img, bpp=0.01)  # the most tokens whose file is <= 0.01 bpp (else k = 1)
    out = codec.decompress(data)          # uint8 [H, W, 3], same size
    out = decompress(data)                # module level: finds the model named in the header

This module finds models (shipped files and ``MRT_MODEL_PATH``), checks images, chooses the
number of tokens per window (rate control) and wraps the RCM's payload in the container
(docs/bitstream.md). The symbols and their coding belong to the model: ``model.quantize`` /
``model.rcm.encode`` and ``model.rcm.decode`` / ``model.decode_bits``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from mrt.bitstream import HEADER_SIZES, MAX_SIDE, Container, file_size, header_problems, min_body_bytes, pack
from mrt.bitstream import symbols_digest, unpack, verify
from mrt.bitstream.budget import budget_bytes, check_rate_options, largest_candidate
from mrt.errors import BitstreamError, BudgetError, ModelError, memory_errors, unknown_model_error
from mrt.io.images import DEFAULT_MAX_PIXELS, check_rgb_image
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
    file_id: int  # id of the model file (version-2 files name it, with their tokens per window)


@dataclass(frozen=True)
class EncodeReport:
    """``Codec.encode`` result: the file bytes and the model's own estimate of their size."""

    data: bytes
    height: int
    width: int
    estimated_bits: float  # sum of -log2 p(symbol) under the float model probabilities
    table_bits: float  # the same under the quantised integer tables (what the coder pays)
    n_symbols: int
    k: int = 0  # tokens per window coded
    estimated_ks: tuple[int, ...] = ()  # rate control: numbers of tokens whose size was estimated
    encoded_ks: tuple[int, ...] = ()  # rate control: ... and those encoded for real, in order

    @property
    def version(self) -> int:
        """File format version of ``data`` (1 where the file fits it, else 2)."""
        return self.data[2] >> 4

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
                    file_id=info.file_id,
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
        """Id of this rate variant (written in version-1 files)."""
        return self.variant.model_id

    @property
    def file_id(self) -> int:
        """Id of the model file (written in version-2 files, beside the number of tokens)."""
        return self.info.file_id

    @property
    def max_tokens(self) -> int:
        """K: the most tokens per window this model can code."""
        return self.model.cfg.n_tokens

    # ----- encoding -----
    def encode(
        self, img: np.ndarray, *, k: int | None = None, max_bytes: int | None = None, bpp: float | None = None
    ) -> EncodeReport:
        """Compress an image and report the model's rate estimate beside the real size.

        At most one of: ``k`` tokens per window (default: the variant's), ``max_bytes`` (the most
        tokens whose file fits; ``BudgetError`` if even one token per window does not) or ``bpp``
        (the most tokens whose file is at most ``bpp`` bits per pixel, else one token per window).
        """
        img = _check_image(img)
        check_rate_options(k, max_bytes, bpp, self.max_tokens)
        with memory_errors(f"compress a {img.shape[1]}x{img.shape[0]} image"):
            if max_bytes is None and bpp is None:
                k = self.model.k_code if k is None else k
                return self._encode_k(img, self.model.encode_bits(img, k)[0], k)
            budget = budget_bytes(img.shape[0], img.shape[1], max_bytes, bpp)
            return self._fit(img, budget, strict=max_bytes is not None)

    def compress(
        self, img: np.ndarray, *, k: int | None = None, max_bytes: int | None = None, bpp: float | None = None
    ) -> bytes:
        """uint8 [H, W, 3] -> file bytes (header + arithmetic-coded payload); options as :meth:`encode`."""
        return self.encode(img, k=k, max_bytes=max_bytes, bpp=bpp).data

    def estimate_bpp(self, img: np.ndarray) -> float:
        return self.encode(img).estimated_bpp

    def _v1_variant(self, payload_bytes: int, height: int, width: int, k: int) -> Variant | None:
        """The rate variant a version-1 file (one byte shorter) names, or None: write version 2."""
        if payload_bytes < min_body_bytes(height, width, k):
            return None  # only version 2 can pad
        return next((v for v in (self.variant, *self.info.variants) if v.k_code == k), None)

    def _size(self, payload_bytes: int, height: int, width: int, k: int) -> int:
        """Size of the file that :meth:`_encode_k` writes for a payload of ``payload_bytes``."""
        v1 = self._v1_variant(payload_bytes, height, width, k) is not None
        return file_size(payload_bytes, height, width, None if v1 else k)

    def _encode_k(self, img: np.ndarray, bits: torch.Tensor, k: int) -> EncodeReport:
        """Entropy-code ``bits`` [nW, k, d] and wrap them in the container."""
        coded = self.model.rcm.encode(bits)
        h, w = img.shape[:2]
        digest = symbols_digest(coded.symbols)
        variant = self._v1_variant(len(coded.payload), h, w, k)
        if variant is not None:
            data = pack(variant.model_id, h, w, coded.payload, digest)
        else:
            data = pack(self.file_id, h, w, coded.payload, digest, k=k)
        return EncodeReport(data, h, w, coded.estimated_bits, coded.table_bits, int(coded.symbols.size), k)

    def _fit(self, img: np.ndarray, budget: int, strict: bool) -> EncodeReport:
        """Rate control: the most tokens per window whose file is at most ``budget`` bytes.

        One encoder pass gives all K tokens (the k-token file codes the first k). The RCM's
        batched rate estimates a file's size; a secant search over k finds the largest k whose
        estimate is within the estimate's tolerance of the budget, then real encodes go down
        from there until one fits (usually the first or second).
        """
        height, width = img.shape[:2]
        bits = self.model.encode_bits(img, self.max_tokens)[0]  # [nW, K, d]
        pm1 = bits[None].float() * 2.0 - 1.0
        sizes: dict[int, int] = {}

        def estimate(k: int) -> int:
            if k not in sizes:
                with torch.inference_mode():
                    rate = float(self.model.rcm.rate_bits(pm1[:, :, :k])[0])
                sizes[k] = self._size(math.ceil(rate / 8), height, width, k)
            return sizes[k]

        top = largest_candidate(estimate, self.max_tokens, budget, base=HEADER_SIZES[2])
        encoded: list[int] = []
        for k in range(max(top, 1), 0, -1):
            report = self._encode_k(img, bits[:, :k].contiguous(), k)
            encoded.append(k)
            if len(report.data) <= budget or (k == 1 and not strict):
                return replace(report, estimated_ks=tuple(sizes), encoded_ks=tuple(encoded))
        raise BudgetError(
            f"cannot fit the {width}x{height} image in {budget} bytes: the smallest file "
            f"(1 token per window) is {len(report.data)} bytes"
        )

    # ----- decoding -----
    def _k_of(self, c: Container) -> int:
        """Tokens per window of a file made with this model file (``ModelError`` for another model)."""
        if c.version == 1:
            variant = next((v for v in self.info.variants if v.model_id == c.model_id), None)
            if variant is None:
                raise ModelError(
                    f"file was made by model {c.model_id:06x}, not by {self.name} ({self.model_id:06x})"
                )
            return variant.k_code
        if c.model_id != self.file_id:
            raise ModelError(
                f"file was made by model {c.model_id:06x}, not by {self.name}'s model file ({self.file_id:06x})"
            )
        k = int(c.k or 0)
        if k > self.max_tokens:
            raise BitstreamError(f"corrupt file ({k} tokens per window; the model has {self.max_tokens})")
        return k

    def decode_symbols(self, data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[torch.Tensor, int, int]:
        """File bytes -> ({0,1} token bits [1, nW, k, d], height, width), checked against the checksum.

        Refuses (``BitstreamError``) a body under the floor for its header and the model's k
        before any network call, and images over ``max_pixels`` (None: no limit).
        """
        container = unpack(data, max_pixels)
        return self._decode_container(container)[None], container.height, container.width

    def _decode_container(self, container: Container) -> torch.Tensor:
        """{0,1} token bits [nW, k, d] of an unpacked file, checked against its checksum."""
        k = self._k_of(container)
        problems = header_problems(container, k=k)
        if problems:
            raise BitstreamError(problems[0])
        geo = self.model.geometry(container.height, container.width)
        bits, symbols = self.model.rcm.decode(container.payload, geo.n_windows, k)
        verify(container, symbols_digest(symbols))
        return bits

    def decompress(self, data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """File bytes -> uint8 [H, W, 3]; raises ``BitstreamError`` on any corruption (see :meth:`decode_symbols`)."""
        c = unpack(data, max_pixels)
        with memory_errors(f"decode a {c.width}x{c.height} image"):
            return self.model.decode_bits(self._decode_container(c)[None], c.height, c.width)

    def reconstruct(self, img: np.ndarray) -> np.ndarray:
        """The eval-mode forward (no entropy coding): equals ``decompress(compress(img))`` exactly."""
        return self.model.reconstruct(_check_image(img))


def _installed(version: int) -> list[tuple[str, int]]:
    """(name, id) of the installed models, as a file of ``version`` names them."""
    if version == 1:
        return [(m.name, m.model_id) for m in list_models()]
    return [(i.path.stem, i.file_id) for i in _infos()]


def open_for(data: bytes) -> Codec:
    """The installed model that made ``data`` (by the model id in its header)."""
    c = unpack(data)
    for info in _infos():
        if c.version >= 2 and info.file_id == c.model_id:
            return _load_cached(str(info.path), info.default_variant)
        for v in info.variants:
            if c.version == 1 and v.model_id == c.model_id:
                return _load_cached(str(info.path), v.name)
    raise unknown_model_error(c.model_id, _installed(c.version), f"add model files with {MODEL_PATH_ENV}")


@lru_cache(maxsize=4)
def _load_cached(path: str, variant: str) -> Codec:
    model, info, chosen = load_model_file(path, variant)
    return Codec(model, info, chosen)


def compress(
    img: np.ndarray, model: str | None = None, *, max_bytes: int | None = None, bpp: float | None = None
) -> bytes:
    """Module-level convenience: compress with a named (or the default) model."""
    return Codec.load(model).compress(img, max_bytes=max_bytes, bpp=bpp)


def decompress(data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Module-level convenience: decompress with the model named in the file header.

    The header is checked (floor, ``max_pixels``) before any model is loaded.
    """
    unpack(data, max_pixels)
    return open_for(data).decompress(data, max_pixels)
