"""The metric suite of an evaluation: per-image metrics and FID/KID per rate point.

Which metrics exist, how they are spelt and which function of :mod:`mrt.metrics` computes each
comes from :mod:`mrt.metrics.registry`. ``mrt.metrics`` itself (torch, networks) is imported on
first use, so that building the command line stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from mrt.eval.common import EvalError
from mrt.metrics.registry import MetricSpec, find_metric, metric_names, metric_spec

__all__ = ["PER_IMAGE_METRICS", "MetricStatus", "MetricSuite", "metrics_module"]

#: canonical names of the per-image metrics, in registry order (the default suite)
PER_IMAGE_METRICS = metric_names(per_image=True)
#: what the FID/KID patch protocol needs from ``mrt.metrics`` besides the two statistics
_FID_EXTRACTOR = "FIDFeatureExtractor"
_FID_PATCHES = "extract_patches"

PairMetric = Callable[[np.ndarray, np.ndarray], float | None]


def metrics_module() -> ModuleType:
    """``mrt.metrics``, imported on first use (it pulls in torch)."""
    from mrt import metrics  # noqa: PLC0415

    return metrics


@dataclass(frozen=True)
class MetricStatus:
    """Which implementation computes a metric, or why it is unavailable."""

    name: str
    available: bool
    impl: str = ""
    reason: str = ""


def _to_tensor(img: np.ndarray, device: str = "cpu") -> Any:
    import torch  # noqa: PLC0415

    arr = np.ascontiguousarray(img)
    if not arr.flags.writeable:
        arr = arr.copy()
    t = torch.from_numpy(arr).permute(2, 0, 1)  # [H, W, 3] -> [3, H, W]
    return (t.unsqueeze(0).to(device=device, dtype=torch.float32) / 255.0)  # [1, 3, H, W] in [0, 1]


def _scalar(v: Any) -> float:
    if hasattr(v, "detach"):
        v = v.detach().float().mean().item()
    return float(np.mean(np.asarray(v, dtype=np.float64)))


def _canonical(names: Sequence[str]) -> tuple[str, ...]:
    """Canonical names of the requested per-image metrics; :class:`EvalError` for others."""
    specs = [find_metric(n) for n in names]
    unknown = [n for n, s in zip(names, specs, strict=True) if s is None or not s.per_image]
    if unknown:
        raise EvalError(f"unknown metric(s) {sorted(set(unknown))}; known: {list(PER_IMAGE_METRICS)}")
    return tuple(s.name for s in specs if s is not None)


class MetricSuite:
    """Per-image metrics and dataset-level FID/KID, their networks built on first use.

    ``metrics`` chooses the per-image metrics (names or aliases from the registry: ``psnr``,
    ``ms_ssim``, ``lpips``, ``dists``); ``fid`` turns FID/KID on; ``fid_patch`` is the patch
    size of the GLC protocol (64 for Kodak, 256 for CLIC); ``device`` is where the metric
    networks run (``cpu`` or e.g. ``cuda``). ``module`` replaces ``mrt.metrics`` (tests pass a
    fake with the same names). A metric whose network cannot be built (weights not fetched)
    is reported unavailable with the reason and left empty.
    """

    def __init__(
        self,
        metrics: Sequence[str] = PER_IMAGE_METRICS,
        *,
        fid: bool = True,
        fid_patch: int = 64,
        module: ModuleType | Any | None = None,
        batch: int = 32,
        device: str = "cpu",
    ) -> None:
        self.metrics = _canonical(metrics)
        self.want_fid = fid
        self.fid_patch = fid_patch
        self.batch = batch
        self.device = device
        self._module = module
        self._resolved = False
        self._status: dict[str, MetricStatus] = {}
        self._fns: dict[str, PairMetric] = {}
        self._fid: dict[str, Any] = {}

    # ---- resolution -----------------------------------------------------------------------
    def _resolve(self) -> None:
        if self._resolved:
            return
        self._resolved = True
        mod = self._module if self._module is not None else metrics_module()
        for name in self.metrics:
            self._status[name] = self._resolve_one(mod, metric_spec(name))
        if self.want_fid:
            self._status["fid"] = self._resolve_fid(mod)
        else:
            self._status["fid"] = MetricStatus("fid", False, reason="disabled")

    def _resolve_one(self, mod: Any, spec: MetricSpec) -> MetricStatus:
        import torch  # noqa: PLC0415

        impl = getattr(mod, spec.impl)
        if spec.kind == "function":
            def call(x: np.ndarray, y: np.ndarray, fn: Any = impl) -> float | None:
                with torch.no_grad():
                    return _scalar(fn(_to_tensor(x), _to_tensor(y)))  # [1,3,H,W] each

            self._fns[spec.name] = call
            return MetricStatus(spec.name, True, impl=spec.implementation())
        try:
            net = impl(**dict(spec.impl_kwargs)).eval().to(self.device)
        except Exception as exc:  # noqa: BLE001 (e.g. weights not fetched yet)
            return MetricStatus(spec.name, False, reason=f"{spec.impl}() failed: {exc}")

        def call_net(x: np.ndarray, y: np.ndarray, net: Any = net) -> float | None:
            with torch.no_grad():
                return _scalar(net(_to_tensor(x, self.device), _to_tensor(y, self.device)))

        self._fns[spec.name] = call_net
        return MetricStatus(spec.name, True, impl=spec.implementation())

    def _resolve_fid(self, mod: Any) -> MetricStatus:
        try:
            try:
                extractor = getattr(mod, _FID_EXTRACTOR)(device=self.device)
            except TypeError:  # an extractor without a device argument
                extractor = getattr(mod, _FID_EXTRACTOR)()
            if hasattr(extractor, "eval"):
                extractor = extractor.eval()
        except Exception as exc:  # noqa: BLE001 (e.g. weights not fetched yet)
            return MetricStatus("fid", False, reason=f"{_FID_EXTRACTOR}() failed: {exc}")
        self._fid = {"extractor": extractor, "patches": getattr(mod, _FID_PATCHES),
                     "fid": getattr(mod, metric_spec("fid").impl),
                     "kid": getattr(mod, metric_spec("kid").impl)}
        return MetricStatus("fid", True, impl=metric_spec("fid").implementation(self.fid_patch))

    # ---- queries --------------------------------------------------------------------------
    def status(self) -> dict[str, MetricStatus]:
        """Status of every requested metric (resolving backends on first call)."""
        self._resolve()
        return dict(self._status)

    def impl(self, name: str) -> str | None:
        """Implementation id of an available metric, else ``None``."""
        st = self.status().get(name)
        return st.impl if st is not None and st.available else None

    @property
    def fid_available(self) -> bool:
        return self.impl("fid") is not None

    @property
    def fid_id(self) -> str:
        """Identifier of the FID feature extractor + patch protocol (for caches)."""
        return f"fid-p{self.fid_patch}"

    def compute(self, x: np.ndarray, y: np.ndarray, only: Iterable[str] | None = None) -> dict[str, float | None]:
        """Per-image metrics of original ``x`` and reconstruction ``y`` (uint8 ``(H, W, 3)``)."""
        self._resolve()
        names = self.metrics if only is None else [n for n in self.metrics if n in set(only)]
        out: dict[str, float | None] = {}
        for name in names:
            fn = self._fns.get(name)
            out[name] = None if fn is None else fn(x, y)
        return out

    def patch_features(self, img: np.ndarray) -> np.ndarray:
        """FID features ``[N, D]`` of the ``fid_patch`` patches of one image."""
        import torch  # noqa: PLC0415

        if not self.fid_available:
            raise EvalError("FID is not available: " + self.status()["fid"].reason)
        extractor = self._fid["extractor"]
        with torch.no_grad():
            patches = self._fid["patches"](_to_tensor(img), patch=self.fid_patch)  # [N, 3, p, p]
            feats = []
            for i in range(0, int(patches.shape[0]), self.batch):
                f = extractor(patches[i : i + self.batch])
                feats.append(f.detach().cpu().double().numpy() if hasattr(f, "detach") else np.asarray(f))
        if not feats:
            return np.zeros((0, 0))
        return np.concatenate(feats, axis=0)

    def set_metrics(self, real: Sequence[np.ndarray], fake: Sequence[np.ndarray]) -> dict[str, float | None]:
        """FID and KID between the stacked patch features of originals and reconstructions."""
        r = np.concatenate(list(real), axis=0)
        f = np.concatenate(list(fake), axis=0)
        out: dict[str, float | None] = {"n_patches": float(r.shape[0])}
        if r.shape[0] < 2 or f.shape[0] < 2:
            return {**out, "fid": None, "kid": None}
        out["fid"] = _scalar(self._fid["fid"](r, f))
        kid = self._fid["kid"](r, f)
        if isinstance(kid, tuple):
            kid = kid[0]
        elif hasattr(kid, "mean") and not callable(kid.mean):  # mrt.metrics.KIDResult
            kid = kid.mean
        out["kid"] = _scalar(kid)
        return out

    def describe(self) -> dict[str, str]:
        """``{metric: implementation or 'unavailable: reason'}`` for result metadata."""
        return {k: (v.impl if v.available else f"unavailable: {v.reason}") for k, v in self.status().items()}
