"""Where the converted metric weights live, and reading them back verified."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from mrt.io.files import sha256_file
from mrt.metrics.weights import specs
from mrt.metrics.weights.specs import WeightsError

__all__ = ["cache_dir", "load_safetensors", "metrics_dir", "weight_path", "weights_available"]


def cache_dir() -> Path:
    """The root cache folder: ``$MRT_CACHE`` if set (and non-empty), else ``~/.cache/mrt``."""
    env = os.environ.get("MRT_CACHE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mrt"


def metrics_dir(root: Path | None = None) -> Path:
    """The folder holding the converted metric weights (``<cache>/metrics``)."""
    return (root if root is not None else cache_dir()) / "metrics"


@functools.lru_cache(maxsize=64)
def stamped_sha256(path: str, mtime_ns: int, size: int) -> str:
    """sha256 of a file, remembered per (path, mtime, size) so repeated model builds stay cheap."""
    return sha256_file(path)


def weight_path(key: str, root: Path | None = None, verify: bool = True) -> Path:
    """Path of a cached weight file (a key of ``CACHE_FILES``); raises ``WeightsError`` if absent.

    With ``verify`` the file's sha256 is checked against the pinned value (computed once per
    path/mtime/size within the process).
    """
    files = specs.CACHE_FILES  # looked up at call time: tests pin other hashes
    if key not in files:
        raise WeightsError(f"unknown metric weight {key!r} (known: {', '.join(files)})")
    spec = files[key]
    path = metrics_dir(root) / spec.name
    if not path.is_file():
        raise WeightsError(
            f"metric weights {spec.name} not found in {path.parent}; run `python -m mrt.metrics.weights fetch`"
        )
    if verify:
        st = path.stat()
        digest = stamped_sha256(str(path), st.st_mtime_ns, st.st_size)
        if digest != spec.sha256:
            raise WeightsError(
                f"{path} has sha256 {digest[:16]}..., expected {spec.sha256[:16]}...; delete it and re-run fetch"
            )
    return path


def weights_available(*keys: str, root: Path | None = None) -> bool:
    """True when every named cache file exists (no hash check; for test skips)."""
    files = specs.CACHE_FILES
    names = keys or tuple(files)
    return all((metrics_dir(root) / files[k].name).is_file() for k in names)


def load_safetensors(key: str, root: Path | None = None, verify: bool = True) -> dict[str, Any]:
    """Load a cached safetensors weight file as a dict of CPU tensors."""
    from safetensors.torch import load_file

    return load_file(str(weight_path(key, root, verify)))
