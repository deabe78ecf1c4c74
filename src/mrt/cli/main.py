"""The ``mrt`` command line: ``main(argv) -> exit status``.

Each subcommand is a module ``mrt/cli/cmd_<name>.py`` with ``register(subparsers)`` (adds its
parser) and ``run(args) -> int``. Modules that do not exist (yet) are skipped. Command modules
must keep heavy imports (torch, models) inside ``run`` so that ``mrt --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from mrt import __version__
from mrt.errors import MRTError

#: Known subcommands, in help order.
COMMANDS = ("compress", "decompress", "info", "models", "eval", "baselines", "report", "train", "release")

EXIT_INTERRUPTED = 130

EPILOG = """\
exit status:
  0    success
  1    error; with several input files: at least one file failed (the others
       were still processed and written; with a single input file its own
       status below is used)
  2    usage error or invalid configuration
  3    image file unreadable, unsupported or too large
  4    .mrt file empty, truncated, corrupt or of an unsupported version
  5    unknown model or invalid model file
  130  interrupted (Ctrl-C)
"""


def _command_modules() -> list[ModuleType]:
    """Import the subcommand modules that exist."""
    modules = []
    for name in COMMANDS:
        module_name = f"mrt.cli.cmd_{name}"
        try:
            modules.append(importlib.import_module(module_name))
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
    return modules


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[argparse.Namespace], int]]]:
    """The top-level parser and a map from subcommand name to its ``run`` function."""
    parser = argparse.ArgumentParser(
        prog="mrt",
        description="MRT: extreme learned image compression (files of a few hundred bytes).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mrt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    for module in _command_modules():
        before = set(subparsers.choices)
        module.register(subparsers)
        for name in set(subparsers.choices) - before:
            runners[name] = module.run
    return parser, runners


def _one_line(err: BaseException) -> str:
    """An exception message on a single line."""
    return " ".join(str(err).split()) or type(err).__name__


def _quiet_broken_pipe() -> None:
    """After EPIPE on stdout, point stdout at /dev/null so the interpreter exits quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see ``mrt --help``)."""
    try:
        parser, runners = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as stop:  # --help, --version, usage errors (2)
            return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
        return int(runners[args.command](args) or 0)
    except MRTError as err:
        print(f"mrt: error: {_one_line(err)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("mrt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 1
    except OSError as err:
        where = f": '{err.filename}'" if err.filename else ""
        print(f"mrt: error: {err.strerror or _one_line(err)}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
