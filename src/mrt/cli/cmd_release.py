"""``mrt release CHECKPOINT``: write the self-describing model file of a trained stage-1/2 run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mrt.errors import ConfigError, ModelError


def register(subparsers: Any) -> None:
    """Add the ``release`` subcommand."""
    p = subparsers.add_parser(
        "release",
        help="write a model file (.mrtm) from a training checkpoint",
        description="Write the self-describing model file (config, stable ids, fp16 weights, sha256) of a "
        "stage-1 or stage-2 checkpoint. One file holds several rate variants (tokens per window).",
    )
    p.add_argument("checkpoint", help="checkpoint file or run folder (its newest checkpoint)")
    p.add_argument("-o", "--output", required=True, help="output .mrtm path")
    p.add_argument("--name", required=True, help="family name; variants are NAME-k<K>")
    p.add_argument("--tokens", required=True, help="comma-separated tokens per window, e.g. 6,12,24")
    p.add_argument("--default", type=int, default=None, help="default variant's tokens (default: the middle one)")
    p.add_argument("--description", default="", help="one-line description")
    p.add_argument("--license-file", default=None, help="text file with licence notices to embed")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA average")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")


def run(args: argparse.Namespace) -> int:
    from mrt.models.modelfile import SUFFIX, save_model_file
    from mrt.train.checkpoint import load_checkpoint
    from mrt.train.tasks import codec_model_from_checkpoint

    out = Path(args.output)
    if out.suffix != SUFFIX:
        raise ConfigError(f"output must end in {SUFFIX}")
    if out.exists() and not args.force:
        raise ModelError(f"{out} exists (use --force to overwrite)")
    try:
        tokens = sorted({int(t) for t in args.tokens.split(",") if t.strip()})
    except ValueError:
        raise ConfigError(f"--tokens must be comma-separated integers, got {args.tokens!r}") from None
    if not tokens:
        raise ConfigError("--tokens is empty")
    model, config = codec_model_from_checkpoint(args.checkpoint, use_ema=not args.no_ema)
    bad = [k for k in tokens if not 1 <= k <= model.cfg.n_tokens]
    if bad:
        raise ConfigError(f"tokens {bad} outside 1..{model.cfg.n_tokens}")
    default_k = args.default if args.default is not None else tokens[len(tokens) // 2]
    if default_k not in tokens:
        raise ConfigError(f"--default {default_k} is not one of --tokens")
    ckpt = load_checkpoint(args.checkpoint)
    provenance = {
        "checkpoint": str(args.checkpoint),
        "step": ckpt.get("step"),
        "git_rev": ckpt.get("git_rev"),
        "elapsed_s": ckpt.get("elapsed_s"),
        "train_config": config,
        "ema": not args.no_ema,
    }
    for derived in ("average", "slim"):  # a model soup's sources and weights, a slim copy's source
        if ckpt.get(derived):
            provenance[derived] = ckpt[derived]
    license_text = Path(args.license_file).read_text() if args.license_file else ""
    variants = {f"{args.name}-k{k}": k for k in tokens}
    info = save_model_file(
        model,
        out,
        variants=variants,
        default_variant=f"{args.name}-k{default_k}",
        description=args.description,
        license_text=license_text,
        provenance=provenance,
    )
    print(f"wrote {out} ({info.file_size / 1e6:.1f} MB, weights sha256 {info.weights_sha256[:16]}...)")
    for v in info.variants:
        print(f"  {v.name}: {v.k_code} tokens/window, model id 0x{v.model_id:06x}")
    print(json.dumps({"default": info.default_variant}))
    return 0
