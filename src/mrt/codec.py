"""The codec API: image -> bytes -> image, with real entropy coding and a self-describing file.

    from mrt.codec import Codec
    codec = Codec.load()                  # the default shipped model (or a name / a .mrtm path)
    data = codec.compress(img)            # img: uint8 [H, W, 3]; the variant's k tokens per window
    data = codec.compress(img, max_bytes=600)  # the most tokens whose file fits (or BudgetError)
    data = codec.compress(img, bpp=0.01)  # the most tokens whose file is <= 0.01 bpp (else k = 1)
    out = codec.decompress(data)          # uint8 [H, W, 3], same size
    out = decompress(data)                # module level: finds the model named in the header
    codec = Codec.load(precision="fp32")  # the reference fp32 convolutions (default "auto": bf16
                                          # where the CPU has it natively; mrt.models.inference)
    codec.set_refine(RefineSettings())    # a slower encoder (30 steps) that searches the bits the
                                          # decoder renders best (mrt.refine); same file format

This module finds models (shipped files and ``MRT_MODEL_PATH``), checks images, chooses the
number of tokens per window (rate control) and wraps the RCM's payload in the container
(docs/bitstream.md). The symbols and their coding belong to the model: ``model.quantize`` /
``model.rcm.encode`` and ``model.rcm.decode`` / ``model.decode_bits``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from mrt.bitstream import MAX_SIDE, Container, code_for_factor, file_size, header_problems, pack
from mrt.bitstream import symbols_digest, unpack, verify
from mrt.bitstream.budget import budget_bytes, check_rate_options
from mrt.errors import BitstreamError, ModelError, memory_errors, unknown_model_error
from mrt.io.images import DEFAULT_MAX_PIXELS, check_rgb_image
from mrt.io.resample import resize_rgb
from mrt.models.codec_model import MRTCodecModel
from mrt.catalog import DEFAULT_FAMILY, MODEL_PATH_ENV, WEIGHTS_DIR, ModelInfo, infos, installed, list_models, resolve
from mrt.models.inference import ConvPlan, CpuFeatures, InferenceSettings, Precision
from mrt.models.inference import resolve as resolve_plan
from mrt.models.modelfile import ModelFileInfo, Variant, load_model_file
from mrt.models.threads import one_thread
from mrt.refine import RefineResult, RefineSettings, TokenRefiner
from mrt.scaling import choose_scale_code, coded_image, fit_budget

__all__ = [
    "DEFAULT_FAMILY",
    "MODEL_PATH_ENV",
    "WEIGHTS_DIR",
    "Codec",
    "EncodeReport",
    "ModelInfo",
    "RefineSettings",
    "compress",
    "decompress",
    "list_models",
    "open_for",
]

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
    scale_code: int = 0  # the coded copy's downscaling (mrt.bitstream.SCALE_FACTORS); 0: the image itself
    refined: RefineResult | None = None  # the token search, when the codec refines (mrt.refine)

    @property
    def version(self) -> int:
        """File format version of ``data`` (the oldest that can express the file: 1, 2 or 3)."""
        return self.data[2] >> 4

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.height * self.width)

    @property
    def estimated_bpp(self) -> float:
        return self.estimated_bits / (self.height * self.width)


def _check_image(img: np.ndarray) -> np.ndarray:
    return check_rgb_image(img, MAX_SIDE)


class Codec:
    """A loaded model (one rate variant) that compresses and decompresses images."""

    def __init__(
        self, model: MRTCodecModel, info: ModelFileInfo, variant: Variant, precision: Precision = "auto"
    ) -> None:
        self.model = model.eval()
        self.info = info
        self.variant = variant
        self._refiner: TokenRefiner | None = None
        self.set_inference(InferenceSettings(precision))

    @classmethod
    def load(cls, name_or_path: str | None = None, *, precision: Precision = "auto") -> "Codec":
        """A shipped model by name (``mrt models``), a ``.mrtm`` path (``path#variant`` picks a rate), or the default.

        ``precision`` of the analysis and RGB-decoder convolutions: ``auto``, ``bf16`` or ``fp32``
        (``mrt.models.inference``); the entropy model's path is fp32 whatever it is.
        """
        path, variant = resolve(name_or_path)
        return _load(str(path), variant, precision)

    def set_inference(self, settings: InferenceSettings, cpu: CpuFeatures | None = None) -> ConvPlan:
        """Run the analysis and RGB decoder as ``settings`` say on ``cpu`` (default: this CPU's features).

        Sets ``self.model.conv_plan`` (the model is this codec's) and returns it.
        """
        plan = resolve_plan(settings, cpu)
        self.model.conv_plan = plan
        return plan

    def set_refine(self, settings: RefineSettings | None) -> None:
        """Refine every later encode with ``settings`` (``mrt.refine``); None or 0 steps: the plain encoder.

        ``ModelError`` for a model without 1-D tokens to search (the 2-D latent codec)."""
        if settings is not None and settings.steps and not isinstance(self.model, MRTCodecModel):
            raise ModelError(f"the token search needs an MRT model; {self.name} is a {type(self.model).__name__}")
        self._refiner = None if settings is None or settings.steps == 0 else TokenRefiner(settings)

    @property
    def refine(self) -> RefineSettings | None:
        """The token search every encode runs, or None (the plain encoder)."""
        return None if self._refiner is None else self._refiner.settings

    @property
    def setting(self) -> str:
        """Name of this codec setting in results: the variant's name, plus the refinement's label."""
        return self.name if self._refiner is None else f"{self.name}+{self._refiner.settings.label}"

    @property
    def conv_plan(self) -> ConvPlan:
        """How the analysis and RGB decoder run (dtype, memory format)."""
        return self.model.conv_plan

    @classmethod
    def from_model(cls, model: MRTCodecModel, name: str = "in-memory", *, precision: Precision = "auto") -> "Codec":
        """Wrap an untrained/in-memory model (tests, experiments); its id hashes its current weights.

        The codec sets the model's inference plan (``precision``), which its training forward ignores.
        """
        from mrt.models.modelfile import variant_id, weights_hash

        sha = weights_hash(model.state_dict())
        cfg = model.cfg
        variant = Variant(name, model.k_code, variant_id(cfg, model.k_code, sha))
        info = ModelFileInfo(Path(name), cfg, sha, (variant,), name, "in-memory model", "", "{}", 0,
                             sum(p.numel() for p in model.parameters()))
        return cls(model, info, variant, precision)

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
        self,
        img: np.ndarray,
        *,
        k: int | None = None,
        max_bytes: int | None = None,
        bpp: float | None = None,
        scale: float | None = None,
    ) -> EncodeReport:
        """Compress an image and report the model's rate estimate beside the real size.

        At most one of: ``k`` tokens per window (default: the variant's), ``max_bytes`` (the most
        tokens whose file fits; ``BudgetError`` if even one token per window does not) or ``bpp``
        (the most tokens whose file is at most ``bpp`` bits per pixel, else one token per window).
        ``scale``: code a copy downscaled by this factor (>= 1; the nearest of
        ``mrt.bitstream.SCALE_FACTORS``); None: chosen from the image (``mrt.scaling``), 1: never.
        """
        img = _check_image(img)
        check_rate_options(k, max_bytes, bpp, self.max_tokens)
        codes = None if scale is None else [code_for_factor(scale)]
        with memory_errors(f"compress a {img.shape[1]}x{img.shape[0]} image"):
            if max_bytes is None and bpp is None:
                code = choose_scale_code(img) if codes is None else codes[0]
                k = self.model.k_code if k is None else k
                if self._refiner is not None:
                    return self._refined(img, k, code)
                return self._encode_k(img, self.model.encode_bits(coded_image(img, code), k)[0], k, code)
            budget = budget_bytes(img.shape[0], img.shape[1], max_bytes, bpp)
            report = fit_budget(self, img, budget, strict=max_bytes is not None, codes=codes)
            if self._refiner is None:
                return report
            # the plain encoder chose k and the scale; the search keeps a file no larger than
            # the budget (or than the plain file, when even that is over a --bpp budget)
            limit = max(budget, len(report.data))
            refined = self._refined(img, report.k, report.scale_code, limit)
            return replace(refined, estimated_ks=report.estimated_ks, encoded_ks=report.encoded_ks)

    def _refined(self, img: np.ndarray, k: int, scale_code: int, limit: int | None = None) -> EncodeReport:
        """Encode ``img`` at ``k`` tokens and ``scale_code`` with the token search (a file of at most ``limit`` bytes)."""
        assert self._refiner is not None
        coded = coded_image(img, scale_code)
        h, w = coded.shape[:2]

        made: list[tuple[torch.Tensor, EncodeReport]] = []  # the last file ``fits`` coded

        def fits(bits: torch.Tensor) -> bool:
            made[:] = [(bits, self._encode_k(img, bits, k, scale_code))]
            return len(made[0][1].data) <= limit  # type: ignore[operator]

        result = self._refiner.refine(self.model, self.model.image_to_tensor(coded), h, w, k,
                                      None if limit is None else fits)
        # the accepted candidate was coded by ``fits`` already: no second range coding
        report = made[0][1] if made and made[0][0] is result.bits else self._encode_k(img, result.bits, k, scale_code)
        return replace(report, refined=result)

    def compress(
        self,
        img: np.ndarray,
        *,
        k: int | None = None,
        max_bytes: int | None = None,
        bpp: float | None = None,
        scale: float | None = None,
    ) -> bytes:
        """uint8 [H, W, 3] -> file bytes (header + arithmetic-coded payload); options as :meth:`encode`."""
        return self.encode(img, k=k, max_bytes=max_bytes, bpp=bpp, scale=scale).data

    def estimate_bpp(self, img: np.ndarray) -> float:
        return self.encode(img).estimated_bpp

    def file_size(self, payload_bytes: int, height: int, width: int, k: int, scale_code: int = 0) -> int:
        """Size of the file that :meth:`_encode_k` writes for a payload of ``payload_bytes``."""
        return file_size(payload_bytes, height, width, k, scale_code)

    def _encode_k(self, img: np.ndarray, bits: torch.Tensor, k: int, scale_code: int = 0) -> EncodeReport:
        """Entropy-code ``bits`` [nW, k, d] (of ``img`` at ``scale_code``) and wrap them in the container.

        Always version 4: the payload is coded with the portable tables (``mrt.entropy.portable``),
        so the file decodes to the same symbols on every machine. (Versions 1-3, written before,
        used float32 tables that another CPU may not reproduce; they are still read.)
        """
        coded = self.model.rcm.encode(bits, portable=True)
        h, w = img.shape[:2]
        data = pack(self.file_id, h, w, coded.payload, symbols_digest(coded.symbols), k=k, scale_code=scale_code,
                    portable=True)
        return EncodeReport(
            data, h, w, coded.estimated_bits, coded.table_bits, int(coded.symbols.size), k, scale_code=scale_code
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
        """File bytes -> ({0,1} token bits [1, nW, k, d], coded height, coded width), checked against the checksum.

        The coded size is the image's own unless the file is scaled (version 3).

        Refuses (``BitstreamError``) a body under the floor for its header and the model's k
        before any network call, and images over ``max_pixels`` (None: no limit).
        """
        container = unpack(data, max_pixels)
        return self._decode_container(container)[None], *container.coded_size

    def _decode_container(self, container: Container) -> torch.Tensor:
        """{0,1} token bits [nW, k, d] of an unpacked file, checked against its checksum."""
        k = self._k_of(container)
        problems = header_problems(container, k=k)
        if problems:
            raise BitstreamError(problems[0])
        geo = self.model.geometry(*container.coded_size)
        bits, symbols = self.model.rcm.decode(container.payload, geo.n_windows, k, portable=container.portable)
        verify(container, symbols_digest(symbols))
        return bits

    def decompress(self, data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """File bytes -> uint8 [H, W, 3]; raises ``BitstreamError`` on any corruption (see :meth:`decode_symbols`)."""
        c = unpack(data, max_pixels)
        with memory_errors(f"decode a {c.width}x{c.height} image"):
            out = self.model.decode_bits(self._decode_container(c)[None], *c.coded_size)
            return resize_rgb(out, c.height, c.width)

    def reconstruct(self, img: np.ndarray, scale: float | None = None) -> np.ndarray:
        """The eval-mode forward (no entropy coding): equals ``decompress(compress(img, scale=scale))`` exactly."""
        img = _check_image(img)
        code = choose_scale_code(img) if scale is None else code_for_factor(scale)
        return resize_rgb(self.model.reconstruct(coded_image(img, code)), img.shape[0], img.shape[1])


def open_for(data: bytes, precision: Precision = "auto") -> Codec:
    """The installed model that made ``data`` (by the model id in its header), loaded once per precision."""
    c = unpack(data)
    for info in infos():
        if c.version >= 2 and info.file_id == c.model_id:
            return _load_cached(str(info.path), info.default_variant, precision)
        for v in info.variants:
            if c.version == 1 and v.model_id == c.model_id:
                return _load_cached(str(info.path), v.name, precision)
    raise unknown_model_error(c.model_id, installed(c.version), f"add model files with {MODEL_PATH_ENV}")


def _load(path: str, variant: str | None, precision: Precision) -> Codec:
    """Build a model file's codec. On one thread: building and loading the network is many small
    operations, which two threads slow down (8-12 s instead of 0.7-1 s for mrt-s when the other
    core is busy: docs/benchmarks.md)."""
    settings = InferenceSettings(precision)  # a bad precision fails before the file is read
    with one_thread():
        model, info, chosen = load_model_file(path, variant)
    codec = Codec(model, info, chosen, "fp32")
    codec.set_inference(settings)
    return codec


@lru_cache(maxsize=4)
def _load_cached(path: str, variant: str, precision: Precision = "auto") -> Codec:
    return _load(path, variant, precision)


def compress(
    img: np.ndarray,
    model: str | None = None,
    *,
    max_bytes: int | None = None,
    bpp: float | None = None,
    scale: float | None = None,
    precision: Precision = "auto",
    refine: RefineSettings | None = None,
) -> bytes:
    """Module-level convenience: compress with a named (or the default) model (``refine``: the token search)."""
    codec = Codec.load(model, precision=precision)
    codec.set_refine(refine)
    return codec.compress(img, max_bytes=max_bytes, bpp=bpp, scale=scale)


def decompress(
    data: bytes, max_pixels: int | None = DEFAULT_MAX_PIXELS, *, precision: Precision = "auto"
) -> np.ndarray:
    """Module-level convenience: decompress with the model named in the file header.

    The header is checked (floor, ``max_pixels``) before any model is loaded. ``precision``: as
    :meth:`Codec.load` (``fp32`` gives the reference pixels on any CPU).
    """
    unpack(data, max_pixels)
    return open_for(data, precision).decompress(data, max_pixels)
