"""Encode/decode time and peak memory of the codec vs image area (run on demand).

    .venv/bin/python benchmarks/bench_codec.py [--model NAME|PATH] [--threads 2] [--out docs/benchmarks.md]

Each measurement runs in a fresh subprocess so that its peak RSS (ru_maxrss) is its own.
Sizes: 256x256, 768x512 (Kodak), 1920x1080, 3840x2160 (4K). Without a shipped model the
default-size architecture is benchmarked with random weights (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

SIZES = [(256, 256), (512, 768), (1080, 1920), (2160, 3840)]

WORKER = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from mrt.codec import Codec
h, w = int(sys.argv[1]), int(sys.argv[2])
model = sys.argv[4]
if model == "random":
    import yaml
    from mrt.models.codec_model import MRTCodecModel
    from mrt.models.config import MRTConfig
    cfg = MRTConfig.from_dict(yaml.safe_load(open("configs/model_mrt_s.yaml"))["model"])
    torch.manual_seed(0)
    codec = Codec.from_model(MRTCodecModel(cfg, k_code=12).eval(), "random-mrt-s")
else:
    codec = Codec.load(model)
rng = np.random.default_rng(0)
y, x = np.mgrid[0:h, 0:w]
img = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x ^ y) & 255)], -1).astype(np.uint8)
codec.compress(img[:64, :64])  # warm-up (allocator, lazy init)
t0 = time.perf_counter(); data = codec.compress(img); t1 = time.perf_counter()
out = codec.decompress(data); t2 = time.perf_counter()
assert out.shape == img.shape
print(json.dumps({"h": h, "w": w, "bytes": len(data), "enc_s": t1 - t0, "dec_s": t2 - t1,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model name or .mrtm path (default: the shipped default, else random)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="docs/benchmarks.md")
    ap.add_argument("--max-side", type=int, default=4000, help="skip sizes with a side above this")
    args = ap.parse_args()
    model = args.model
    if model is None:
        from mrt.codec import list_models

        defaults = [m.name for m in list_models() if m.default]
        model = defaults[0] if defaults else "random"
    rows = []
    for h, w in SIZES:
        if max(h, w) > args.max_side:
            continue
        res = subprocess.run(
            [sys.executable, "-c", WORKER, str(h), str(w), str(args.threads), model],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode != 0:
            print(res.stderr[-2000:], file=sys.stderr)
            return 1
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(row, flush=True)
    lines = [
        "# Codec speed and memory",
        "",
        f"Model: `{model}`; {args.threads} torch threads; CPU: {platform.processor() or platform.machine()}; "
        "command: `.venv/bin/python benchmarks/bench_codec.py` (each size in a fresh process).",
        "",
        "| size | pixels | file bytes | encode s | decode s | peak RSS MB | encode us/px | decode us/px |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        px = r["h"] * r["w"]
        lines.append(
            f"| {r['w']}x{r['h']} | {px} | {r['bytes']} | {r['enc_s']:.2f} | {r['dec_s']:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {1e6 * r['enc_s'] / px:.2f} | {1e6 * r['dec_s'] / px:.2f} |"
        )
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
