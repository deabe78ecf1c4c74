"""``mrt compress IN... [-o OUT] [--model NAME|PATH] [--max-bytes N | --bpp B] [--scale F] [--refine STEPS] [--precision P] [--force] [-q] [--progress]``."""

from __future__ import annotations

import argparse
from typing import Any

from mrt.cli._common import (
    Failure,
    Job,
    Reporter,
    add_batch_options,
    add_precision_option,
    add_refine_options,
    passive_omp_wait,
    ensure_parent,
    exit_status,
    iterate,
    long_lived_objects,
    plan_jobs,
    refine_settings,
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

Rate: by default the model's own number of tokens per window (e.g. 16 for mrt-s-k16).
--max-bytes N writes, per image, the file with the most tokens per window that is at most N
bytes (header included), or fails for that image (exit status 7, no file) when even one token
per window does not fit. --bpp B writes the file with the most tokens per window that is at
most B bits per pixel, or one token per window when none is.

Scale: large photographs may be coded as a downscaled copy that the decoder restores to the
full size (format version 3), so that the rate follows what the image holds, not its area.
By default the scale is chosen per image: the largest downscaling (1.25 ... 6) whose resize
down and up keeps 32 dB PSNR, never coding fewer pixels than a 768x512 image (so images of
that size or smaller are always coded as they are); with --max-bytes / --bpp, the least
downscaling at which half the model's tokens per window (16 of 32) fit the budget.
--scale F forces a factor (the nearest of 1, 1.25, 1.5, 2, 2.5, 3, 4, 6; 1 = never).

Token search: --refine STEPS runs a slower encoder that, starting from the encoder's tokens,
searches by gradient steps through the (frozen) decoder for the bits it renders closest to the
image (20 x MSE + LPIPS-alex, as stage-2 training; --refine-lpips 0: MSE alone, faster but
blurrier). Same file format: any decoder reads the file. With
--max-bytes / --bpp the tokens per window are chosen first and the searched file keeps to the
budget.
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
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--max-bytes", type=_positive(int), metavar="N",
                      help="the best file of at most N bytes (header included); fails if none fits")
    rate.add_argument("--bpp", type=_positive(float), metavar="B",
                      help="the best file of at most B bits per pixel (else the smallest)")
    p.add_argument("--scale", type=_at_least_one, metavar="F",
                   help="code a copy downscaled by F (1 = the image itself; default: chosen per image)")
    add_refine_options(p)
    add_precision_option(p)


def _at_least_one(text: str) -> float:
    """An argparse type: a downscaling factor, a finite number >= 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value >= 1 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number >= 1, got {text!r}")
    return value


def _positive(kind: type) -> Any:
    """An argparse type: a positive ``kind`` (int or float)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'a whole' if kind is int else 'a'} number: {text!r}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
        return value

    return parse


def _compress_one(codec: Any, job: Job, force: bool, rate: dict[str, Any]) -> str:
    """Compress one file; returns its report line (with the tokens per window chosen by ``rate``)."""
    from mrt.io import atomic_write_bytes, load_image

    refuse_existing(job.dst, force)
    img = load_image(job.src)
    chosen = ""
    controlled = bool(set(rate) - {"scale"})  # rate control: the codec chooses the tokens per window
    if controlled or getattr(codec, "refine", None) is not None:
        report = codec.encode(img, **rate)
        data = report.data
        chosen = f", {report.k} tokens per window" if controlled else ""
        if (r := report.refined) is not None:
            chosen += (f", searched {len(r.losses) - 1} steps ({r.flipped} bits changed, "
                       f"loss {r.initial_loss:.4g} -> {r.chosen_loss:.4g})")
    else:
        data = codec.compress(img, **rate)
    chosen += _coded_note(data)
    ensure_parent(job.dst)
    atomic_write_bytes(job.dst, data, force=force)
    height, width = img.shape[:2]
    bpp = 8.0 * len(data) / (height * width)
    return f"{job.src} -> {job.dst}: {len(data)} B, {bpp:.4f} bpp{chosen}"


def _coded_note(data: bytes) -> str:
    """", coded at WxH" for a file that codes a downscaled copy (format version 3), else ""."""
    from mrt.bitstream import read_header
    from mrt.errors import BitstreamError

    try:
        c = read_header(data)
    except BitstreamError:
        return ""
    h, w = c.coded_size
    return f", coded at {w}x{h}" if (h, w) != (c.height, c.width) else ""


def run(args: argparse.Namespace) -> int:
    """Compress every input; see ``DESCRIPTION`` for paths and exit status."""
    passive_omp_wait()
    from mrt.io import IMAGE_SUFFIXES

    plan = plan_jobs(args.inputs, args.output, IMAGE_SUFFIXES, ".mrt")
    if not plan.jobs and not plan.failures:
        raise MRTError("no input images found")
    codec = None
    if plan.jobs:
        with long_lived_objects():
            from mrt.codec import Codec  # torch: only when there is work

            codec = Codec.load(args.model, precision=args.precision)
            if (refine := refine_settings(args)) is not None:
                codec.set_refine(refine)
    reporter = Reporter(len(plan.jobs), args.quiet, args.progress, "compress")
    for failure in plan.failures:
        reporter.failed(failure)
    options = (("max_bytes", args.max_bytes), ("bpp", args.bpp), ("scale", args.scale))
    rate = {name: value for name, value in options if value is not None}
    for job in iterate(plan.jobs, reporter):
        try:
            reporter.done(_compress_one(codec, job, args.force, rate))
        except MRTError as err:
            reporter.failed(Failure(str(job.src), err))
    return exit_status(reporter.failures, plan.n_inputs)
