"""``mrt decompress IN... [-o OUT] [--max-pixels N] [--precision P] [--force] [-q] [--progress]``."""

from __future__ import annotations

import argparse
from typing import Any

from mrt.cli._common import (
    MRT_SUFFIXES,
    Failure,
    Job,
    Reporter,
    add_batch_options,
    add_precision_option,
    passive_omp_wait,
    ensure_parent,
    exit_status,
    iterate,
    long_lived_objects,
    plan_jobs,
    read_bytes,
    refuse_existing,
)
from mrt.errors import ImageError, MRTError, memory_errors

DESCRIPTION = """\
Decompress .mrt files to images. No model option is needed: each file names its model. IN may
be .mrt files or folders (searched recursively for *.mrt). Without -o each output is written
next to its input as <name>.png. With one input, -o names the output file (its extension picks
the format: .png, .jpg, .webp, .bmp, .tif); with several inputs or a folder, -o is a folder
(outputs are PNG). Existing files are never overwritten without --force. If some files fail,
the others are still written and the exit status is 1.
"""


def register(subparsers: Any) -> None:
    """Add the ``decompress`` subcommand."""
    p = subparsers.add_parser(
        "decompress",
        help="decompress .mrt files to images",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help=".mrt files or folders")
    add_batch_options(p, "output image file (one input) or folder")
    p.add_argument("--max-pixels", type=int, metavar="N",
                   help="refuse files of images over N pixels (default 2^27, as for input images)")
    add_precision_option(p)


class _Codecs:
    """Codecs by model id, each loaded once."""

    def __init__(self, max_pixels: int | None = None, precision: str = "auto") -> None:
        self._by_id: dict[int, Any] = {}
        self.precision = precision
        self.max_pixels = max_pixels  # None: the codec's default limit
        self.limits: dict[str, int] = {} if max_pixels is None else {"max_pixels": max_pixels}

    def for_file(self, data: bytes) -> Any:
        from mrt.bitstream import unpack
        from mrt.io import DEFAULT_MAX_PIXELS

        limit = DEFAULT_MAX_PIXELS if self.max_pixels is None else self.max_pixels
        # a clean BitstreamError (header, payload floor, pixel limit) before any model lookup
        model_id = unpack(data, limit).model_id
        if model_id not in self._by_id:
            with long_lived_objects():
                from mrt.codec import open_for  # torch: only once a valid file needs its model

                self._by_id[model_id] = open_for(data, self.precision)
        return self._by_id[model_id]


def _decompress_one(codecs: _Codecs, job: Job, force: bool) -> str:
    """Decompress one file; returns its report line."""
    from mrt.io import SAVE_SUFFIXES, save_image

    suffix = job.dst.suffix.lower() or ".png"
    if suffix not in SAVE_SUFFIXES:
        raise ImageError(f"cannot write '{job.dst}': unknown image extension '{job.dst.suffix}'")
    refuse_existing(job.dst, force)
    data = read_bytes(job.src)
    with memory_errors(f"decompress '{job.src}'"):  # a failed allocation fails this file only
        img = codecs.for_file(data).decompress(data, **codecs.limits)
        ensure_parent(job.dst)
        save_image(img, job.dst, force=force)
    height, width = img.shape[:2]
    return f"{job.src} -> {job.dst}: {width}x{height}"


def run(args: argparse.Namespace) -> int:
    """Decompress every input; see ``DESCRIPTION`` for paths and exit status."""
    passive_omp_wait()
    plan = plan_jobs(args.inputs, args.output, MRT_SUFFIXES, ".png")
    if not plan.jobs and not plan.failures:
        raise MRTError("no .mrt files found")
    codecs = _Codecs(args.max_pixels, args.precision)
    reporter = Reporter(len(plan.jobs), args.quiet, args.progress, "decompress")
    for failure in plan.failures:
        reporter.failed(failure)
    for job in iterate(plan.jobs, reporter):
        try:
            reporter.done(_decompress_one(codecs, job, args.force))
        except MRTError as err:
            reporter.failed(Failure(str(job.src), err))
    return exit_status(reporter.failures, plan.n_inputs)
