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
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TextIO

from mrt import __version__
from mrt.errors import MRTError, MRTWarning, NotEnoughMemoryError, is_allocation_failure

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
    "serve": "start a local page comparing MRT with classical codecs",
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
  6    not enough memory for this image or file
  7    the image does not fit --max-bytes even at one token per window
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
    """Run the command line; returns the exit status (see ``mrt --help``).

    Warnings of the package (``MRTWarning``, e.g. "only the first frame of an animated image is
    used") are printed as one line ``mrt: note: ...`` each time; the warning settings are
    restored on return.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        warnings.simplefilter("always", MRTWarning)
        warnings.showwarning = _note_printer(warnings.showwarning)
        return _run(argv)


def _note_printer(fallback: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints ``MRTWarning``s as notes and passes others on."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        if issubclass(category, MRTWarning):
            print(f"mrt: note: {' '.join(str(message).split())}", file=sys.stderr)
        else:
            fallback(message, category, filename, lineno, file, line)

    return show


def _run(argv: list[str]) -> int:
    """Parse ``argv`` and run the command; errors become one line on stderr and an exit status."""
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
    except (MemoryError, RuntimeError) as err:  # a failed allocation outside the per-file handling
        if not is_allocation_failure(err):
            raise
        print("mrt: error: not enough memory (the image or file is too large for this machine)", file=sys.stderr)
        return NotEnoughMemoryError.exit_code
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 1
    except OSError as err:
        where = f": '{err.filename}'" if err.filename else ""
        print(f"mrt: error: {err.strerror or _one_line(err)}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
