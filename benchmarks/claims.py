"""The paper's two claims, tested at the scale of this machine (issue 12): one command.

    .venv/bin/python benchmarks/claims.py run                 # train, release, evaluate, ERF, report
    .venv/bin/python benchmarks/claims.py run --jobs 2        # two trainings at a time (1 thread each)
    .venv/bin/python benchmarks/claims.py report              # tables + RD plots from the cached results

``run`` does, skipping every step whose output exists (so an interrupted run continues):

1. the shared starting point: stage 0 (``configs/claims/stage0.yaml`` -> ``runs/claims/stage0``);
2. every variant from it, with the same steps x batch, data, crops and losses
   (``configs/claims/<variant>.yaml``): MRT (a) global Bi-RWKV + windowed ViT (the paper),
   (b) no cross-window mixing, (c) global ViT attention, (d) (a) with a context-free factorised
   prior instead of the RCM's spatial-channel context, and the 2-D latent codec;
3. ``mrt release`` of each (``runs/claims/<variant>.mrtm``, rate points nested in one file);
4. ``mrt eval`` on Kodak through real files (``docs/results/claims/json/<variant>.json``,
   bitstreams under ``cache/eval-claims``);
5. the effective receptive fields of (a), (b), (c) on kodim09 (``benchmarks/erf.py``);
6. ``report``: the BD-rate tables (MRT against the 2-D codec, every ablation against MRT), the
   budget, parameters and decode time of each run, and RD plots, into
   ``docs/results/claims/README.md`` between the ``generated`` markers (the text around them,
   the conclusions, is written by hand and kept).

Budgets, wall times and parameter counts of the training runs are recorded in
``docs/results/claims/runs.json`` when they finish.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs/results/claims"
RUNS = ROOT / "runs/claims"
KODAK = ROOT.parent / "shared/data/kodak"
START, END = "<!-- generated:start -->", "<!-- generated:end -->"


@dataclass(frozen=True)
class Variant:
    """One trained model of the comparison."""

    key: str  # result-set name, run folder and config name
    label: str
    config: str
    tokens: tuple[int, ...]  # rate points released and evaluated (tokens per window; channel groups for 2-D)
    mixing: str = ""  # shown in the ERF figure when set


STAGE0 = "stage0"
VARIANTS = (
    Variant("mrt_birwkv", "(a) MRT: global Bi-RWKV + windowed ViT (paper)", "mrt_birwkv", (8, 16, 32), "birwkv"),
    Variant("mrt_none", "(b) MRT: no cross-window mixing", "mrt_none", (8, 16, 32), "none"),
    Variant("mrt_global_vit", "(c) MRT: global ViT instead of Bi-RWKV", "mrt_global_vit", (8, 16, 32), "global_vit"),
    Variant("mrt_factorized", "(d) MRT (a) with a factorised prior (no RCM context)", "mrt_factorized", (8, 16, 32)),
    Variant("latent2d", "2-D latent codec (checkerboard x channel-group context)", "latent2d", (1, 2, 4)),
)
ANCHOR = "mrt_birwkv"
BD_PAIRS = (("mrt_birwkv", "latent2d"), ("mrt_none", "mrt_birwkv"), ("mrt_global_vit", "mrt_birwkv"),
            ("mrt_factorized", "mrt_birwkv"))  # (test, anchor)


class ClaimsError(Exception):
    """A step of the comparison failed (one line for the user)."""


def _mrt() -> list[str]:
    exe = Path(sys.executable).with_name("mrt")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "mrt"]


def _run(cmd: Sequence[str], threads: int, log: Path | None = None) -> float:
    """Run one command (``threads`` torch/OpenMP threads) from the repository root; its wall time."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    if log is None:
        rc = subprocess.run(list(cmd), cwd=ROOT, env=env, check=False).returncode
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            rc = subprocess.run(list(cmd), cwd=ROOT, env=env, check=False, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise ClaimsError(f"command failed ({rc}): {' '.join(cmd)}" + (f" (log: {log})" if log else ""))
    return time.perf_counter() - t0


def _config(name: str) -> Path:
    return ROOT / "configs/claims" / f"{name}.yaml"


def _resolved(name: str) -> dict:
    """The resolved training config of a variant (``mrt train --print-config``)."""
    import yaml  # noqa: PLC0415

    out = subprocess.run([*_mrt(), "train", str(_config(name)), "--print-config"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return yaml.safe_load(out)


def _final_checkpoint(cfg: dict) -> Path | None:
    """The last checkpoint of a resolved config's run, if it exists."""
    path = ROOT / cfg["run"]["out_dir"] / "checkpoints" / f"step_{cfg['run']['steps']:08d}.pt"
    return path if path.is_file() else None


def _record(key: str, entry: dict) -> None:
    path = OUT / "runs.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = entry
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def train(name: str, threads: int) -> None:
    """Train one config unless its final checkpoint exists; record its budget and wall time."""
    cfg = _resolved(name)
    if _final_checkpoint(cfg) is not None:
        print(f"[claims] {name}: trained", file=sys.stderr)
        return
    run_dir = ROOT / cfg["run"]["out_dir"]
    resume = ["run.resume=true"] if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("step_*.pt")) else []
    wall = _run([*_mrt(), "train", str(_config(name)), f"run.threads={threads}", *resume], threads,
                log=RUNS / f"{name}.log")
    _record(name, {
        "config": f"configs/claims/{name}.yaml", "task": cfg["task"], "steps": cfg["run"]["steps"],
        "batch": cfg["data"]["batch_size"], "crop": cfg["data"]["crop"],
        "images_seen": cfg["run"]["steps"] * cfg["data"]["batch_size"], "lr": cfg["optim"]["lr"],
        "wall_s": round(wall, 1), "resumed": bool(resume), "threads": threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs ({platform.processor() or 'cpu'})",
        "finished": time.strftime("%Y-%m-%d %H:%M"),
    })


def model_file(v: Variant) -> Path:
    return RUNS / f"{v.key}.mrtm"


def release(v: Variant) -> None:
    if model_file(v).is_file():
        return
    _run([*_mrt(), "release", str(RUNS / v.key), "-o", str(model_file(v)), "--name", f"claims-{v.key.replace('_', '-')}",
          "--tokens", ",".join(map(str, v.tokens)), "--description", f"issue 12 comparison: {v.label}"], 1)


def evaluate(v: Variant, kodak: Path, threads: int, limit: int | None) -> None:
    out = OUT / "json" / f"{v.key}.json"
    if out.is_file():
        return
    name = f"claims-{v.key.replace('_', '-')}"
    models = [a for k in v.tokens for a in ("--model", f"{model_file(v)}#{name}-k{k}")]
    _run([*_mrt(), "eval", str(kodak), *models, "--name", v.key, "--description", v.label, "--no-fid",
          "--bitstreams", "cache/eval-claims", "-o", str(out), "--threads", str(threads),
          *(["--limit", str(limit)] if limit else [])], threads)


def erf_figure(kodak: Path) -> None:
    out = OUT / "erf_kodim09.png"
    if out.is_file():
        return
    mixers = [v for v in VARIANTS if v.mixing]
    models = ",".join(f"{model_file(v)}#claims-{v.key.replace('_', '-')}-k32" for v in mixers)
    log = OUT / "erf_kodim09.txt"
    _run([sys.executable, "benchmarks/erf.py", "--image", str(kodak / "kodim09.png"), "--models", models,
          "--target", "tokens", "--wrt", "latent", "-o", str(out)], 2, log=log)


def cmd_run(args: argparse.Namespace) -> int:
    chosen = [v for v in VARIANTS if not args.only or v.key in args.only]
    train(STAGE0, args.threads)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(lambda v: train(v.config, args.threads), chosen))
    for v in chosen:
        release(v)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(lambda v: evaluate(v, args.kodak, args.threads, args.limit), chosen))
    if not args.only or all(v.key in args.only for v in VARIANTS if v.mixing):
        erf_figure(args.kodak)
    return cmd_report(args)


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def _params(path: Path) -> tuple[int, int]:
    """(all parameters, parameters outside the frozen TAEF2 analysis and RGB decoder) of a model file."""
    from mrt.models.modelfile import load_model_file  # noqa: PLC0415

    model = load_model_file(path)[0]
    total = sum(p.numel() for p in model.parameters())
    frozen = sum(p.numel() for p in model.analysis.parameters()) + sum(
        p.numel() for p in model.generator.rgb_decoder.parameters())
    return total, total - frozen


def report_markdown(runs: dict, params: dict[str, tuple[int, int]]) -> list[str]:
    """The generated part of README.md: budgets, rate points, BD-rates."""
    from mrt.eval.report import bd_table  # noqa: PLC0415
    from mrt.eval.schema import load_results  # noqa: PLC0415

    results = {rs.name: rs for rs in load_results(OUT / "json")}
    lines = [f"Generated by `benchmarks/claims.py report` on {time.strftime('%Y-%m-%d %H:%M')} from "
             "`docs/results/claims/json/` and `runs.json`; do not edit between the markers.", ""]
    s0 = runs.get(STAGE0)
    if s0:
        lines += [f"Shared starting point: stage 0, {s0['steps']} steps x batch {s0['batch']} "
                  f"({s0['crop']}-px crops), {s0['wall_s'] / 60:.1f} min on {s0['machine']}, {s0['threads']} thread(s).", ""]
    lines += ["| variant | budget (steps x batch) | train wall | params (trainable part*) | mean decode s | "
              "points: bpp / DISTS / LPIPS / PSNR |", "|---|---|---|---|---|---|"]
    for v in VARIANTS:
        r, rs = runs.get(v.config), results.get(v.key)
        if r is None and rs is None:
            continue
        p = params.get(v.key)
        pts = "; ".join(f"{pt.bpp:.4f} / {pt.dists:.3f} / {pt.lpips:.3f} / {pt.psnr:.2f}"
                        for pt in rs.points if None not in (pt.dists, pt.lpips, pt.psnr)) if rs else "–"
        dec = [pt.dec_s for pt in rs.points if pt.dec_s is not None] if rs else []
        lines.append(" | ".join([
            f"| {v.label}",
            f"{r['steps']} x {r['batch']}" if r else "–",
            f"{r['wall_s'] / 60:.1f} min" if r else "–",
            f"{p[0] / 1e6:.2f} M ({p[1] / 1e6:.2f} M)" if p else "–",
            f"{sum(dec) / len(dec):.2f}" if dec else "–",
            pts + " |"]))
    lines += ["", "\\* without the frozen TAEF2 analysis (encoder) and RGB decoder, which every variant shares.", ""]
    lines += ["BD-rate of the test against the anchor over their overlapping bpp range (negative: the test "
              "needs fewer bits for the same quality), with that range:", "",
              "| test | anchor | DISTS | LPIPS | PSNR |", "|---|---|---|---|---|"]
    for test, anchor in BD_PAIRS:
        if test not in results or anchor not in results:
            continue
        row = bd_table([results[anchor], results[test]], anchor, metrics=("dists", "lpips", "psnr"))[test]
        cells = [f"{r.value:+.1f}% ({r.lo:.4f}-{r.hi:.4f})" if r else "no overlap" for r in row.values()]
        lines.append(f"| {test} | {anchor} | " + " | ".join(cells) + " |")
    lines += ["", "BD-rate is ill-conditioned where a quality curve is almost flat (as here: a few "
              "hundredths of DISTS over 4x the rate). The BD-metric is not: the mean quality "
              "difference test - anchor at equal bpp over the overlapping bpp range (better: "
              "negative DISTS/LPIPS, positive PSNR):", "",
              "| test | anchor | ΔDISTS | ΔLPIPS | ΔPSNR (dB) | bpp range |", "|---|---|---|---|---|---|"]
    for test, anchor in BD_PAIRS:
        if test not in results or anchor not in results:
            continue
        row = bd_table([results[anchor], results[test]], anchor, metrics=("dists", "lpips", "psnr"), kind="metric")[test]
        cells = [f"{r.value:+.3f}" if r else "n/a" for r in row.values()]
        rng = next((f"{r.lo:.4f}-{r.hi:.4f}" for r in row.values() if r), "no overlap")
        lines.append(f"| {test} | {anchor} | " + " | ".join(cells) + f" | {rng} |")
    lines += [""]
    figs = sorted(p.name for p in OUT.glob("rd_*.png"))
    if figs:
        lines += ["RD plots: " + ", ".join(f"[{f}]({f})" for f in figs) + ".", ""]
    erf_txt = OUT / "erf_kodim09.txt"
    if (OUT / "erf_kodim09.png").is_file():
        lines += ["Effective receptive fields (kodim09, one window's tokens w.r.t. the TAEF2 latent, 1% "
                  "threshold): ![ERF](erf_kodim09.png)", ""]
        if erf_txt.is_file():  # "<model path>#<variant>: mixing=... extent=... outside-window=..."
            rows = [ln.split("#")[-1] for ln in erf_txt.read_text().splitlines() if "extent=" in ln]
            lines += ["```", *rows[-3:], "```", "",
                      "extent: share of the latent cells whose gradient exceeds 1% of the peak; "
                      "outside-window: the share of those outside the window itself.", ""]
    return lines


def cmd_report(args: argparse.Namespace) -> int:
    from mrt.eval.plots import plot_rd_all  # noqa: PLC0415
    from mrt.eval.schema import load_results  # noqa: PLC0415

    runs = json.loads((OUT / "runs.json").read_text()) if (OUT / "runs.json").is_file() else {}
    params = {v.key: _params(model_file(v)) for v in VARIANTS if model_file(v).is_file()}
    for v in VARIANTS:
        if v.key in params and v.config in runs:
            runs[v.config]["params"] = params[v.key][0]
    if (OUT / "json").is_dir():
        plot_rd_all(load_results(OUT / "json"), OUT, metrics=("dists", "lpips", "psnr"), bpp_range=(0.002, 0.05))
    readme = OUT / "README.md"
    text = readme.read_text() if readme.is_file() else f"# The paper's claims at small scale (issue 12)\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        raise ClaimsError(f"{readme} lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    new = head + START + "\n" + "\n".join(report_markdown(runs, params)) + "\n" + END + tail
    tmp = readme.with_suffix(".tmp")
    tmp.write_text(new)
    tmp.replace(readme)
    print(f"wrote {readme}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train, release, evaluate, ERF, report (skips what exists)")
    r.add_argument("--jobs", type=int, default=1, help="trainings / evaluations at a time")
    r.add_argument("--threads", type=int, default=1, help="threads per process")
    r.add_argument("--only", action="append", default=None, metavar="VARIANT", help="only these variants")
    r.add_argument("--kodak", type=Path, default=KODAK)
    r.add_argument("--limit", type=int, default=None, help="only the first N Kodak images")
    sub.add_parser("report", help="tables and RD plots from the cached results")
    args = ap.parse_args(argv)
    try:
        return cmd_run(args) if args.cmd == "run" else cmd_report(args)
    except ClaimsError as e:
        print(f"claims: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
