"""Benchmark the linear-time Bi-WKV: time and peak memory of forward and forward+backward.

Every measurement runs in a fresh subprocess: the peak memory is the growth of the process's
maximum resident set size (``resource.getrusage(...).ru_maxrss``) over its value right after the
inputs were created, during the *first* call (torch's CPU allocator returns large blocks to the
OS, so this is the true peak of extra memory). Times are the minimum over ``--reps`` later calls.

    nice -n 15 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_biwkv.py --out docs/benchmarks_biwkv.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass


@dataclass
class Result:
    batch: int
    t_len: int
    channels: int
    chunk: int
    mode: str  # "fwd" (no_grad) | "fwd+bwd"
    seconds: float  # wall clock, min over reps
    cpu_seconds: float  # process CPU time, min over reps (less sensitive to a busy machine)
    peak_mib: float


def _maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def _worker(batch: int, t_len: int, channels: int, chunk: int, mode: str, reps: int) -> Result:
    import torch

    from mrt.ops.biwkv import biwkv

    g = torch.Generator().manual_seed(0)
    k = torch.randn(batch, t_len, channels, generator=g) * 3.0
    v = torch.randn(batch, t_len, channels, generator=g)
    w = torch.linspace(-5.0, 3.0, channels)  # Vision-RWKV init range
    u = torch.full((channels,), -1.2)
    if mode == "fwd+bwd":
        k.requires_grad_(True)
        v.requires_grad_(True)
        w.requires_grad_(True)
        u.requires_grad_(True)

    def step() -> None:
        if mode == "fwd":
            with torch.no_grad():
                biwkv(w, u, k, v, chunk_size=chunk)
        else:
            out = biwkv(w, u, k, v, chunk_size=chunk)
            out.backward(torch.ones_like(out))
            for x in (k, v, w, u):
                x.grad = None

    # warm up kernels/allocator on a tiny problem so the first real call measures data only
    biwkv(w[:4].detach(), u[:4].detach(), k[:, :300, :4].detach(), v[:, :300, :4].detach(), chunk_size=chunk)
    if mode == "fwd+bwd":
        ks = k[:, :300, :4].detach().clone().requires_grad_(True)
        biwkv(w[:4].detach(), u[:4].detach(), ks, v[:, :300, :4].detach(), chunk_size=chunk).sum().backward()
    base = _maxrss_mib()
    step()
    peak = _maxrss_mib() - base
    best = best_cpu = float("inf")
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return Result(batch, t_len, channels, chunk, mode, best, best_cpu, peak)


def _run(batch: int, t_len: int, channels: int, chunk: int, mode: str, reps: int) -> Result:
    cmd = [sys.executable, __file__, "--worker", json.dumps([batch, t_len, channels, chunk, mode, reps])]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return Result(**json.loads(proc.stdout.strip().splitlines()[-1]))


def _table(results: list[Result]) -> list[str]:
    lines = [
        "| B | T | C | chunk | mode | wall (s) | CPU (s) | peak extra memory (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.batch} | {r.t_len} | {r.channels} | {r.chunk} | {r.mode} | {r.seconds:.3f} | {r.cpu_seconds:.3f} "
            f"| {r.peak_mib:.0f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--lengths", type=int, nargs="+", default=[1000, 4000, 16000, 40000])
    ap.add_argument("--channels", type=int, default=192)
    ap.add_argument("--chunks", type=int, nargs="*", default=[16, 32, 64, 128, 256],
                    help="chunk sizes swept at the longest length")
    ap.add_argument("--short", default="8x256,135x290",
                    help="BxT shapes for a chunk sweep on short (windowed) sequences; '' to skip")
    ap.add_argument("--chunk", type=int, default=None, help="chunk for the length sweep (default: library default)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None, help="write a markdown report here")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(asdict(_worker(*json.loads(args.worker)))))
        return 0

    from mrt.ops.biwkv import DEFAULT_CHUNK_SIZE

    chunk = args.chunk or DEFAULT_CHUNK_SIZE
    t_max = max(args.lengths)
    sweep: list[Result] = []
    for cs in args.chunks:
        for mode in ("fwd", "fwd+bwd"):
            sweep.append(_run(1, t_max, args.channels, cs, mode, args.reps))
            print(sweep[-1], flush=True)
    short: list[Result] = []
    for shape in filter(None, args.short.split(",")):
        batch, t_len = (int(x) for x in shape.split("x"))
        for cs in args.chunks:
            for mode in ("fwd", "fwd+bwd"):
                short.append(_run(batch, t_len, args.channels, cs, mode, args.reps))
                print(short[-1], flush=True)
    lengths: list[Result] = []
    for t_len in args.lengths:
        for mode in ("fwd", "fwd+bwd"):
            lengths.append(_run(1, t_len, args.channels, chunk, mode, args.reps))
            print(lengths[-1], flush=True)

    import torch

    env = (
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(shared with a training job: wall times are noisy, CPU times are the comparable numbers), "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads={torch.get_num_threads()}, "
        f"fp32; min of {args.reps} runs after the first (memory-measured) call"
    )
    text = render(sweep, short, lengths, env, chunk)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(text)
    return 0


def _best(results: list[Result], mode: str) -> str:
    groups: dict[tuple[int, int], list[Result]] = {}
    for r in results:
        if r.mode == mode:
            groups.setdefault((r.batch, r.t_len), []).append(r)
    parts = []
    for (batch, t_len), rs in groups.items():
        best = min(rs, key=lambda r: r.cpu_seconds)
        parts.append(f"B={batch} T={t_len}: {best.chunk}")
    return "; ".join(parts)


def render(sweep: list[Result], short: list[Result], lengths: list[Result], env: str, chunk: int) -> str:
    """Markdown report of the three result groups."""
    t_max = max((r.t_len for r in sweep), default=0)
    channels = sweep[0].channels if sweep else 0
    allsweeps = sweep + short
    report = [
        "# Bi-WKV benchmark (`benchmarks/bench_biwkv.py`)",
        "",
        f"Environment: {env}.",
        "",
        "Peak memory: growth of the subprocess's max RSS during the first call (inputs excluded).",
        "`fwd` runs under `torch.no_grad()` (inference); `fwd+bwd` includes the backward pass to k, v, w,",
        "u (peak includes the autograd graph and all gradients). Inputs: `w` in [-5, 3] (Vision-RWKV",
        "init range), `u = -1.2`, `k ~ 3 N(0,1)`, so the fused fast path runs.",
        "",
        "Fastest chunk by CPU time: fwd " + _best(allsweeps, "fwd") + "; fwd+bwd " + _best(allsweeps, "fwd+bwd") + ".",
        f"Default chunk (`mrt.ops.biwkv.DEFAULT_CHUNK_SIZE`): {chunk}. The cost per token grows with the",
        "chunk L (a [L, L+2] matmul per channel, plus building C*L*(L+2) matrix entries per call, which",
        "dominates for short sequences), while small chunks pay for more, smaller operations. On long",
        "sequences 16-64 are within noise of each other; on short windowed batches (B=8, T=256) 64 is",
        "~30% and 128 ~5x slower than 32. Hence 32. For scale: one [1, 40000, 192] fp32 tensor is",
        "29 MiB, so the inference peak is ~5 such tensors and the training peak (graph + grads) ~20.",
        "",
        f"## Chunk-size sweep (B=1, T={t_max}, C={channels})",
        "",
        *_table(sweep),
        "",
        "## Chunk-size sweep, short sequences (windows folded into the batch)",
        "",
        *_table(short),
        "",
        f"## Sequence lengths (B=1, chunk={chunk})",
        "",
        *_table(lengths),
        "",
    ]
    return "\n".join(report)


if __name__ == "__main__":
    raise SystemExit(main())
