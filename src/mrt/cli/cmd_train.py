"""``mrt train CONFIG [key.sub=value ...] [--build-cache | --build-only] [--print-config]``.

The command itself lives in :mod:`mrt.train.command` (shared with ``python -m mrt.train``).
"""

from __future__ import annotations

import argparse
from typing import Any

from mrt.train import command


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser("train", help=command.HELP, description=command.DESCRIPTION)
    command.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Load the config, optionally build the cache, train; returns the exit status."""
    return command.run(args)
