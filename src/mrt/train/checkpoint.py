"""Training checkpoints: atomic writes, discovery, RNG capture, weight export.

A checkpoint ``out_dir/checkpoints/step_00001000.pt`` is a ``torch.save`` dict (loadable with
``torch.load(weights_only=True)``):

- ``format`` = ``"mrt-train"``, ``version`` = 1, ``step`` (completed optimizer steps)
- ``task`` (the task name), ``task_state`` (the task's full ``state_dict``, CPU tensors)
- ``ema_state`` (``{"decay", "start", "shadow": {param name: fp32 tensor}}``) or ``None``
- ``optimizer``, ``scheduler`` (their ``state_dict``)
- ``rng``: list indexed by rank of ``{"python", "numpy", "torch", "cuda"}`` states
- ``data``: ``{"seed", "next_step", "batch_size", "world_size"}``: the stream position
- ``world_size``, ``elapsed_s`` (cumulative training seconds), ``replica_sha256`` (per-rank digest
  of the trainable parameters; all equal unless the replicas diverged)
- ``config``: the resolved :class:`~mrt.train.config.TrainConfig` as a dict
- ``git_rev`` (``git rev-parse HEAD`` or ``"unknown"``), ``git_dirty`` (bool or ``None``)
- ``torch_version``, ``saved_at`` (ISO time)
"""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mrt.errors import MRTError
from mrt.io import atomic_write

CKPT_DIR = "checkpoints"
_CKPT_RE = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    """``out_dir/checkpoints/step_XXXXXXXX.pt``."""
    return Path(out_dir) / CKPT_DIR / f"step_{step:08d}.pt"


def list_checkpoints(out_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in ``out_dir``, oldest first."""
    folder = Path(out_dir) / CKPT_DIR
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _CKPT_RE.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``out_dir`` (``None`` when there is none)."""
    found = list_checkpoints(out_dir)
    return found[-1][1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the latest checkpoint of a run folder."""
    p = Path(path)
    if p.is_dir():
        latest = latest_checkpoint(p)
        if latest is None:
            raise MRTError(f"no checkpoint in run folder {p}")
        return latest
    if not p.is_file():
        raise MRTError(f"checkpoint not found: {p}")
    return p


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically (:func:`mrt.io.atomic_write`), replacing an older file of that name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, force=True) as f:
        torch.save(payload, f)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (a file, or a run folder's latest) with ``weights_only=True``."""
    p = resolve_checkpoint(path)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file becomes one clear error
        raise MRTError(f"cannot read checkpoint {p}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or "task_state" not in ckpt:
        raise MRTError(f"{p} is not an mrt training checkpoint")
    return ckpt


def prune_checkpoints(out_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` newest checkpoints (0 keeps all); returns what was deleted."""
    if keep_last <= 0:
        return []
    found = list_checkpoints(out_dir)
    doomed = [p for _, p in found[:-keep_last]]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


# --------------------------------------------------------------------------- RNG


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy (legacy global), torch CPU and CUDA generator states, as weights-only types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def seed_everything(seed: int) -> None:
    """Seed python, numpy (legacy global) and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- provenance


def git_info(start: str | Path | None = None) -> tuple[str, bool | None]:
    """(``git rev-parse HEAD``, dirty flag) of the repository holding ``start`` (this package),
    or (``"unknown"``, ``None``) outside a repository / without commits / without git."""
    cwd = Path(start) if start is not None else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return (rev or "unknown"), bool(status.strip())


def params_digest(named: list[tuple[str, Tensor]]) -> str:
    """sha256 over names and exact bytes of tensors (to compare DDP replicas)."""
    h = hashlib.sha256()
    for name, t in named:
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- weights out / in


def task_weights(ckpt: dict[str, Any], use_ema: bool = True) -> dict[str, Tensor]:
    """The task ``state_dict`` of a checkpoint; with ``use_ema`` (and an EMA present) the trainable
    parameters are replaced by their averages (cast to the parameters' dtype). Buffers and frozen
    parameters are taken as saved."""
    state = dict(ckpt["task_state"])
    ema = ckpt.get("ema_state")
    if use_ema and ema is not None:
        for name, t in ema["shadow"].items():
            if name in state:
                state[name] = t.to(state[name].dtype)
    return state


def export_weights(path: str | Path, use_ema: bool = True, prefix: str = "") -> dict[str, Tensor]:
    """Release helper: the (EMA) task weights of a checkpoint file or run folder.

    With ``prefix="model."`` only keys under that prefix are kept, with the prefix stripped
    (e.g. to load the codec model that the task holds as ``self.model``).
    """
    state = task_weights(load_checkpoint(path), use_ema=use_ema)
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state


_SLIM_DROP = ("optimizer", "scheduler", "rng", "ema_state", "replica_sha256")


def _weights_only(ckpt: dict[str, Any], state: dict[str, Tensor], **derived: Any) -> dict[str, Any]:
    """A checkpoint payload that keeps ``ckpt``'s config, step, git revision and timing with
    ``state`` as its task weights and no optimizer, RNG or EMA (it releases, it does not resume);
    ``derived`` says how it was made (``slim``, ``average``)."""
    payload = {k: v for k, v in ckpt.items() if k not in _SLIM_DROP}
    payload["task_state"] = state
    payload["ema_state"] = None
    payload.update(derived)
    return payload


def slim_checkpoint(
    src: str | Path,
    dst: str | Path,
    prefix: str = "model.",
    use_ema: bool = True,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write a weights-only copy of a checkpoint: the (EMA) tensors under ``prefix`` as
    ``task_state``, with config, step, git revision and timing kept; no optimizer, RNG or EMA.

    What a leased machine sends back (a full checkpoint carries the optimizer and EMA, about
    6x the model). ``mrt release`` and ``run.init_from`` accept it; it cannot be resumed.
    ``dtype`` casts the floating-point tensors (``torch.float16`` halves the file; released model
    files store float16 anyway).
    """
    ckpt = load_checkpoint(src)
    state = task_weights(ckpt, use_ema=use_ema)
    kept = {k: v.detach().cpu().contiguous() for k, v in state.items() if k.startswith(prefix)}
    if dtype is not None:
        kept = {k: v.to(dtype) if v.is_floating_point() else v for k, v in kept.items()}
    slim = {"source": str(resolve_checkpoint(src)), "prefix": prefix, "ema": use_ema, "dtype": str(dtype)}
    return save_checkpoint(dst, _weights_only(ckpt, kept, slim=slim))


def average_checkpoints(
    sources: Sequence[str | Path],
    dst: str | Path,
    weights: Sequence[float] | None = None,
    prefix: str = "model.",
    use_ema: bool = True,
) -> Path:
    """Write a weights-only checkpoint whose tensors under ``prefix`` are the weighted mean of the
    sources' (EMA) tensors: a "model soup" of fine-tunings that share a start (Wortsman et al.,
    ICML 2022). The sources must be of the same task with the same tensor names and shapes; the
    first one's config, step and git revision are kept, and ``average`` records what was mixed.
    ``mrt release`` and ``run.init_from`` accept the result, like a slim checkpoint."""
    if not sources:
        raise MRTError("average_checkpoints: no source checkpoint")
    w = [1.0 / len(sources)] * len(sources) if weights is None else [float(x) for x in weights]
    if len(w) != len(sources) or any(x < 0 for x in w) or abs(sum(w) - 1.0) > 1e-6:
        raise MRTError(f"average_checkpoints: need one non-negative weight per source, summing to 1 (got {list(w)})")
    ckpts = [load_checkpoint(p) for p in sources]
    tasks = {c.get("task") for c in ckpts}
    if len(tasks) != 1:
        raise MRTError(f"average_checkpoints: sources of different tasks {sorted(map(str, tasks))}")
    states = [{k: v for k, v in task_weights(c, use_ema=use_ema).items() if k.startswith(prefix)} for c in ckpts]
    first = states[0]
    for p, st in zip(sources[1:], states[1:]):
        if st.keys() != first.keys() or any(st[k].shape != first[k].shape for k in first):
            raise MRTError(f"average_checkpoints: {p} does not have the tensors of {sources[0]}")
    mixed: dict[str, Tensor] = {}
    for k, v in first.items():
        if v.is_floating_point():
            mixed[k] = sum(wi * st[k].double() for wi, st in zip(w, states)).to(v.dtype)  # type: ignore[union-attr]
        else:
            mixed[k] = v.clone()  # integer buffers (counters) are taken from the first source
    average = {"sources": [str(resolve_checkpoint(p)) for p in sources], "weights": w, "ema": use_ema}
    return save_checkpoint(dst, _weights_only(ckpts[0], mixed, average=average))


@dataclass
class LoadReport:
    """What :func:`load_matching` did: loaded keys and the keys it could not match."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    def summary(self, limit: int = 8) -> str:
        """Human-readable one-paragraph summary."""

        def show(keys: list[str]) -> str:
            more = f", ... (+{len(keys) - limit})" if len(keys) > limit else ""
            return ", ".join(keys[:limit]) + more

        parts = [f"loaded {len(self.loaded)} tensors"]
        if self.missing:
            parts.append(f"missing (kept as initialised) {len(self.missing)}: {show(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected (ignored) {len(self.unexpected)}: {show(self.unexpected)}")
        if self.mismatched:
            parts.append(f"shape mismatch (ignored) {len(self.mismatched)}: {show(self.mismatched)}")
        return "; ".join(parts)


@torch.no_grad()
def load_matching(module: nn.Module, state: dict[str, Tensor]) -> LoadReport:
    """Load every tensor of ``state`` whose name and shape exist in ``module`` (non-strict).

    A submodule with an ``upgrade_state(prefix, state)`` method first rewrites the tensors of an
    older layout of itself (e.g. ``mrt.models.generator.LatentDecoder``)."""
    state = dict(state)
    for name, sub in module.named_modules():
        upgrade = getattr(sub, "upgrade_state", None)
        if callable(upgrade):
            upgrade(f"{name}." if name else "", state)
    own = module.state_dict()
    report = LoadReport()
    usable: dict[str, Tensor] = {}
    for k, v in state.items():
        if k not in own:
            report.unexpected.append(k)
        elif tuple(own[k].shape) != tuple(v.shape):
            report.mismatched.append(f"{k} {tuple(v.shape)}->{tuple(own[k].shape)}")
        else:
            usable[k] = v
    report.missing = [k for k in own if k not in state]
    module.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    return report
