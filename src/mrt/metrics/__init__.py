"""Image quality metrics: PSNR, MS-SSIM, LPIPS, DISTS, FID/KID (see ``docs/metrics.md``).

Learned metrics load their weights from the verified cache written by
``python -m mrt.metrics.weights fetch``; nothing is downloaded at import or build time.
"""

from typing import Any

from mrt.metrics.dists import DISTS
from mrt.metrics.fid import (
    FIDFeatureExtractor,
    KIDResult,
    extract_patches,
    fid_from_features,
    fid_from_stats,
    kid_from_features,
)
from mrt.metrics.lpips import LPIPS
from mrt.metrics.msssim import ms_ssim, ms_ssim_per_image, ssim_per_image
from mrt.metrics.psnr import psnr, psnr_per_image, quantize_8bit

__all__ = [
    "DISTS",
    "LPIPS",
    "FIDFeatureExtractor",
    "KIDResult",
    "WeightsError",
    "extract_patches",
    "fid_from_features",
    "fid_from_stats",
    "kid_from_features",
    "ms_ssim",
    "ms_ssim_per_image",
    "psnr",
    "psnr_per_image",
    "quantize_8bit",
    "ssim_per_image",
    "weights_available",
]


def __getattr__(name: str) -> Any:
    # ``mrt.metrics.weights`` is imported lazily so that ``python -m mrt.metrics.weights`` does
    # not find it already imported by the package (runpy warns about that).
    if name in ("WeightsError", "weights_available"):
        from mrt.metrics import weights

        return getattr(weights, name)
    raise AttributeError(f"module 'mrt.metrics' has no attribute {name!r}")
