"""Model configuration dataclasses (frozen), their canonical JSON, and the stable model id.

One ``MRTConfig`` describes a complete codec: MRT encoder/decoder, RCM entropy model, the
stage-0 discrete-target autoencoder and the pixel generator. The model id written in every
file header is derived from the canonical JSON of the config and the weights' hash, never from
a list position or dict order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from mrt.dataclass_config import build
from mrt.errors import ConfigError

Mixing = Literal["birwkv", "none", "global_vit"]


@dataclass(frozen=True)
class RCMConfig:
    """1-D spatial-channel context model (RWKV Compression Model).

    Each token's ``token_bits`` bits are split into ``groups`` equal groups (one integer symbol per
    group, alphabet 2**(bits/groups)); tokens are coded in ``passes`` interleaved passes along the
    1-D sequence (pass p = tokens whose in-window index k has k % passes == p).
    """

    dim: int = 96
    depth: int = 2
    groups: int = 4
    passes: int = 2


@dataclass(frozen=True)
class TargetConfig:
    """Stage-0 2-D discrete autoencoder on the TAEF2 latent: LFQ codes at 1/16 resolution."""

    bits: int = 16
    dim: int = 128
    depth: int = 2
    pixel_generator: Literal["taef2", "scratch", "light"] = "taef2"  # light: mrt.models.light_decoder


@dataclass(frozen=True)
class MRTConfig:
    """The whole codec. Sizes are in pixels unless stated; windows are ``window`` x ``window``."""

    name: str = "mrt"
    window: int = 128
    patch: int = 16
    dim: int = 192
    heads: int = 4
    enc_depth: int = 3
    dec_depth: int = 3
    mlp_ratio: float = 3.0
    n_tokens: int = 32
    token_bits: int = 16
    mixing: Mixing = "birwkv"
    decode: Literal["soft", "hard"] = "soft"
    rcm: RCMConfig = field(default_factory=RCMConfig)
    target: TargetConfig = field(default_factory=TargetConfig)

    def __post_init__(self) -> None:
        if self.patch != 16:
            raise ConfigError("patch must be 16 pixels (2x2 cells of the 1/8-resolution TAEF2 latent)")
        if self.window % self.patch:
            raise ConfigError(f"window ({self.window}) must be a multiple of patch ({self.patch})")
        if self.dim % self.heads:
            raise ConfigError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.token_bits % self.rcm.groups:
            raise ConfigError(f"token_bits ({self.token_bits}) must be divisible by rcm.groups ({self.rcm.groups})")
        if not 1 <= self.n_tokens <= 1024:
            raise ConfigError("n_tokens must be in 1..1024")
        if self.mixing not in ("birwkv", "none", "global_vit"):
            raise ConfigError(f"unknown mixing {self.mixing!r} (birwkv, none, global_vit)")
        if self.decode not in ("soft", "hard"):
            raise ConfigError(f"unknown decode mode {self.decode!r} (soft, hard)")

    @property
    def grid(self) -> int:
        """Patch tokens per window side."""
        return self.window // self.patch

    @property
    def group_bits(self) -> int:
        return self.token_bits // self.rcm.groups

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MRTConfig":
        """Inverse of :meth:`to_dict`; missing keys take their defaults, unknown or mistyped keys
        raise ``ConfigError`` (see :func:`mrt.dataclass_config.build`)."""
        return build(cls, d)

    def replace(self, **changes: Any) -> "MRTConfig":
        return dataclasses.replace(self, **changes)


def canonical_json(d: dict[str, Any]) -> str:
    """Key-sorted, whitespace-free JSON: the same config always gives the same string."""
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def model_id(cfg: MRTConfig, weights_sha256: str) -> int:
    """24-bit stable id of (config, weights): the first 3 bytes of sha256(canonical config | weights hash)."""
    digest = hashlib.sha256((canonical_json(cfg.to_dict()) + "|" + weights_sha256).encode()).digest()
    return int.from_bytes(digest[:3], "big")
