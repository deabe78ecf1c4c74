"""The ``train`` command: ``mrt train CONFIG ...`` and ``python -m mrt.train CONFIG ...`` (and torchrun).

Both front ends share :func:`add_arguments` and :func:`run`; :func:`main` is the stand-alone
entry (``python -m mrt.train``, ``torchrun ... -m mrt.train``), so training never imports the
``mrt.cli`` package. Heavy imports (torch, the loop) happen inside :func:`run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mrt.errors import ConfigError, MRTError

if TYPE_CHECKING:
    from mrt.train.config import TrainConfig
    from mrt.train.task import TaskFactory

HELP = "train a stage from a YAML config (single process or under torchrun)"
DESCRIPTION = (
    "Train one stage. Overrides use dotted keys with YAML values, e.g. "
    "run.steps=2000 optim.lr=2e-4 data.batch_size=4 run.resume=true. "
    "Multi-process: torchrun --nproc_per_node=2 -m mrt.train CONFIG [overrides]."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's arguments: the config, overrides and the cache / print options."""
    p.add_argument("config", help="YAML config (configs/*.yaml; may extend another with 'base:')")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides (YAML-parsed values)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--build-cache", action="store_true", help="build/complete the image+latent cache, then train")
    g.add_argument("--build-only", action="store_true", help="build/complete the cache and exit")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def build_cache_for(cfg: TrainConfig) -> None:
    """Build or complete the pixel/latent cache of ``cfg.data`` (one process only)."""
    from mrt.data.cache import build_cache, list_images
    from mrt.train.distributed import dist_info_from_env

    if dist_info_from_env().enabled:
        raise ConfigError("build the cache in one process first (mrt train CONFIG --build-only), then use torchrun")
    d = cfg.data
    sources: list[Path] = []
    for folder in d.sources:
        sources.extend(list_images(folder))
    if not sources:
        raise ConfigError(f"no images under data.sources {d.sources}")
    taef2 = d.taef2_dir if d.with_latents else None
    if d.with_latents and not taef2:
        raise ConfigError("data.with_latents=true needs data.taef2_dir to build the latent cache")
    print(f"building cache {d.cache_dir} from {len(sources)} images", file=sys.stderr)
    device = cfg.run.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    build_cache(
        sources, d.cache_dir, taef2, max_side=d.max_side, progress=True, flip_latents=d.flip_latents, device=device
    )


def run(args: argparse.Namespace, task_factory: TaskFactory | None = None) -> int:
    """Load the config, optionally build the cache, train; returns the exit status.

    ``task_factory`` replaces the stage tasks' factory (see :func:`mrt.train.loop.train`).
    """
    from mrt.train.config import load_config

    cfg = load_config(args.config, list(args.overrides))
    if getattr(args, "print_config", False):
        sys.stdout.write(cfg.to_yaml())
        return 0
    if getattr(args, "build_cache", False) or getattr(args, "build_only", False):
        build_cache_for(cfg)
        if args.build_only:
            return 0
    from mrt.train.distributed import dist_info_from_env
    from mrt.train.loop import train

    path = train(cfg, task_factory=task_factory)
    if dist_info_from_env().is_main:
        print(path)
    return 0


def main(argv: list[str] | None = None, task_factory: TaskFactory | None = None) -> int:
    """``python -m mrt.train CONFIG [overrides]``: parse ``argv`` and run; user errors become one
    line on stderr and their exit status, Ctrl-C 130."""
    parser = argparse.ArgumentParser(prog="python -m mrt.train", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args, task_factory)
    except MRTError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
