"""``python -m mrt.train CONFIG [overrides]`` (also the torchrun entry: ``torchrun ... -m mrt.train``)."""

from __future__ import annotations

import sys

from mrt.train.command import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
