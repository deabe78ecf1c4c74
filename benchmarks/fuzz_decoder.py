"""Long fuzz run of the decoder (issue 14): N seeded mutants of small files made with the shipped
default model, plus hand-made hostile headers; outcome counts, worst time, peak memory.

The mutants are those of ``tests/_fuzz.py`` (the CI test runs a few hundred with declared sides
of at most 512 pixels; here header edits may declare any size). Cases run in a worker process
with one thread; the parent watches it: a case that takes longer than ``--timeout`` seconds is
a *hang* (the worker is killed and a new one resumes with the next case). The worker runs under
an address-space limit (``--max-gb``), so that a runaway allocation fails instead of swapping
the machine; the peak memory reported is the worker's peak resident set (``ru_maxrss``).

    nice -n 15 .venv/bin/python benchmarks/fuzz_decoder.py --n 10000 --json /tmp/fuzz.json

Results of the recorded runs: docs/fuzz.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import selectors
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/_fuzz.py: the mutations, shared with the CI test

GOLDEN = ROOT / "tests" / "data" / "golden_v1_mrt-s-k16.mrt"
SEED_SIZES = [(64, 64), (40, 136), (130, 40)]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def handmade(model_id: int, file_id: int) -> list[tuple[str, bytes]]:
    """Hostile headers from the issue: huge declared sizes on 12- and 100-byte files."""
    from mrt.bitstream import crc16

    cases = [("issue repro (65536x65536, unknown model, 12 B)", bytes.fromhex("d74d10af955affffffff0000"))]
    for side in (65536, 8192, 4096):
        dims = (side - 1).to_bytes(2, "big") * 2
        for total in (12, 100):
            for version, head in ((1, b"\xd7M\x10" + model_id.to_bytes(3, "big")),
                                  (2, b"\xd7M\x20" + file_id.to_bytes(3, "big") + b"\x0f")):
                prefix = head + dims
                body = bytes((i * 37 + 11) % 256 for i in range(max(0, total - len(prefix) - 2)))
                crc = crc16(body, crc16(prefix)).to_bytes(2, "big")
                cases.append((f"v{version} {side}x{side}, {total} B", prefix + crc + body))
    return cases


def worker(args: argparse.Namespace) -> None:
    """Run cases ``start..n-1`` (hand-made ones first, as negative indices); one JSON line each."""
    import torch

    from _fuzz import Mutant, Mutator, make_seeds, run_case
    from mrt.codec import Codec, decompress

    torch.set_num_threads(1)
    codec = Codec.load()
    seeds = make_seeds(codec, SEED_SIZES, [GOLDEN.read_bytes()])
    mutator = Mutator(codec, seeds, seed=args.seed, max_side=args.max_side or None)
    decompress(seeds[0].data)
    print(json.dumps({"ready": True, "peak_mib": _peak_mib(), "seeds": [len(s.data) for s in seeds]}), flush=True)
    made = handmade(codec.model_id, codec.file_id)
    for index in range(args.start, args.n):
        if index < 0:
            note, data = made[index + len(made)]
            mutant = Mutant(index, "handmade", note, data)
        else:
            mutant = mutator.mutant(index)
        print(json.dumps({"begin": index}), flush=True)
        out = run_case(mutant, decompress)
        print(json.dumps({"index": index, "kind": out.kind, "note": out.note, "result": out.result,
                          "detail": out.detail[:300], "seconds": out.seconds, "peak_mib": _peak_mib()}), flush=True)


def _limit_memory(max_gb: float) -> None:
    limit = int(max_gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _spawn(args: argparse.Namespace, start: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, __file__, "--worker", "--n", str(args.n), "--seed", str(args.seed),
           "--max-side", str(args.max_side), "--start", str(start)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, preexec_fn=lambda: _limit_memory(args.max_gb))


class Lines:
    """The worker's stdout, line by line, with a timeout per line (no buffering behind select's back)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.fd = proc.stdout.fileno()  # type: ignore[union-attr]
        self.buffer = b""

    def next(self, timeout: float) -> str | None:
        """The next line; "" at the end of the output; None after ``timeout`` seconds without one."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            with selectors.DefaultSelector() as sel:
                sel.register(self.fd, selectors.EVENT_READ)
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return ""
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.kill()
    return proc.wait()


def _lost(index: int, timeout: float, hang: bool, code: int) -> dict[str, object]:
    return {"index": index, "kind": "?", "note": "", "seconds": timeout, "peak_mib": 0.0,
            "result": "hang" if hang else "failure", "detail": "no answer" if hang else f"worker died ({code})"}


def supervise(args: argparse.Namespace) -> dict[str, object]:
    """Run every case through (re)started workers; returns the report."""
    start, records, startup = -len(handmade(0, 0)), [], []
    while start < args.n:
        proc = _spawn(args, start)
        lines = Lines(proc)
        line = lines.next(600.0)
        if not line or "ready" not in line:
            _stop(proc)
            raise SystemExit(f"worker did not start (case {start})")
        startup.append(json.loads(line)["peak_mib"])
        current = start
        while current < args.n:
            line = lines.next(args.timeout + 5.0)
            if line:  # "begin": the case has started
                current = json.loads(line)["begin"]
                line = lines.next(args.timeout)
            if not line:  # a hang or a dead worker: record it, resume after it
                hang = line is None
                records.append(_lost(current, args.timeout, hang, _stop(proc)))
                current += 1
                break
            records.append(json.loads(line))
            current += 1
        _stop(proc)
        start = current
        if args.progress:
            print(f"{len(records)} cases done", file=sys.stderr, flush=True)
    return _report(args, records, startup)


def _report(args: argparse.Namespace, records: list[dict], startup: list[float]) -> dict[str, object]:
    results = Counter(r["result"] for r in records)
    errors = Counter(r["detail"].split(":", 1)[0] for r in records if r["result"] == "error")
    kinds = Counter(f"{r['kind']}/{r['result']}" for r in records)
    worst = max(records, key=lambda r: r["seconds"])
    bad = [r for r in records if r["result"] not in ("image", "error")]
    return {
        "mutants": args.n, "handmade": sum(r["index"] < 0 for r in records), "seed": args.seed,
        "max_side": args.max_side or None, "timeout_s": args.timeout, "max_gb": args.max_gb,
        "results": dict(results), "errors": dict(errors), "by_kind": dict(sorted(kinds.items())),
        "worst_seconds": round(worst["seconds"], 3), "worst_case": f"#{worst['index']} {worst['kind']} {worst['note']}",
        "mean_seconds": round(sum(r["seconds"] for r in records) / len(records), 4),
        "peak_mib": round(max(r["peak_mib"] for r in records), 1), "startup_peak_mib": round(max(startup), 1),
        "workers": len(startup), "bad": bad[:20],
        "python": platform.python_version(), "machine": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="number of mutants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-side", type=int, default=0, help="cap on declared sides in header edits (0: any)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds after which a case is a hang")
    parser.add_argument("--max-gb", type=float, default=6.0, help="address-space limit of the worker")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    begin = time.time()
    report = supervise(args)
    report["wall_seconds"] = round(time.time() - begin, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
