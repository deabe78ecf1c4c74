"""Atomic file writes: never a partial output, never an unintended overwrite."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mrt.errors import MRTError


class OutputExistsError(MRTError):
    """The output path exists and overwriting was not requested."""

    exit_code = 1


class UnsafeOutputError(MRTError):
    """The output path is something other than a regular file (a device, FIFO, socket, folder, ...)."""

    exit_code = 1


def _kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def check_output_path(path: str | os.PathLike[str], force: bool = False) -> None:
    """Refuse an output path that must not be replaced, before any work is done.

    Only a missing path, a regular file or a symbolic link to a regular file may become an
    output, the last two only with ``force`` (``OutputExistsError`` otherwise). Anything else
    (directory, character or block device, FIFO, socket, dangling link or link to one of those)
    raises ``UnsafeOutputError``, with or without ``force``: the rename that publishes an output
    would replace it (``-o /dev/null --force`` run as root would replace the system's
    ``/dev/null``). A symbolic link is replaced by the new file; its target is left unchanged.
    """
    path = Path(path)
    try:
        link = path.lstat()
    except FileNotFoundError:
        return
    except OSError as err:
        raise MRTError(f"cannot write '{path}': {err.strerror or err}") from None
    is_link = stat.S_ISLNK(link.st_mode)
    try:
        mode = path.stat().st_mode if is_link else link.st_mode
    except OSError:  # dangling link (or a loop): there is no file to replace
        raise UnsafeOutputError(f"refusing to write '{path}': it is a symbolic link to nothing") from None
    if not stat.S_ISREG(mode):
        what = f"a symbolic link to {_kind(mode)}" if is_link else _kind(mode)
        raise UnsafeOutputError(f"refusing to write '{path}': it is {what}, not a regular file")
    if not force:
        raise OutputExistsError(f"'{path}' already exists (use --force to overwrite)")


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
    """Move the finished temp file to ``path``; without ``force`` never replace a file.

    With ``force``, ``path`` is checked again right before the rename, which replaces only a
    regular file or a symbolic link to one (see :func:`check_output_path`).
    """
    if force:
        check_output_path(path, force)
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
    all. Refuses an existing ``path`` unless ``force`` (``OutputExistsError``), and anything but a
    regular file or a symbolic link to one even with ``force`` (``UnsafeOutputError``; a link is
    replaced, not written through: see :func:`check_output_path`). On any error, including one
    raised inside the block, no temp or partial file is left behind. I/O failures raise
    ``MRTError`` with a one-line message.

        with atomic_write(path, force=True) as fh:
            torch.save(obj, fh)
    """
    path = Path(path)
    check_output_path(path, force)
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
