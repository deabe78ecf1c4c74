"""Codec speed and memory, old path vs new path, through the API and the CLI (issue 10; run on demand).

    nice -n 10 .venv/bin/python benchmarks/bench_codec.py                       # the full run (30-60 min)
    .venv/bin/python benchmarks/bench_codec.py --sizes 768x512 --no-cli --repeat 1   # a quick look

Paths, measured in the same run, interleaved (old, new, old, new, ...), so that the speed-up is
a ratio that the load of a shared machine changes little:
  * OLD: the ``mrt-s`` model file (``--model``; TAEF2 encoder and TAEF2-architecture RGB decoder)
    with ``precision="fp32"``;
  * NEW: a model file (``--new``; default: the shipped default model, ``mrt-s2``: light analysis
    and light RGB decoder) with the default inference settings (``precision="auto"``). With
    ``--light CHECKPOINT`` instead, NEW is the OLD model with the light RGB decoder of a
    ``distill_light`` checkpoint or run folder (written to a temporary model file with the
    release machinery), or with ``--light random`` a random light decoder (speed does not
    depend on the weights).

Every measurement is its own process (so its peak RSS is its own): API = the model loaded
once, then one encode and one decode of the image timed, with the time of each stage
(analysis, transformer, RCM + coding, latent decoder, RGB decoder); CLI = ``mrt compress`` and
``mrt decompress`` as a user runs them (one process per call, start-up and model loading
included). Images are coded at their own scale (``scale=1``). Best of ``--repeat`` processes
(1 at 4K). Results: printed, appended as JSON lines to ``--json``, and written between the
``bench_codec`` markers of ``--out`` (the rest of that file is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench_codec:begin -->", "<!-- bench_codec:end -->"
STAGES = ("analysis", "transformer", "rcm", "latent_dec", "rgb_dec")


def test_image(h: int, w: int) -> Any:
    """A deterministic synthetic uint8 [h, w, 3] image (gradients and an xor pattern)."""
    import numpy as np

    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x ^ y) & 255], -1).astype(np.uint8)


# ----- the worker (one process per API measurement) -----
class StageTimers:
    """Wall time per stage of one encode or decode, by wrapping the model's stage methods."""

    def __init__(self, model: Any) -> None:
        self.t = dict.fromkeys(STAGES, 0.0)
        for attr, stage in (("analyse", "analysis"), ("quantize", "transformer"),
                            ("synthesize_latent", "latent_dec"), ("render", "rgb_dec")):
            setattr(model, attr, self._timed(getattr(model, attr), stage))
        for attr in ("encode", "decode"):
            setattr(model.rcm, attr, self._timed(getattr(model.rcm, attr), "rcm"))
        start: list[float] = []
        model.decoder.register_forward_pre_hook(lambda *_: start.append(time.perf_counter()))
        model.decoder.register_forward_hook(lambda *_: self._add("transformer", start.pop()))

    def _add(self, stage: str, t0: float) -> None:
        self.t[stage] += time.perf_counter() - t0

    def _timed(self, fn: Any, stage: str) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._add(stage, t0)

        return run

    def take(self) -> dict[str, float]:
        out, self.t = self.t, dict.fromkeys(STAGES, 0.0)
        return out


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Load the model once, then time one encode and one decode of the test image."""
    import resource

    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(spec["threads"])
    from mrt.codec import Codec

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    codec = Codec.load(spec["model"], precision=spec["precision"])
    t_load = time.perf_counter() - t0
    img = test_image(spec["h"], spec["w"])
    codec.decompress(codec.compress(img[:64, :64], scale=1))  # warm-up (allocator, lazy init)
    timers = StageTimers(codec.model)
    t0 = time.perf_counter()
    data = codec.compress(img, scale=1)
    enc_s, enc_stages = time.perf_counter() - t0, timers.take()
    t0 = time.perf_counter()
    out = codec.decompress(data)
    dec_s, dec_stages = time.perf_counter() - t0, timers.take()
    assert out.shape == img.shape
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"kind": "api", **spec, "bytes": len(data), "enc_s": enc_s, "dec_s": dec_s, "enc_stages": enc_stages,
            "dec_stages": dec_stages, "peak_rss_mb": rss, "import_s": t_import, "load_s": t_load,
            "plan": codec.conv_plan.name}


# ----- the driver -----
def light_model_file(folder: Path, light: str, shipped: Path) -> Path:
    """Write the NEW path's model file: the shipped model with a light RGB decoder."""
    import dataclasses

    import torch

    from mrt.models.modelfile import load_model_file, save_model_file

    base, info, _ = load_model_file(shipped)
    if light == "random":
        from mrt.models.codec_model import MRTCodecModel

        cfg = dataclasses.replace(base.cfg, target=dataclasses.replace(base.cfg.target, pixel_generator="light"))
        torch.manual_seed(0)
        model = MRTCodecModel(cfg)
        rest = {k: v for k, v in base.state_dict().items() if not k.startswith("generator.rgb_decoder.")}
        model.load_state_dict(rest, strict=False)
        source = "random light decoder"
    else:
        from mrt.train.checkpoint import resolve_checkpoint
        from mrt.train.tasks import codec_model_from_checkpoint

        ckpt = resolve_checkpoint(light)
        model, _ = codec_model_from_checkpoint(ckpt)
        source = str(ckpt)
    variants = {v.name.replace(info.path.stem, info.path.stem + "-light"): v.k_code for v in info.variants}
    default = info.default_variant.replace(info.path.stem, info.path.stem + "-light")
    path = folder / f"{info.path.stem}-light.mrtm"
    save_model_file(model, path, variants, default, description=f"benchmark: {source}")
    print(f"NEW model file {path} (light decoder: {source})", flush=True)
    return path


def run_worker(spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    res = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                         text=True, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_cli(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one ``mrt`` process."""
    exe = Path(sys.executable).with_name("mrt")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "mrt.cli.main"]
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd + argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{cmd + argv} failed: {err.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def cli_pair(path: dict[str, str], h: int, w: int, folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """``mrt compress`` then ``mrt decompress`` of the test image with one path's model and precision."""
    from mrt.io import save_image

    png = folder / f"img_{w}x{h}.png"
    if not png.exists():
        save_image(test_image(h, w), png)
    mrt_file, out = folder / f"{path['name']}_{w}x{h}.mrt", folder / f"{path['name']}_{w}x{h}.png"
    precision = ["--precision", path["precision"]]
    enc = run_cli(["compress", str(png), "-o", str(mrt_file), "-m", path["model"], "--scale", "1", "-q", "-f",
                   *precision], env)
    dec = run_cli(["decompress", str(mrt_file), "-o", str(out), "-q", "-f", *precision], env)
    return {"kind": "cli", "name": path["name"], "h": h, "w": w, "enc_s": enc[0], "enc_rss_mb": enc[1],
            "dec_s": dec[0], "dec_rss_mb": dec[1], "bytes": mrt_file.stat().st_size}


def measure(args: argparse.Namespace, paths: list[dict[str, str]], folder: Path, env: dict[str, str]) -> list[dict]:
    """All measurements, interleaved old/new within each size and repeat."""
    rows: list[dict[str, Any]] = []

    def keep(row: dict[str, Any]) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")

    for size in args.sizes:
        w, h = (int(v) for v in size.split("x"))
        repeat = 1 if w * h > 4_000_000 else args.repeat
        for threads in [args.threads] + ([1] if size in args.single_thread else []):
            for _ in range(repeat):
                for p in paths:
                    spec = {"name": p["name"], "model": p["model"], "precision": p["precision"], "h": h, "w": w,
                            "threads": threads}
                    keep(run_worker(spec, env))
        for _ in range(0 if args.no_cli else repeat):
            for p in paths:
                keep(cli_pair(p, h, w, folder, env))
    return rows


# ----- the report -----
def best(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    """The fastest encode and the fastest decode (each with its stages) among the matching rows."""
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    if not found:
        return None
    enc, dec = min(found, key=lambda r: r["enc_s"]), min(found, key=lambda r: r["dec_s"])
    peak = max(max(r.get("peak_rss_mb", 0), r.get("enc_rss_mb", 0), r.get("dec_rss_mb", 0)) for r in found)
    return {**enc, "dec_s": dec["dec_s"], "dec_stages": dec.get("dec_stages"), "peak": peak, "n": len(found)}


def speed_table(rows: list[dict[str, Any]], sizes: list[str], **match: Any) -> list[str]:
    lines = ["| size | encode old s | encode new s | speed-up | decode old s | decode new s | speed-up "
             "| peak MB old | peak MB new | new enc / dec us/px | runs |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for size in sizes:
        w, h = (int(v) for v in size.split("x"))
        old, new = best(rows, name="old", h=h, w=w, **match), best(rows, name="new", h=h, w=w, **match)
        if old is None or new is None:
            continue
        px = w * h / 1e6
        lines.append(
            f"| {size} | {old['enc_s']:.2f} | {new['enc_s']:.2f} | {old['enc_s'] / new['enc_s']:.1f}x "
            f"| {old['dec_s']:.2f} | {new['dec_s']:.2f} | {old['dec_s'] / new['dec_s']:.1f}x "
            f"| {old['peak']:.0f} | {new['peak']:.0f} | {new['enc_s'] / px:.2f} / {new['dec_s'] / px:.2f} "
            f"| best of {min(old['n'], new['n'])} |"
        )
    return lines


def stage_table(rows: list[dict[str, Any]], sizes: list[str], threads: int) -> list[str]:
    lines = ["| size | path | op | total s | analysis | transformer | RCM + coding | latent decoder | RGB decoder "
             "| other |", "|---|---|---|---|---|---|---|---|---|---|"]
    for size in sizes:
        w, h = (int(v) for v in size.split("x"))
        for name in ("old", "new"):
            b = best(rows, kind="api", name=name, h=h, w=w, threads=threads)
            if b is None:
                continue
            for op in ("enc", "dec"):
                st, total = b[f"{op}_stages"], b[f"{op}_s"]
                cells = " | ".join(f"{st[s]:.2f}" if st[s] else "-" for s in STAGES)
                lines.append(f"| {size} | {name} | {op}ode | {total:.2f} | {cells} | {total - sum(st.values()):.2f} |")
    return lines


def report(args: argparse.Namespace, rows: list[dict[str, Any]], source: str) -> str:
    api = [r for r in rows if r["kind"] == "api"]
    loads = [f"{r['load_s']:.2f}" for r in api if r["threads"] == args.threads]
    plans = sorted({f"{r['name']}: {r['precision']} -> {r['plan']}" for r in api})
    out = [
        BEGIN,
        f"Run of {time.strftime('%Y-%m-%d %H:%M')}, `benchmarks/bench_codec.py`; CPU: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} logical cores; load average at the start {args.load_start}, at the end "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}. {source}, default settings. Conv plans: {'; '.join(plans)}. "
        f"OMP_WAIT_POLICY={args.omp_wait or '(default)'}.",
        "",
        f"**API, {args.threads} threads** (model loaded once; one encode + one decode per process):",
        "",
        *speed_table(rows, args.sizes, kind="api", threads=args.threads),
    ]
    if any(r["kind"] == "api" and r["threads"] == 1 for r in rows):
        out += ["", "**API, 1 thread:**", "", *speed_table(rows, args.sizes, kind="api", threads=1)]
    if any(r["kind"] == "cli" for r in rows):
        out += ["", "**CLI** (`mrt compress` / `mrt decompress`, one process per call, start-up and model "
                "loading included; peak = the larger of the two processes):", "",
                *speed_table(rows, args.sizes, kind="cli")]
    out += ["", f"**Stages, API, {args.threads} threads** (seconds; other = image checks, padding, container, "
            "uint8 conversion):", "", *stage_table(rows, args.sizes, args.threads)]
    if any(r["kind"] == "api" and r["threads"] == 1 for r in rows):
        out += ["", "**Stages, API, 1 thread:**", "", *stage_table(rows, args.sizes, 1)]
    out += ["", f"Model loading (`Codec.load`, s, per API process): {', '.join(loads)}.", END]
    return "\n".join(out)


def write_between_markers(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", nargs="+", default=["768x512", "1920x1080", "3840x2160"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--single-thread", nargs="*", default=["768x512", "1920x1080"],
                    help="sizes also measured with 1 thread (API)")
    ap.add_argument("--repeat", type=int, default=2, help="processes per path and size (1 above 4 Mpx)")
    ap.add_argument("--no-cli", action="store_true")
    ap.add_argument("--model", default="mrt-s", help="OLD path's model (name or file; default: %(default)s)")
    ap.add_argument("--new", default=None, help="NEW path's model (name or file; default: the shipped default)")
    ap.add_argument("--light", default=None, help="instead of --new: the OLD model with the light RGB decoder of "
                    "this distill_light checkpoint or run folder, or 'random'")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--json", default=None, help="also append every measurement as a JSON line here")
    ap.add_argument("--omp-wait", default="PASSIVE", help="OMP_WAIT_POLICY of every process, as `mrt` sets it "
                    "('' = the OpenMP default, spinning)")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    from mrt.catalog import resolve

    args.load_start = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    shipped = resolve(args.model)[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        light = light_model_file(folder, args.light, shipped) if args.light else resolve(args.new)[0]
        if light == shipped:
            raise SystemExit(f"OLD and NEW are the same model file ({shipped}): name another with --new or --light")
        # both files installed for the processes (the CLI decodes by the model id in the file)
        env = dict(os.environ, MRT_MODEL_PATH=os.pathsep.join([str(folder), str(shipped), str(light),
                                                               os.environ.get("MRT_MODEL_PATH", "")]))
        if args.omp_wait:
            env["OMP_WAIT_POLICY"] = args.omp_wait
        paths = [{"name": "old", "model": str(shipped), "precision": "fp32"},
                 {"name": "new", "model": str(light), "precision": "auto"}]
        rows = measure(args, paths, folder, env)
    if args.light:
        source = "OLD with a light RGB decoder, " + ("random weights" if args.light == "random" else f"distilled, {Path(args.light).name}")
    else:
        source = light.name
    block = report(args, rows, f"OLD = {shipped.name}, fp32; NEW = {source}")
    print(block)
    write_between_markers(Path(args.out), block)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
