"""A context manager that fixes torch's intra-op threads to one for a block (and restores them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one intra-op thread; the caller's setting is restored afterwards.

    Used where results must not depend on the caller's thread count: the entropy model's tables
    (encoder and decoder must build identical ones) and the decoder's latent path.

    Why the decoder needs it: with more than one thread, PyTorch runs a 1x1 convolution that has
    a bias through oneDNN (bias added after the sum) instead of im2col + GEMM (sum started from
    the bias), so its output changes in the last bits with the thread count, and the decoded
    image by 1 in a few pixels. 3x3 convolutions and bias-free 1x1 ones give the same bits for
    any thread count at the shapes decoding uses (measured with 1, 2, 3, 4 and 8 threads).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 ``conv`` with its bias added after the bias-free convolution: the same value as
    ``conv(x)`` up to float rounding, but the same bits for any thread count (see ``one_thread``)."""
    out = F.conv2d(x, conv.weight)
    return out if conv.bias is None else out + conv.bias[:, None, None]
