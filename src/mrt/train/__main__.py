"""``python -m mrt.train CONFIG [overrides]`` (also the torchrun entry: ``torchrun ... -m mrt.train``)."""

from __future__ import annotations

import argparse
import sys

from mrt.errors import MRTError


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` like ``mrt train`` and run it; user errors become one line on stderr."""
    from mrt.cli import cmd_train

    parser = argparse.ArgumentParser(prog="python -m mrt.train")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd_train.register(sub)
    sub.choices["train"].prog = "python -m mrt.train"
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    try:
        return cmd_train.run(args)
    except MRTError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
