"""How the codec runs its convolutional parts at inference: precision and memory format (issue 10).

Only the two large convolutional networks take these settings: the analysis transform (the
TAEF2 encoder, full resolution) and the pixel generator's RGB decoder. Everything that decides
which symbols a file holds or decodes to (MRT encoder and decoder, LFQ, the RCM, its integer
tables and the range coder) and the small latent decoder always run in fp32 as before.

``precision``:
  * ``fp32``: the reference path (fp32, contiguous NCHW): exactly the numbers of every release
    so far; the golden files' pixel checksums are recorded with it;
  * ``bf16``: bfloat16 weights and activations in channels-last memory format, where the CPU
    computes bf16 natively (oneDNN with AVX-512 BF16 or AMX, or Arm bf16); elsewhere it falls
    back to fp32 with a warning (emulated bf16 convolutions run 7x (channels-last) to 100x
    (NCHW) slower than fp32: measured on an AVX2-only EPYC, docs/benchmarks.md);
  * ``auto`` (default): ``bf16`` where the CPU supports it natively, else ``fp32``, silently.

bf16 changes the analysis latents slightly (so, rarely, a token bit: the file stays valid) and
the decoded pixels (by a few levels). Pick ``fp32`` for pixels that match another machine's.
"""

from __future__ import annotations

import copy
import platform
import warnings
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import nn

from mrt.errors import ConfigError, MRTWarning

Precision = Literal["auto", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


@dataclass(frozen=True)
class InferenceSettings:
    """What the caller asks for; :func:`resolve` turns it into a :class:`ConvPlan` for this CPU.

    ``channels_last``: None follows the precision (channels-last with bf16, NCHW with fp32);
    True/False force it. fp32 with channels-last is not the reference path: its results differ
    in the last bits and, unlike NCHW, with the thread count.
    """

    precision: Precision = "auto"
    channels_last: bool | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r} (one of: {', '.join(PRECISIONS)})")


@dataclass(frozen=True)
class CpuFeatures:
    """What the CPU offers the convolutions (injectable, so that tests can simulate any CPU)."""

    bf16: bool  # native bf16 convolutions

    @classmethod
    def detect(cls) -> "CpuFeatures":
        return cls(bf16=native_bf16())


def native_bf16() -> bool:
    """True when oneDNN runs bf16 convolutions natively on this CPU (read-only queries).

    oneDNN also accepts bf16 on AVX-512 CPUs without the BF16 instructions (emulated, no faster
    than fp32), so on x86 the AVX-512 BF16 or AMX instructions are required too.
    """
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
        if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        return True  # Arm with bf16 (oneDNN's own check)
    except (AttributeError, RuntimeError):  # an older or different torch build: stay on fp32
        return False


@dataclass(frozen=True)
class ConvPlan:
    """Resolved settings: the dtype and memory format of the analysis and RGB-decoder convolutions."""

    dtype: torch.dtype = torch.float32
    channels_last: bool = False

    @property
    def reference(self) -> bool:
        """True for the fp32 NCHW path (the networks run as they are, untouched)."""
        return self.dtype == torch.float32 and not self.channels_last

    @property
    def name(self) -> str:
        base = "bf16" if self.dtype == torch.bfloat16 else "fp32"
        return base + ("+channels-last" if self.channels_last else "")


REFERENCE = ConvPlan()


def resolve(settings: InferenceSettings | None = None, cpu: CpuFeatures | None = None) -> ConvPlan:
    """The plan for ``settings`` (default: auto) on ``cpu`` (default: this machine's)."""
    settings = settings or InferenceSettings()
    want_bf16 = settings.precision != "fp32"
    if want_bf16:
        cpu = cpu or CpuFeatures.detect()
        if not cpu.bf16:
            if settings.precision == "bf16":
                warnings.warn(
                    "bf16 was asked for, but this CPU has no native bf16 convolutions; using fp32", MRTWarning,
                    stacklevel=2,
                )
            want_bf16 = False
    dtype = torch.bfloat16 if want_bf16 else torch.float32
    channels_last = want_bf16 if settings.channels_last is None else settings.channels_last
    return ConvPlan(dtype, channels_last)


class PlannedConv:
    """``net`` run under a non-reference plan: a cast copy of it; input cast in, fp32 NCHW out.

    The copy is made when this object is, from the weights ``net`` has then: make one per
    image (``planned``), so that loading new weights into ``net`` is always seen.
    """

    def __init__(self, net: nn.Module, plan: ConvPlan) -> None:
        fmt = torch.channels_last if plan.channels_last else torch.contiguous_format
        self.plan = plan
        self.format = fmt
        self.net = copy.deepcopy(net).to(dtype=plan.dtype, memory_format=fmt)

    def __call__(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        out = self.net(x.to(dtype=self.plan.dtype, memory_format=self.format), *args)
        return out.to(dtype=torch.float32, memory_format=torch.contiguous_format)


def planned(net: nn.Module, plan: ConvPlan) -> nn.Module | PlannedConv:
    """``net`` itself under the reference plan (no copy, no cast), else a :class:`PlannedConv`."""
    return net if plan.reference else PlannedConv(net, plan)
