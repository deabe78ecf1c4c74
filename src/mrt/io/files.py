"""Atomic file writes: never a partial output, never an unintended overwrite."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mrt.errors import MRTError


class OutputExistsError(MRTError):
    """The output path exists and overwriting was not requested."""

    exit_code = 1


def _umask() -> int:
    """The process umask, read without changing it (Linux /proc), else the common 0o022."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _fsync_dir(folder: Path) -> None:
    """Best-effort fsync of a directory so the rename itself is durable."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _publish(tmp: Path, path: Path, force: bool) -> None:
    """Move the finished temp file to ``path``; without ``force`` never replace a file."""
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails atomically if path exists
    except FileExistsError:
        raise OutputExistsError(f"'{path}' already exists (use --force to overwrite)") from None
    except OSError:  # file system without hard links: check, then rename
        if path.exists():
            raise OutputExistsError(f"'{path}' already exists (use --force to overwrite)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], force: bool = False) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path`` for writing; publish it at ``path`` when the block ends.

    The one way the package writes files: the output appears whole (fsync, then rename) or not at
    all. Refuses an existing ``path`` unless ``force`` (``OutputExistsError``); on any error,
    including one raised inside the block, no temp or partial file is left behind. I/O failures
    raise ``MRTError`` with a one-line message.

        with atomic_write(path, force=True) as fh:
            torch.save(obj, fh)
    """
    path = Path(path)
    if path.is_dir():
        raise MRTError(f"cannot write '{path}': it is a directory")
    if not force and path.exists():
        raise OutputExistsError(f"'{path}' already exists (use --force to overwrite)")
    folder = path.parent
    tmp: Path | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
        _publish(tmp, path, force)
        tmp = None
        _fsync_dir(folder)
    except OSError as err:
        raise MRTError(f"cannot write '{path}': {err.strerror or err}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, force: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, force) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, force: bool = False) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"), force)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
