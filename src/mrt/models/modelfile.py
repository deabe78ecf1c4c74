"""Self-describing model files (``.mrtm``): config + weights + hash + rate variants.

A model file is a safetensors file whose metadata holds
  * ``format`` = "mrt-model", ``format_version`` = "1";
  * ``config``: canonical JSON of the ``MRTConfig``;
  * ``weights_sha256``: sha256 over the tensors (sorted names, dtype, shape, bytes); checked on load;
  * ``variants``: JSON list of ``{"name", "k_code", "model_id"}``: the rate points. One set of
    weights serves several rates (nested tokens), so a family ships as one file;
  * ``default_variant``, ``description``, ``license``, ``provenance`` (free text, JSON).
The 24-bit model id of a variant (written in version-1 file headers) is derived from the
canonical config, the number of coded tokens and the weights hash (``mrt.models.config.model_id``).
The id of the file itself (``file_id``: config and weights hash, no number of tokens; written in
version-2 headers, which state the number of tokens beside it) serves every rate 1..K.
The config's ``kind`` says which network the file holds (:func:`build_codec_model`): MRT, or the
2-D latent codec (``mrt.models.latent2d``), whose "tokens" are channel groups.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from mrt.errors import ModelError
from mrt.io import atomic_write_bytes
from mrt.models.codec_model import ImageCodecModel, MRTCodecModel
from mrt.models.config import MRTConfig, canonical_json, model_id
from mrt.models.latent2d import Latent2DCodecModel

FORMAT = "mrt-model"
FORMAT_VERSION = "1"
SUFFIX = ".mrtm"


@dataclass(frozen=True)
class Variant:
    """One rate point of a model file."""

    name: str
    k_code: int
    model_id: int


@dataclass(frozen=True)
class ModelFileInfo:
    """A model file's metadata (read without building the network)."""

    path: Path
    config: MRTConfig
    weights_sha256: str
    variants: tuple[Variant, ...]
    default_variant: str
    description: str
    license: str
    provenance: str
    file_size: int
    n_params: int

    @property
    def file_id(self) -> int:
        """24-bit id of the model file's config and weights (any number of tokens; version-2 files)."""
        return file_id(self.config, self.weights_sha256)

    def variant(self, name: str | None) -> Variant:
        wanted = self.default_variant if name is None else name
        for v in self.variants:
            if v.name == wanted:
                return v
        known = ", ".join(v.name for v in self.variants)
        raise ModelError(f"model file {self.path} has no variant {wanted!r} (has: {known})")


def build_codec_model(cfg: MRTConfig, k_code: int | None = None) -> ImageCodecModel:
    """The codec network a config describes (``cfg.kind``), coding ``k_code`` tokens per window by default."""
    if cfg.kind == "latent2d":
        return Latent2DCodecModel(cfg, k_code=k_code)
    return MRTCodecModel(cfg, k_code=k_code)


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over sorted (name, dtype, shape, raw bytes) of a state dict."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def variant_id(cfg: MRTConfig, k_code: int, sha: str) -> int:
    """Id of one rate variant (version-1 files): config, number of tokens and weights hash."""
    return model_id(cfg, f"k={k_code}|{sha}")


def file_id(cfg: MRTConfig, sha: str) -> int:
    """Id of a model file (version-2 files, which state the number of tokens separately)."""
    return model_id(cfg, sha)


def save_model_file(
    model: ImageCodecModel,
    path: str | Path,
    variants: dict[str, int],
    default_variant: str,
    description: str = "",
    license_text: str = "",
    provenance: dict[str, object] | None = None,
    dtype: torch.dtype = torch.float16,
) -> ModelFileInfo:
    """Write ``model``'s weights (cast to ``dtype``) and metadata atomically; returns the file's info."""
    if default_variant not in variants:
        raise ModelError(f"default variant {default_variant!r} is not one of {sorted(variants)}")
    state = {k: v.detach().to(dtype) if v.is_floating_point() else v.detach() for k, v in model.state_dict().items()}
    sha = weights_hash(state)
    cfg = model.cfg
    var_list = [
        {"name": name, "k_code": int(k), "model_id": variant_id(cfg, int(k), sha)} for name, k in sorted(variants.items())
    ]
    ids = [v["model_id"] for v in var_list] + [file_id(cfg, sha)]
    if len(set(ids)) != len(ids):
        raise ModelError("two variants (or a variant and the file) got the same model id; change a variant")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": canonical_json(cfg.to_dict()),
        "weights_sha256": sha,
        "variants": json.dumps(var_list, sort_keys=True),
        "default_variant": default_variant,
        "description": description,
        "license": license_text,
        "provenance": json.dumps(provenance or {}, sort_keys=True),
    }
    path = Path(path)
    atomic_write_bytes(path, st_save(state, metadata=metadata), force=True)
    return read_model_info(path)


def _read_metadata(path: Path) -> tuple[dict[str, str], int]:
    """The safetensors metadata of a file, without loading its tensors."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or n > 100_000_000:
                raise ModelError(f"{path} is not an MRT model file")
            header = json.loads(f.read(n))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ModelError(f"cannot read model file {path}: {err}") from None
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path} is not an MRT model file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: model file version {meta.get('format_version')} is not supported")
    n_params = 0
    for name, spec in header.items():
        if name != "__metadata__":
            count = 1
            for s in spec["shape"]:
                count *= s
            n_params += count
    return meta, n_params


def read_model_info(path: str | Path) -> ModelFileInfo:
    """Metadata of a model file (cheap: reads the header only)."""
    path = Path(path)
    meta, n_params = _read_metadata(path)
    try:
        cfg = MRTConfig.from_dict(json.loads(meta["config"]))
        variants = tuple(Variant(v["name"], int(v["k_code"]), int(v["model_id"])) for v in json.loads(meta["variants"]))
    except (KeyError, ValueError, TypeError) as err:
        raise ModelError(f"{path}: invalid model metadata ({err})") from None
    return ModelFileInfo(
        path=path,
        config=cfg,
        weights_sha256=meta["weights_sha256"],
        variants=variants,
        default_variant=meta.get("default_variant", variants[0].name),
        description=meta.get("description", ""),
        license=meta.get("license", ""),
        provenance=meta.get("provenance", "{}"),
        file_size=path.stat().st_size,
        n_params=n_params,
    )


def load_model_file(path: str | Path, variant: str | None = None) -> tuple[ImageCodecModel, ModelFileInfo, Variant]:
    """Build the network of a model file, check the weights hash, and select a rate variant."""
    info = read_model_info(path)
    chosen = info.variant(variant)
    try:
        state = st_load(Path(path).read_bytes())
    except (SafetensorError, OSError) as err:
        raise ModelError(f"cannot load weights of {path}: {err}") from None
    if weights_hash(state) != info.weights_sha256:
        raise ModelError(f"model file {path} is corrupt (weights hash mismatch)")
    if variant_id(info.config, chosen.k_code, info.weights_sha256) != chosen.model_id:
        raise ModelError(f"model file {path}: variant {chosen.name} has an inconsistent model id")
    model = build_codec_model(info.config, k_code=chosen.k_code)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    return model.eval(), info, chosen
