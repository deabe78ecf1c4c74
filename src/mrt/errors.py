"""Exception hierarchy. Every user-facing failure is an ``MRTError`` with a one-line message."""

from __future__ import annotations

import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


class MRTError(Exception):
    """Base class of all errors the CLI reports as a one-line message and a non-zero exit."""

    exit_code = 1


class ImageError(MRTError):
    """The input is not a readable/supported image (or is too large)."""

    exit_code = 3


class BitstreamError(MRTError):
    """A compressed file is empty, truncated, corrupt, of an unknown version or fails its checksum."""

    exit_code = 4


class ModelError(MRTError):
    """A model name/path/id cannot be resolved or a model file is invalid."""

    exit_code = 5


class ConfigError(MRTError):
    """A configuration file or override is invalid."""

    exit_code = 2


class NotEnoughMemoryError(MRTError):
    """An allocation failed while compressing or decompressing (the image or file is too large for this machine)."""

    exit_code = 6


#: Lower-case fragments of the messages of failed allocations (PyTorch's CPU allocator raises a
#: ``RuntimeError`` "DefaultCPUAllocator: can't allocate memory ..."; CUDA's "out of memory").
_ALLOCATION_FAILURES = ("can't allocate memory", "cannot allocate memory", "out of memory", "not enough memory")


def is_allocation_failure(err: BaseException) -> bool:
    """True for a ``MemoryError`` or a ``RuntimeError`` that reports a failed allocation."""
    if isinstance(err, MemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(fragment in text for fragment in _ALLOCATION_FAILURES)


@contextmanager
def memory_errors(what: str) -> Iterator[None]:
    """Turn a failed allocation inside the block into ``NotEnoughMemoryError("not enough memory to <what>")``.

    Other exceptions pass through unchanged. The frames of the failed call are cleared and
    detached from the original exception (which stays reachable as ``__context__``), so the
    memory they held is free again even while the error is kept, e.g. in a list of failures.
    """
    try:
        yield
    except (MemoryError, RuntimeError) as err:
        if not is_allocation_failure(err):
            raise
        traceback.clear_frames(err.__traceback__)
        err.__traceback__ = None
        raise NotEnoughMemoryError(f"not enough memory to {what}") from None


def unknown_model_error(model_id: int, installed: Sequence[tuple[str, int]], hint: str = "") -> MRTError:
    """The error for a file whose model id matches no installed model.

    An id that differs from an installed model's id in exactly one of its three bytes is far
    more likely a corrupt file than a missing model (two random 24-bit ids almost never agree in
    two bytes), so it gives a ``BitstreamError`` naming the near model; any other id gives a
    ``ModelError`` listing the installed models (``hint``: how to add models).
    """
    near = [(name, mid) for name, mid in installed if _bytes_differing(model_id, mid) == 1]
    if near:
        name, mid = near[0]
        return BitstreamError(
            f"corrupt file: its model id {model_id:06x} matches no installed model and differs "
            f"in one byte from {name} ({mid:06x})"
        )
    listed = ", ".join(f"{name}={mid:06x}" for name, mid in installed) or "none"
    extra = f"; {hint}" if hint else ""
    return ModelError(f"file needs model {model_id:06x}, which is not installed (installed: {listed}{extra})")


def _bytes_differing(a: int, b: int) -> int:
    """How many of the three bytes of two 24-bit model ids differ."""
    return sum(((a >> shift) & 0xFF) != ((b >> shift) & 0xFF) for shift in (0, 8, 16))


class BudgetError(MRTError):
    """An image cannot be compressed into the requested number of bytes, even at the lowest rate."""

    exit_code = 7


class MRTWarning(UserWarning):
    """Something the user should know that is not an error; the CLI prints it as ``mrt: note: <message>``."""


class FirstFrameWarning(MRTWarning):
    """An animated or multi-page image (GIF, WebP, APNG, TIFF) was read: only its first frame is used."""
