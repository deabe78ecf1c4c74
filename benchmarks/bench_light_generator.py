"""Time the TAEF2-architecture RGB decoder against light decoders (issue 10), in one process.

    python benchmarks/bench_light_generator.py --sizes 768x512 1920x1080 --threads 1 2 --repeat 5
    python benchmarks/bench_light_generator.py --spec 128,64,32:3,2,1:2,2,1 --spec 96,48,24:3,2,1:2,2,2

Each candidate is timed interleaved with the teacher (best of ``--repeat`` runs each) so that
the speed-up is a ratio that the load of a shared machine changes little. Also prints
parameters and multiply-accumulates of the convolutions. Above 1 Mpx the decoders run through
the codec's tiling (``apply_tiled``), as they do in the codec.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from mrt.models.codec_model import TILE_PIXELS, apply_tiled
from mrt.models.light_decoder import DEFAULT_SPEC, LightDecoder, LightSpec, conv_macs
from mrt.models.taef2 import TAEF2Decoder


def parse_spec(text: str) -> LightSpec:
    """'128,64,32:3,2,1:2,2,1' -> LightSpec(channels, blocks, expand)."""
    c, b, e = (tuple(int(v) for v in part.split(",")) for part in text.split(":"))
    return LightSpec(channels=c, blocks=b, expand=e)  # type: ignore[arg-type]


def best_time(net: nn.Module, latent: torch.Tensor, repeat: int) -> float:
    """Best wall time of ``repeat`` forwards (after one warm-up), tiled like the codec when large."""
    run = (lambda: apply_tiled(net, latent, 8, 8)) if latent.shape[-1] * latent.shape[-2] * 64 > TILE_PIXELS else (
        lambda: net(latent)
    )
    with torch.inference_mode():
        run()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["768x512"])
    ap.add_argument("--threads", nargs="+", type=int, default=[1])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--spec", action="append", default=[], help="channels:blocks:expand (default: the shipped spec)")
    ap.add_argument("--weights", default=None, help="optional state dict (.pt) for the default-spec student")
    args = ap.parse_args()
    specs = [parse_spec(s) for s in args.spec] or [DEFAULT_SPEC]
    teacher = TAEF2Decoder().eval()
    nets: list[tuple[str, nn.Module]] = [("taef2", teacher)]
    for spec in specs:
        nets.append((f"light{spec.channels}:{spec.blocks}:{spec.expand}", LightDecoder(spec).eval()))
    for name, net in nets:
        params = sum(p.numel() for p in net.parameters())
        macs = conv_macs(net, (1, 32, 64, 96))
        radius = net.spec.receptive_radius if isinstance(net, LightDecoder) else -1
        print(f"{name:40s} params {params / 1e6:6.3f} M  GMAC@768x512 {macs / 1e9:7.2f}  radius {radius}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for size in args.sizes:
            w, h = (int(v) for v in size.split("x"))
            latent = torch.randn(1, 32, (h + 7) // 8, (w + 7) // 8)
            for name, net in nets[1:]:
                t_student = best_time(net, latent, args.repeat)
                t_teacher = best_time(teacher, latent, args.repeat)
                print(
                    f"threads {threads} {size:>9s} {name:40s} {t_student * 1e3:8.1f} ms  "
                    f"taef2 {t_teacher * 1e3:8.1f} ms  speed-up {t_teacher / t_student:5.1f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
