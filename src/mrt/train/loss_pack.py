"""A compact copy of the frozen networks that training losses use, for machines that cannot fetch them.

A leased GPU machine receives at most 64 MiB with the working tree (``docs/training.md`` §11), and
the frozen networks of the light family's stage-2 loss are larger than that together: VGG16 for
DISTS (59 MB in float32), AlexNet + LPIPS heads (10 MB), EfficientNet-Lite1 for the feature
discriminator (22 MB). A *loss pack* is one safetensors file holding all three (29 MB): VGG16's conv4 and conv5 weights
(88% of it) as int8 with one float32 scale per output channel (symmetric, round to nearest), the
other large tensors as float16, small ones (biases, heads, DISTS's alpha/beta) as float32.
AlexNet and EfficientNet-Lite1 stay float16 because int8 costs them too much (LPIPS moved by 2%,
the deepest Lite1 tap by 5%, also with only its BN-folded 1x1 convolutions in int8), and so do
VGG16's first three blocks (in int8 they double DISTS's error). Its metadata records the sha256
of each source file it was cut from.

The pack is for **training losses only** (``task_args.loss_pack``): the metrics that
``mrt eval`` reports always load the exact, hash-verified weights (``mrt.metrics.weights``).
The compact copies change LPIPS by ~1e-4 and DISTS by ~1e-3 (0.3%; ``tests/test_loss_pack.py``
bounds both): a slightly different loss to minimise, never a different reported metric.

    write_loss_pack(path, lpips=LPIPS("alex"), dists=DISTS(), lite1=FeatureDiscriminator().backbone, sources=...)
    lpips, dists = perceptual_from_pack(path)
    disc = FeatureDiscriminator(64, pretrained=False); load_lite1_from_pack(disc.backbone, path)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mrt.errors import ModelError
from mrt.io.files import atomic_write_bytes

__all__ = [
    "PACK_FORMAT",
    "PARTS",
    "LossPackInfo",
    "dequantize_int8",
    "load_lite1_from_pack",
    "perceptual_from_pack",
    "quantize_int8",
    "read_pack_part",
    "read_pack_info",
    "write_loss_pack",
]

PACK_FORMAT = "mrt-loss-pack/1"
PARTS = ("lpips_alex", "dists", "lite1")
SCALE_SUFFIX = "::scale"
MIN_COMPACT_NUMEL = 4096  # smaller tensors (biases, heads, alpha/beta, small convs) stay float32
INT8_PARTS = ("dists",)  # int8 for its tensors of MIN_INT8_NUMEL and more, float16 for the other large ones
MIN_INT8_NUMEL = 2**20  # VGG16's conv4 and conv5 layers (88% of its weights); int8 in conv1-3 doubles the error


@dataclass(frozen=True)
class LossPackInfo:
    """What a pack's metadata says: format, the parts it holds and their source files' sha256."""

    format: str
    parts: tuple[str, ...]
    sources: dict[str, str]


def quantize_int8(w: Tensor) -> tuple[Tensor, Tensor]:
    """Per-output-channel symmetric int8: ``w [C_out, ...]`` -> (q int8 [C_out, ...], scale fp32 [C_out])."""
    flat = w.detach().float().reshape(w.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(w.shape), scale


def dequantize_int8(q: Tensor, scale: Tensor) -> Tensor:
    """Inverse of :func:`quantize_int8` (float32)."""
    return q.float() * scale.view(-1, *([1] * (q.dim() - 1)))


def _weights_of(part: str, module: nn.Module) -> dict[str, Tensor]:
    """What a part is made of: LPIPS/DISTS their parameters (what ``FrozenMetric.load_weights``
    loads; their constant buffers come from the code), the folded EfficientNet-Lite1 its buffers
    (it has no parameters)."""
    named = module.named_buffers() if part == "lite1" else module.named_parameters()
    return {n: t.detach() for n, t in named}


def _pack_tensors(prefix: str, tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    packed: dict[str, Tensor] = {}
    for name, t in tensors.items():
        key = f"{prefix}/{name}"
        if t.dim() >= 2 and t.numel() >= MIN_COMPACT_NUMEL and t.is_floating_point():
            if prefix in INT8_PARTS and t.numel() >= MIN_INT8_NUMEL:
                q, scale = quantize_int8(t)
                packed[key] = q.contiguous()
                packed[key + SCALE_SUFFIX] = scale.contiguous()
            else:
                packed[key] = t.to(torch.float16).contiguous()
        else:
            packed[key] = t.float().contiguous()
    return packed


def write_loss_pack(
    path: str | Path,
    *,
    lpips: nn.Module,
    dists: nn.Module,
    lite1: nn.Module,
    sources: Mapping[str, str],
    force: bool = False,
) -> LossPackInfo:
    """Write the frozen weights of LPIPS-alex, DISTS and the EfficientNet-Lite1 trunk as one pack
    (atomically; an existing file only with ``force``). ``sources``: source file name -> sha256."""
    from safetensors.torch import save

    tensors: dict[str, Tensor] = {}
    for prefix, module in zip(PARTS, (lpips, dists, lite1)):
        tensors.update(_pack_tensors(prefix, _weights_of(prefix, module)))
    info = LossPackInfo(PACK_FORMAT, PARTS, dict(sorted(sources.items())))
    meta = {"format": info.format, "parts": json.dumps(list(info.parts)), "sources": json.dumps(info.sources)}
    atomic_write_bytes(Path(path), save(tensors, metadata=meta), force=force)
    return info


def read_pack_info(path: str | Path) -> LossPackInfo:
    """The metadata of a pack (``ModelError`` when the file is not one)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"loss pack not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for a corrupt header
        raise ModelError(f"{path} is not a loss pack ({e})") from None
    if meta.get("format") != PACK_FORMAT:
        raise ModelError(f"{path} is not a loss pack of format {PACK_FORMAT} (found {meta.get('format')!r})")
    try:
        parts, sources = json.loads(meta["parts"]), json.loads(meta["sources"])
    except (KeyError, ValueError):
        raise ModelError(f"{path}: loss pack metadata without valid parts/sources") from None
    return LossPackInfo(meta["format"], tuple(parts), dict(sources))


def read_pack_part(path: str | Path, part: str) -> dict[str, Tensor]:
    """One part's weights (``lpips_alex``, ``dists`` or ``lite1``), dequantised to float32."""
    from safetensors import safe_open

    if part not in PARTS:
        raise ValueError(f"unknown loss-pack part {part!r} (known: {', '.join(PARTS)})")
    info = read_pack_info(path)
    if part not in info.parts:
        raise ModelError(f"loss pack {path} has no part {part!r}")
    prefix = part + "/"
    out: dict[str, Tensor] = {}
    with safe_open(str(path), framework="pt") as f:
        keys = [k for k in f.keys() if k.startswith(prefix) and not k.endswith(SCALE_SUFFIX)]
        for key in keys:
            t = f.get_tensor(key)
            if t.dtype == torch.int8:
                t = dequantize_int8(t, f.get_tensor(key + SCALE_SUFFIX))
            out[key[len(prefix):]] = t.float()
    return out


def _load_metric(module: nn.Module, path: str | Path, part: str) -> None:
    """Strict copy of a pack part into a frozen metric's parameters (``FrozenMetric.load_weights``)."""
    try:
        module.load_weights(read_pack_part(path, part))  # type: ignore[operator]
    except ValueError as e:
        raise ModelError(f"loss pack {part}: {e}") from None


def perceptual_from_pack(path: str | Path, lpips: bool = True, dists: bool = True) -> tuple[nn.Module | None, nn.Module | None]:
    """Frozen LPIPS-alex and DISTS modules built from a pack (None for the ones not asked for)."""
    from mrt.metrics import DISTS, LPIPS

    lp = ds = None
    if lpips:
        lp = LPIPS(net="alex", pretrained=False)
        _load_metric(lp, path, "lpips_alex")
        lp.freeze()
    if dists:
        ds = DISTS(pretrained=False)
        _load_metric(ds, path, "dists")
        ds.freeze()
    return lp, ds


def load_lite1_from_pack(backbone: nn.Module, path: str | Path) -> None:
    """Copy a pack's folded EfficientNet-Lite1 weights into ``backbone``'s buffers (strict)."""
    from mrt.metrics._backbones import copy_named_tensors

    try:
        copy_named_tensors(dict(backbone.named_buffers()), read_pack_part(path, "lite1"))
    except ValueError as e:
        raise ModelError(f"loss pack lite1: {e}") from None
