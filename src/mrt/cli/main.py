"""The ``mrt`` command line: ``main(argv) -> exit status``.

Each subcommand is a module ``mrt/cli/cmd_<name>.py`` with ``register(subparsers)`` (adds its
parser) and ``run(args) -> int``. Only the module of the command being run is imported: the
others are listed by their summary in ``COMMANDS``, so ``mrt --help`` imports no command module
and ``mrt decompress`` none of the training or evaluation code. Command modules keep heavy
imports (torch, models) inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from mrt import __version__
from mrt.errors import MRTError

#: Subcommands in help order, with the one-line summary ``mrt --help`` lists (the same text as
#: each module's ``help=``; ``tests/test_cli.py`` checks that they agree).
COMMANDS: dict[str, str] = {
    "compress": "compress images to .mrt files",
    "decompress": "decompress .mrt files to images",
    "info": "show the header of .mrt files",
    "models": "list the available models",
    "eval": "evaluate MRT models (rate from file bytes, quality metrics, timings)",
    "baselines": "run classical codecs over a quality grid",
    "report": "write the results report (markdown, RD curves, visual comparison)",
    "train": "train a stage from a YAML config (single process or under torchrun)",
    "release": "write a model file (.mrtm) from a training checkpoint",
}

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


def command_module(name: str) -> ModuleType:
    """The module implementing subcommand ``name`` (``mrt.cli.cmd_<name>``)."""
    return importlib.import_module(f"mrt.cli.cmd_{name}")


def requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names, if it is a known one.

    The top-level options (``-h``, ``--version``) take no value, so the command is the first
    argument that does not start with ``-``.
    """
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser, with the full parser of ``command`` (if given) from its module.

    The other subcommands get a summary-only entry: enough for ``mrt --help`` and for argparse
    to pick the command, without importing their modules.
    """
    parser = argparse.ArgumentParser(
        prog="mrt",
        description="MRT: extreme learned image compression (files of a few hundred bytes).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mrt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in COMMANDS.items():
        if name == command:
            command_module(name).register(subparsers)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


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
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(requested_command(argv))
        try:
            args = parser.parse_args(argv)
        except SystemExit as stop:  # --help, --version, usage errors (2)
            return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
        return int(command_module(args.command).run(args) or 0)
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
