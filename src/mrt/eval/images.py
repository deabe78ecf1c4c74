"""The evaluated images: listing folders, loading pixels, checking reconstructions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrt.eval.cache import image_hash
from mrt.eval.common import EvalError
from mrt.io import is_image_file, load_image

__all__ = ["LoadedImage", "check_recon", "list_image_files", "load_images"]


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
            files = sorted(f for f in p.rglob("*") if is_image_file(f))
            out.extend((f, f.relative_to(p).as_posix()) for f in files)
        else:
            raise EvalError(f"no such file or folder: {p}")
    if not out:
        raise EvalError("no images found in " + ", ".join(str(p) for p in paths))
    return out


def load_images(paths: Iterable[Path | str], limit: int | None = None) -> list[LoadedImage]:
    """Load every image under ``paths`` (files or folders), optionally only the first ``limit``."""
    files = list_image_files(paths)
    if limit is not None:
        files = files[:limit]
    out = []
    for path, name in files:
        px = load_image(path)
        out.append(LoadedImage(name=name, pixels=px, hash=image_hash(px)))
    return out


def check_recon(rec: Any, img: LoadedImage, who: str) -> np.ndarray:
    """``rec`` as an array, if it has the shape of ``img`` and dtype uint8; else :class:`EvalError`."""
    rec = np.asarray(rec)
    if rec.shape != img.pixels.shape or rec.dtype != np.uint8:
        raise EvalError(
            f"{who} returned {rec.dtype} {rec.shape} for {img.name}, expected uint8 {img.pixels.shape}"
        )
    return rec
