"""Effective receptive fields of one window, side by side for several models (paper, Figure 4).

    .venv/bin/python benchmarks/erf.py --image ../shared/data/kodak/kodim09.png \\
        --models mrt-s-k32 -o docs/results/figures/erf_kodim09.png
    .venv/bin/python benchmarks/erf.py --models runs/ablate_birwkv.mrtm,runs/ablate_none.mrtm,runs/ablate_vit.mrtm ...

``--wrt latent`` isolates the MRT transform (gradient with respect to the TAEF2 latent);
``--wrt pixels`` includes the TAEF2 encoder. Prints the extent (share of pixels above 1% of
the peak) and the share of that area outside the target window for each model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from mrt.codec import Codec
from mrt.eval.erf import effective_receptive_field, erf_image
from mrt.io import atomic_write_bytes, encode_image, load_image


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="../shared/data/kodak/kodim09.png")
    ap.add_argument("--models", default="mrt-s-k32", help="comma-separated model names or .mrtm paths")
    ap.add_argument("--target", choices=("tokens", "pixels"), default="tokens")
    ap.add_argument("--wrt", choices=("pixels", "latent"), default="latent")
    ap.add_argument("--threshold", type=float, default=0.01)
    ap.add_argument("-o", "--out", type=Path, default=Path("docs/results/figures/erf.png"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    img = load_image(args.image)
    panels = []
    for name in args.models.split(","):
        model = Codec.load(name).model
        erf = effective_receptive_field(model, img, target=args.target, wrt=args.wrt)
        print(f"{name}: mixing={model.cfg.mixing} extent={erf.extent(args.threshold):.3f} "
              f"outside-window={erf.outside_window(args.threshold):.3f}")
        pic = Image.fromarray(erf_image(erf, img))
        label = Path(name.split("#")[0]).stem if name.split("#")[0].endswith(".mrtm") else name
        ImageDraw.Draw(pic).text((6, 6), f"{label} ({model.cfg.mixing})", fill=(255, 255, 255))
        panels.append(np.asarray(pic))
    atomic_write_bytes(args.out, encode_image(np.concatenate(panels, axis=1), ".png"), force=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
