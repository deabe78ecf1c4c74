"""Quality of a distilled light RGB decoder against its teacher on Kodak (issue 10).

    python benchmarks/eval_light_generator.py runs/distill_light --images 1 5 13 19 23 --work /tmp/light_eval

For each image: the shipped model's own decoded latent (``model.forward(analyse(x), k)``, as in
decoding; k = the model's default variant) is rendered by the teacher (the model file's RGB
decoder) and by the student (the light decoder of the distillation checkpoint, EMA weights);
both renderings are rounded to 8 bits like a decoded image. Prints PSNR and LPIPS-alex of
student vs teacher and of each vs the original. The latents and teacher renderings are cached
in ``--work`` so that later checkpoints are measured quickly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mrt.io import load_image
from mrt.metrics import LPIPS
from mrt.models.light_decoder import LightDecoder
from mrt.models.modelfile import load_model_file
from mrt.train.checkpoint import export_weights, resolve_checkpoint


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Unclamped RGB -> the float image a decoder would write (rounded to 8 bits)."""
    return (x.clamp(0, 1) * 255).round() / 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean().clamp_min(1e-12)))


def teacher_case(model: torch.nn.Module, path: Path, work: Path) -> dict[str, torch.Tensor]:
    """Original image, decoded latent and teacher rendering of one Kodak image (cached in ``work``)."""
    cached = work / f"{path.stem}.pt"
    if cached.is_file():
        return torch.load(cached, weights_only=True)
    img = load_image(path)
    x = model.image_to_tensor(img)  # [1, 3, Hp, Wp] padded to whole windows
    with torch.inference_mode():
        latent = model(model.analyse(x), k=model.k_code).latent_pred
        teacher = model.render(latent)
    h, w = img.shape[:2]
    case = {
        "original": torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255,
        "latent": latent,
        "teacher": to_8bit(teacher[..., :h, :w]),
    }
    torch.save(case, cached)
    return case


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", help="distill_light run folder or checkpoint")
    ap.add_argument("--teacher", default="src/mrt/weights/mrt-s.mrtm")
    ap.add_argument("--kodak", default="../shared/data/kodak")
    ap.add_argument("--images", nargs="+", type=int, default=[1, 5, 13, 19, 23])
    ap.add_argument("--work", default="/tmp/light_eval")
    ap.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model, _, variant = load_model_file(args.teacher)
    ckpt = resolve_checkpoint(args.checkpoint)
    student = LightDecoder().eval()
    student.load_state_dict(export_weights(ckpt, use_ema=not args.raw, prefix="model.generator.rgb_decoder."))
    lpips = LPIPS(net="alex")
    print(f"teacher {args.teacher} ({variant.name}), student {ckpt}")
    rows = []
    for i in args.images:
        case = teacher_case(model, Path(args.kodak) / f"kodim{i:02d}.png", work)
        h, w = case["original"].shape[-2:]
        with torch.inference_mode():
            out = to_8bit(student(case["latent"])[..., :h, :w])
            vals = (
                psnr(out, case["teacher"]),
                float(lpips(out, case["teacher"])),
                psnr(case["teacher"], case["original"]),
                psnr(out, case["original"]),
                float(lpips(case["teacher"], case["original"])),
                float(lpips(out, case["original"])),
            )
        rows.append(vals)
        print(f"kodim{i:02d}  " + "  ".join(f"{v:7.4f}" for v in vals), flush=True)
    mean = [sum(r[j] for r in rows) / len(rows) for j in range(6)]
    print("mean     " + "  ".join(f"{v:7.4f}" for v in mean))
    print("columns: PSNR(student,teacher) LPIPS(student,teacher) PSNR(teacher,orig) PSNR(student,orig) "
          "LPIPS(teacher,orig) LPIPS(student,orig)")


if __name__ == "__main__":
    main()
