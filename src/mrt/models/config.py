"""Model configuration dataclasses (frozen), their canonical JSON, and the stable model id.

One ``MRTConfig`` describes a complete codec: MRT encoder/decoder, RCM entropy model, the
stage-0 discrete-target autoencoder and the pixel generator. The model id written in every
file header is derived from the canonical JSON of the config and the weights' hash, never from
a list position or dict order.

``kind`` says which network a config builds (``mrt.models.modelfile.build_codec_model``):
``"mrt"`` (the 1-D token codec) or ``"latent2d"`` (the 2-D latent codec of
``mrt.models.latent2d``, which reuses ``window``, ``n_tokens``, ``token_bits``, ``rcm`` and
``target`` with the meanings given in :class:`MRTConfig`). ``kind``, ``analysis``, ``rcm.context``,
``target.light_blocks``, ``target.latent_up`` and ``target.light_noise`` are left out of the canonical JSON at their defaults, so configs
written before they existed keep their JSON and model ids.
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
Kind = Literal["mrt", "latent2d"]
DEFAULT_KIND = "mrt"
Context = Literal["scctx", "factorized"]
DEFAULT_CONTEXT = "scctx"
Analysis = Literal["taef2", "light"]
DEFAULT_ANALYSIS = "taef2"
DEFAULT_LIGHT_BLOCKS = (3, 2, 1)  # mrt.models.light_decoder.LightSpec().blocks
LatentUp = Literal["shuffle", "resize"]
DEFAULT_LATENT_UP = "shuffle"


@dataclass(frozen=True)
class RCMConfig:
    """1-D spatial-channel context model (RWKV Compression Model).

    Each token's ``token_bits`` bits are split into ``groups`` equal groups (one integer symbol per
    group, alphabet 2**(bits/groups)); tokens are coded in ``passes`` interleaved passes along the
    1-D sequence (pass p = tokens whose in-window index k has k % passes == p).

    ``context``: ``scctx`` (the paper's 1-D spatial-channel context) or ``factorized`` (the
    ablation of issue 12: a context-free prior, one learned table per in-window token index and
    bit group, shared by every window and image; the coded symbols and their order are the same).
    """

    dim: int = 96
    depth: int = 2
    groups: int = 4
    passes: int = 2
    context: Context = DEFAULT_CONTEXT


@dataclass(frozen=True)
class TargetConfig:
    """Stage-0 2-D discrete autoencoder on the TAEF2 latent: LFQ codes at 1/16 resolution."""

    bits: int = 16
    dim: int = 128
    depth: int = 2
    pixel_generator: Literal["taef2", "scratch", "light"] = "taef2"  # light: mrt.models.light_decoder
    # residual blocks of the light RGB decoder at 1/8, 1/4 and 1/2 resolution (pixel_generator: light)
    light_blocks: tuple[int, int, int] = DEFAULT_LIGHT_BLOCKS
    # the latent decoder's 1/16 -> 1/8 upsampling: "shuffle" (1x1 conv + pixel shuffle: each code
    # cell writes its own 2x2 pattern, which uncertain codes turn into a 16-px periodic texture) or
    # "resize" (nearest upsampling + 3x3 conv: a constant input stays constant)
    latent_up: LatentUp = DEFAULT_LATENT_UP
    # position-keyed noise inputs in the light RGB decoder (mrt.models.light_decoder; pixel_generator: light)
    light_noise: bool = False

    def __post_init__(self) -> None:
        if self.latent_up not in ("shuffle", "resize"):
            raise ConfigError(f"unknown target.latent_up {self.latent_up!r} (shuffle, resize)")
        if len(self.light_blocks) != 3 or not all(0 <= b <= 16 for b in self.light_blocks):
            raise ConfigError(f"target.light_blocks must be three block counts in 0..16, got {self.light_blocks}")
        if self.light_noise and self.pixel_generator != "light":
            raise ConfigError("target.light_noise needs target.pixel_generator: light")


@dataclass(frozen=True)
class MRTConfig:
    """The whole codec. Sizes are in pixels unless stated; windows are ``window`` x ``window``.

    ``kind: latent2d`` (the 2-D latent codec): the latents are the ``target`` autoencoder's LFQ
    codes at 1/16 resolution (``target.bits`` per latent, ``token_bits`` must equal it); they are
    coded in ``rcm.groups`` channel groups (``n_tokens`` must equal it: a window's "tokens" are
    its channel groups, and ``k`` is the number of groups coded); ``rcm.passes`` is 1 (channel
    context only) or 2 (checkerboard); ``rcm.dim`` / ``rcm.depth`` size the 2-D context model;
    the context model sees one ``window`` x ``window`` block at a time. ``patch``, ``dim``,
    ``heads``, ``enc_depth``, ``dec_depth``, ``mlp_ratio``, ``mixing`` and ``decode`` are unused.
    """

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
    kind: Kind = DEFAULT_KIND
    analysis: Analysis = DEFAULT_ANALYSIS  # light: mrt.models.light_encoder (a distilled TAEF2 encoder)

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
        if self.kind not in ("mrt", "latent2d"):
            raise ConfigError(f"unknown model kind {self.kind!r} (mrt, latent2d)")
        if self.analysis not in ("taef2", "light"):
            raise ConfigError(f"unknown analysis {self.analysis!r} (taef2, light)")
        if self.rcm.context not in ("scctx", "factorized"):
            raise ConfigError(f"unknown rcm.context {self.rcm.context!r} (scctx, factorized)")
        if self.kind == "latent2d":
            self._check_latent2d()

    def _check_latent2d(self) -> None:
        """The 2-D latent codec's reading of the shared fields (see the class docstring)."""
        if self.token_bits != self.target.bits:
            raise ConfigError(f"latent2d: token_bits ({self.token_bits}) must equal target.bits ({self.target.bits})")
        if self.n_tokens != self.rcm.groups:
            raise ConfigError(f"latent2d: n_tokens ({self.n_tokens}) must equal rcm.groups ({self.rcm.groups})")
        if self.rcm.context != DEFAULT_CONTEXT:
            raise ConfigError("latent2d: rcm.context applies to MRT's RCM only")
        if self.rcm.passes not in (1, 2):
            raise ConfigError(f"latent2d: rcm.passes must be 1 or 2 (checkerboard), got {self.rcm.passes}")
        if self.group_bits > 8:
            raise ConfigError(f"latent2d: at most 8 bits per channel group, got {self.group_bits}")

    @property
    def grid(self) -> int:
        """Patch tokens per window side."""
        return self.window // self.patch

    @property
    def group_bits(self) -> int:
        return self.token_bits // self.rcm.groups

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict; ``kind``, ``analysis``, ``rcm.context``, ``target.light_blocks``,
        ``target.latent_up`` and ``target.light_noise`` are left out at their defaults (keeps older
        canonical JSON and ids)."""
        d = dataclasses.asdict(self)
        if d["kind"] == DEFAULT_KIND:
            del d["kind"]
        if d["analysis"] == DEFAULT_ANALYSIS:
            del d["analysis"]
        if d["rcm"]["context"] == DEFAULT_CONTEXT:
            del d["rcm"]["context"]
        if tuple(d["target"]["light_blocks"]) == DEFAULT_LIGHT_BLOCKS:
            del d["target"]["light_blocks"]
        if d["target"]["latent_up"] == DEFAULT_LATENT_UP:
            del d["target"]["latent_up"]
        if not d["target"]["light_noise"]:
            del d["target"]["light_noise"]
        return d

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
