"""``python -m mrt.train`` with the toy task of ``_toy`` (channels 4): the DDP test's torchrun entry.

    torchrun --nproc_per_node=2 tests/_toy_train.py CONFIG [overrides]
"""

from __future__ import annotations

import sys

from _toy import toy_factory

from mrt.train.command import main

if __name__ == "__main__":
    sys.exit(main(task_factory=toy_factory(channels=4)))
