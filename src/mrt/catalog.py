"""The catalog of installed models: model files on the search path and their rate variants.

The shipped files live in ``mrt/weights``; ``MRT_MODEL_PATH`` adds folders or files
(os.pathsep-separated). :func:`list_models` is what ``mrt models`` prints; :func:`resolve`
turns a model name, a ``.mrtm`` path (``path#variant``) or nothing (the default) into a file.
Listing models reads only the files' headers (``read_model_info``), never their weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mrt.errors import ModelError
from mrt.models.modelfile import SUFFIX, ModelFileInfo, read_model_info

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_FAMILY = "mrt-s2"  # file stem of the default shipped model family (mrt-s: the previous one, still installed)
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
    # another model earlier on the search path has this name, so the name selects that one;
    # select this one with ``path#name`` (e.g. an earlier release put on MRT_MODEL_PATH)
    shadowed: bool = False


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


def infos() -> list[ModelFileInfo]:
    return [_info_cached(str(p), p.stat().st_mtime) for p in _model_files()]


def _default_info() -> ModelFileInfo | None:
    """The model file used when none is named: ``DEFAULT_FAMILY`` if installed, else the first found."""
    found = infos()
    for info in found:
        if info.path.stem == DEFAULT_FAMILY:
            return info
    return found[0] if found else None


def list_models() -> list[ModelInfo]:
    """Every rate variant of every model file on the search path (shipped ones first)."""
    out = []
    default = _default_info()
    seen: set[str] = set()
    for info in infos():
        for v in info.variants:
            shadowed = v.name in seen
            seen.add(v.name)
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
                    shadowed=shadowed,
                )
            )
    return out


def resolve(name_or_path: str | None) -> tuple[Path, str | None]:
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
    for info in infos():
        for v in info.variants:
            if v.name == name_or_path:
                return info.path, v.name
        if info.path.stem == name_or_path:
            return info.path, None
    known = ", ".join(m.name for m in list_models()) or "none installed"
    raise ModelError(f"unknown model {name_or_path!r} (known: {known})")


def installed(version: int) -> list[tuple[str, int]]:
    """(name, id) of the installed models, as a file of ``version`` names them."""
    if version == 1:
        return [(m.name, m.model_id) for m in list_models()]
    return [(i.path.stem, i.file_id) for i in infos()]
