"""``mrt compress IN... [-o OUT] [--model NAME|PATH] [--force] [-q] [--progress]``."""

from __future__ import annotations

import argparse
from typing import Any

from mrt.cli._common import (
    Failure,
    Job,
    Reporter,
    add_batch_options,
    ensure_parent,
    exit_status,
    iterate,
    plan_jobs,
    refuse_existing,
)
from mrt.errors import MRTError

DESCRIPTION = """\
Compress images to .mrt files. IN may be image files or folders (searched recursively for
images). Without -o each output is written next to its input with the extension replaced by
.mrt. With one input file, -o names the output file; with several inputs or a folder, -o is a
folder and outputs keep their names relative to the input folder. Existing files are never
overwritten without --force and no partial file is ever left behind. If some files fail, the
others are still written, an error line is printed per failure and the exit status is 1.
"""


def register(subparsers: Any) -> None:
    """Add the ``compress`` subcommand."""
    p = subparsers.add_parser(
        "compress",
        help="compress images to .mrt files",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files or folders")
    add_batch_options(p, "output file (one input) or folder")
    p.add_argument("-m", "--model", metavar="NAME|PATH", help="model name or model file (default: the default shipped model)")


def _compress_one(codec: Any, job: Job, force: bool) -> str:
    """Compress one file; returns its report line."""
    from mrt.io import atomic_write_bytes, load_image

    refuse_existing(job.dst, force)
    img = load_image(job.src)
    data = codec.compress(img)
    ensure_parent(job.dst)
    atomic_write_bytes(job.dst, data, force=force)
    height, width = img.shape[:2]
    bpp = 8.0 * len(data) / (height * width)
    return f"{job.src} -> {job.dst}: {len(data)} B, {bpp:.4f} bpp"


def run(args: argparse.Namespace) -> int:
    """Compress every input; see ``DESCRIPTION`` for paths and exit status."""
    from mrt.io import IMAGE_SUFFIXES

    plan = plan_jobs(args.inputs, args.output, IMAGE_SUFFIXES, ".mrt")
    if not plan.jobs and not plan.failures:
        raise MRTError("no input images found")
    codec = None
    if plan.jobs:
        from mrt.codec import Codec  # torch: only when there is work

        codec = Codec.load(args.model)
    reporter = Reporter(len(plan.jobs), args.quiet, args.progress, "compress")
    for failure in plan.failures:
        reporter.failed(failure)
    for job in iterate(plan.jobs, reporter):
        try:
            reporter.done(_compress_one(codec, job, args.force))
        except MRTError as err:
            reporter.failed(Failure(str(job.src), err))
    return exit_status(reporter.failures, plan.n_inputs)
