"""Image quality metrics: PSNR, MS-SSIM, LPIPS, DISTS, FID/KID (see ``docs/metrics.md``).

Learned metrics load their weights from the verified cache written by
``python -m mrt.metrics.weights fetch``; nothing is downloaded at import or build time.
"""

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
from mrt.metrics.registry import METRICS, MetricSpec, metric_spec
from mrt.metrics.weights import WeightsError, weights_available

__all__ = [
    "DISTS",
    "LPIPS",
    "METRICS",
    "MetricSpec",
    "FIDFeatureExtractor",
    "KIDResult",
    "WeightsError",
    "extract_patches",
    "fid_from_features",
    "fid_from_stats",
    "kid_from_features",
    "metric_spec",
    "ms_ssim",
    "ms_ssim_per_image",
    "psnr",
    "psnr_per_image",
    "quantize_8bit",
    "ssim_per_image",
    "weights_available",
]
