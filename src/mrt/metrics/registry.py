"""The one list of quality metrics: names, labels, direction, scope, formats, implementation.

Everything that names a metric (the evaluation suite, results files, report tables, RD plots,
BD-rates, the CLI) reads it from here. Each metric has one canonical ``name`` (a Python
identifier, used for record attributes, CSV columns and ``--metrics``); ``key`` is the
spelling of CompressAI results files (``"ms-ssim"``), kept because files on disk use it.
Aliases are accepted on input only (:func:`metric_spec`).

This module is plain data (no torch): it names the implementation in :mod:`mrt.metrics`
(``impl``) instead of importing it, so reading the registry is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mrt.errors import MRTError

__all__ = [
    "METRICS",
    "MetricSpec",
    "UnknownMetricError",
    "find_metric",
    "metric_names",
    "metric_spec",
]

#: how a metric is computed: a function of an image pair, a network built once and applied to
#: image pairs, or a statistic over the patch features of a whole rate point
MetricKind = Literal["function", "network", "set"]


class UnknownMetricError(MRTError):
    """A metric name that is neither a canonical name nor an alias."""


@dataclass(frozen=True)
class MetricSpec:
    """Everything the package needs to know about one metric."""

    name: str  # canonical name (``ms_ssim``)
    label: str  # display label in tables and titles (``MS-SSIM``)
    axis_label: str  # RD-plot axis label without the arrow (``PSNR (dB)``)
    higher_is_better: bool
    kind: MetricKind
    impl: str  # attribute of ``mrt.metrics`` that computes it
    impl_id: str  # recorded beside every value; ``{patch}`` is the FID/KID patch size
    fmt: str = "{:.4f}"  # a value in tables
    delta_fmt: str = "{:+.3f}"  # a BD-metric (difference of two values)
    range_fmt: str = "{:.3g}"  # the ends of a BD-rate overlap interval (metric units)
    key: str = ""  # spelling in results JSON files and figure names; default ``name``
    aliases: tuple[str, ...] = ()  # other spellings accepted on input
    impl_kwargs: tuple[tuple[str, str], ...] = ()  # constructor arguments of a network
    heavy: bool = False  # slow on CPU: computed only at the rate points that matter
    rd: bool = True  # has RD curves, target-rate tables, BD deltas and progress-log entries

    @property
    def json_key(self) -> str:
        """The key of this metric in results JSON files (CompressAI spelling)."""
        return self.key or self.name

    @property
    def per_image(self) -> bool:
        """True when computed per image and averaged; False for set metrics (FID/KID)."""
        return self.kind != "set"

    @property
    def arrow(self) -> str:
        """``↑`` (higher is better) or ``↓`` (lower is better)."""
        return "↑" if self.higher_is_better else "↓"

    def implementation(self, fid_patch: int = 64) -> str:
        """Identifier of the implementation, as recorded in results and caches."""
        return self.impl_id.format(patch=fid_patch)


#: every metric, in the order of report tables and results files
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("psnr", "PSNR", "PSNR (dB)", True, "function", impl="psnr", impl_id="mrt.metrics",
               fmt="{:.2f}", delta_fmt="{:+.2f}", range_fmt="{:.2f}", aliases=("psnr-rgb",)),
    MetricSpec("ms_ssim", "MS-SSIM", "MS-SSIM", True, "function", impl="ms_ssim",
               impl_id="mrt.metrics", key="ms-ssim", aliases=("ms-ssim",)),
    MetricSpec("lpips", "LPIPS", "LPIPS (alex)", False, "network", impl="LPIPS",
               impl_id="mrt.metrics.LPIPS(alex)", impl_kwargs=(("net", "alex"),)),
    MetricSpec("dists", "DISTS", "DISTS", False, "network", impl="DISTS",
               impl_id="mrt.metrics.DISTS", heavy=True),
    MetricSpec("fid", "FID", "FID (64 px patches)", False, "set", impl="fid_from_features",
               impl_id="mrt.metrics.FID(patch={patch})", fmt="{:.1f}", delta_fmt="{:+.2f}",
               heavy=True),
    MetricSpec("kid", "KID", "KID (64 px patches)", False, "set", impl="kid_from_features",
               impl_id="mrt.metrics.FID(patch={patch})", heavy=True, rd=False),
)


def _lookup() -> dict[str, MetricSpec]:
    """Lower-case name or alias -> spec."""
    out: dict[str, MetricSpec] = {}
    for spec in METRICS:
        for word in (spec.name, spec.json_key, *spec.aliases):
            out[word.lower()] = spec
    return out


def find_metric(name: str) -> MetricSpec | None:
    """The spec of a metric given by its name or an alias (any case), else ``None``."""
    return _lookup().get(name.strip().lower())


def metric_spec(name: str) -> MetricSpec:
    """Like :func:`find_metric` but raises :class:`UnknownMetricError` for unknown names."""
    spec = find_metric(name)
    if spec is None:
        raise UnknownMetricError(f"unknown metric {name!r}; known: {', '.join(metric_names())}")
    return spec


def metric_names(*, per_image: bool | None = None, rd: bool | None = None) -> tuple[str, ...]:
    """Canonical names in registry order, optionally only per-image / set or RD metrics."""
    return tuple(s.name for s in METRICS
                 if (per_image is None or s.per_image == per_image) and (rd is None or s.rd == rd))
