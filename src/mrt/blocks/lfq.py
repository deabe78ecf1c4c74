"""Look-up-free quantization (LFQ, MAGVIT-v2): every channel becomes one bit in {-1, +1}.

Entropy term (factorized over bits). The MAGVIT-v2 code distribution for a token,
``p(code) ~ exp(-||z - code||^2 / tau)`` over all ``2^d`` codes in ``{-1,+1}^d``, factorizes
exactly over the bits: ``p(bit_j = +1) = sigmoid(4 z_j / tau)``. Hence

* the per-sample entropy (which we minimise: confident codes) is exactly ``sum_j H(p_j)``;
* the batch/codebook entropy (maximised: diverse usage) is approximated by the sum of the per-bit
  marginal entropies ``sum_j H(mean_n p_nj)`` -- an upper bound of the true code-usage entropy that
  rewards balanced bits but not independence between bits (cheap: O(N d), no 2^d table).

Both are averaged over the d bits (nats per bit, in ``[0, ln 2]``), so the weights do not depend on
d: ``entropy_loss = entropy_weight * (H_sample - diversity_weight * H_batch)`` and
``commit_loss = commit_weight * mean((z - q)^2)``. The returned losses are already weighted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LFQ", "LFQOutput", "bits_to_int", "int_to_bits", "bits_to_quantized", "binary_entropy"]

_MAX_BITS = 62


@dataclass
class LFQOutput:
    """Result of :class:`LFQ`. ``quantized``/``bits``: ``[..., d]``; losses: scalars (weighted).

    ``sample_entropy`` / ``batch_entropy``: unweighted, detached, nats per bit (for logging).
    """

    quantized: Tensor
    bits: Tensor
    entropy_loss: Tensor
    commit_loss: Tensor
    sample_entropy: Tensor | None = None
    batch_entropy: Tensor | None = None


def binary_entropy(p: Tensor, eps: float = 1e-7) -> Tensor:
    """Elementwise entropy (nats) of Bernoulli(p)."""
    p = p.clamp(eps, 1.0 - eps)
    return -(p * p.log() + (1.0 - p) * (1.0 - p).log())


def bits_to_int(bits: Tensor) -> Tensor:
    """``[..., g]`` in {0,1} -> int64 ``[...]``; bit j has weight ``2^j``."""
    g = bits.shape[-1]
    if g > _MAX_BITS:
        raise ValueError(f"at most {_MAX_BITS} bits per code, got {g}")
    weights = torch.ones(g, dtype=torch.int64, device=bits.device) << torch.arange(g, device=bits.device)
    return (bits.to(torch.int64) * weights).sum(-1)


def int_to_bits(codes: Tensor, g: int) -> Tensor:
    """int ``[...]`` -> int64 ``[..., g]`` in {0,1} (bit j = ``(code >> j) & 1``)."""
    if not 0 < g <= _MAX_BITS:
        raise ValueError(f"g must be in [1, {_MAX_BITS}], got {g}")
    shifts = torch.arange(g, device=codes.device)
    return (codes.to(torch.int64)[..., None] >> shifts) & 1


def bits_to_quantized(bits: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """{0,1} bits -> {-1,+1} values (what the decoder sees; LFQ-D)."""
    return bits.to(dtype) * 2.0 - 1.0


class LFQ(nn.Module):
    """Sign quantizer with straight-through gradient; ``forward(z: [..., bits]) -> LFQOutput``.

    ``q = +1 if z >= 0 else -1``; ``quantized = z + (q - z).detach()`` (fp32, identity gradient);
    ``bits = (q > 0)``. ``temperature`` is tau in ``p(bit=1) = sigmoid(4 z / tau)``.
    No parameters; always computed in fp32 (autocast disabled inside).
    """

    def __init__(
        self,
        bits: int,
        entropy_weight: float = 0.1,
        commit_weight: float = 0.25,
        diversity_weight: float = 1.0,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0 < bits <= _MAX_BITS:
            raise ValueError(f"bits must be in [1, {_MAX_BITS}], got {bits}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.bits = bits
        self.entropy_weight = entropy_weight
        self.commit_weight = commit_weight
        self.diversity_weight = diversity_weight
        self.temperature = temperature

    def extra_repr(self) -> str:
        return (
            f"bits={self.bits}, entropy_weight={self.entropy_weight}, commit_weight={self.commit_weight}, "
            f"diversity_weight={self.diversity_weight}, temperature={self.temperature}"
        )

    def forward(self, z: Tensor) -> LFQOutput:
        if z.shape[-1] != self.bits:
            raise ValueError(f"LFQ expects last dim {self.bits}, got shape {tuple(z.shape)}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            q = torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
            quantized = z + (q - z).detach()
            bits = (z >= 0).to(torch.int64)
            commit = F.mse_loss(z, q)  # q is a constant: gradient pulls z towards its code
            zf = z.reshape(-1, self.bits)  # [N, d]
            if zf.shape[0] == 0:
                h_sample = h_batch = z.new_zeros(())
            else:
                p = torch.sigmoid(4.0 * zf / self.temperature)  # p(bit=1) [N, d]
                h_sample = binary_entropy(p).mean()
                h_batch = binary_entropy(p.mean(0)).mean()
            entropy = h_sample - self.diversity_weight * h_batch
        return LFQOutput(
            quantized=quantized,
            bits=bits,
            entropy_loss=self.entropy_weight * entropy,
            commit_loss=self.commit_weight * commit,
            sample_entropy=h_sample.detach(),
            batch_entropy=h_batch.detach(),
        )
