"""Helpers shared by the compress/decompress/info/models subcommands."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mrt.errors import BitstreamError, ImageError, MRTError

#: Extensions picked up when a folder is given to ``mrt decompress``.
MRT_SUFFIXES = frozenset({".mrt"})


@dataclass(frozen=True)
class Job:
    """One file to process: ``src`` -> ``dst``."""

    src: Path
    dst: Path


@dataclass
class Failure:
    """A file that could not be processed."""

    src: str
    error: MRTError


@dataclass
class Plan:
    """Jobs to run and the inputs that already failed while planning."""

    jobs: list[Job] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    n_inputs: int = 0


def add_batch_options(parser: Any, output_help: str) -> None:
    """The output and reporting options shared by the commands that turn many files into many files."""
    parser.add_argument("-o", "--output", metavar="OUT", help=output_help)
    parser.add_argument("-f", "--force", action="store_true", help="overwrite existing output files")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-file lines")
    parser.add_argument("--progress", action="store_true", help="show a progress bar even when stderr is not a terminal")


#: ``--precision`` values (``mrt.models.inference.PRECISIONS``; repeated here so that the
#: parsers import no torch; tests/test_inference.py checks that they agree).
PRECISION_CHOICES = ("auto", "bf16", "fp32")


def add_precision_option(parser: Any) -> None:
    """``--precision`` of the analysis and RGB-decoder convolutions (``mrt compress`` / ``decompress``)."""
    parser.add_argument(
        "--precision", choices=PRECISION_CHOICES, default="auto",
        help="convolution precision: auto (bf16 where the CPU computes it natively, else fp32; the "
        "default), bf16, or fp32 (the reference pixels, the same on every machine)",
    )


def add_refine_options(parser: Any) -> None:
    """``--refine N`` and its objective (``mrt compress`` / ``mrt eval``; ``mrt.refine``)."""
    g = parser.add_argument_group("token search (a slower encoder; the file format and decoding are unchanged)")
    g.add_argument("--refine", type=int, default=0, metavar="STEPS",
                   help="search the bits the decoder renders best for STEPS gradient steps (e.g. 30; "
                   "about 1 s a step at 768x512, 2 threads; default 0: the plain encoder)")
    g.add_argument("--refine-lpips", type=float, default=1.0, metavar="W",
                   help="weight of LPIPS-alex beside 20 x MSE in the search's objective (default 1, as in "
                   "stage-2 training; needs the metric weights); 0: MSE alone, ~3x faster, blurrier")
    g.add_argument("--refine-rate", type=float, default=0.0, metavar="W",
                   help="add W x the estimated bits per pixel to the search's objective")
    g.add_argument("--refine-dists", type=float, default=0.0, metavar="W",
                   help="add W x DISTS (on one random 256-px crop a step; ~0.5 s a step more) to the "
                   "search's objective: sharper texture, but DISTS is then a metric the search optimises")


def refine_settings(args: Any) -> Any:
    """The ``RefineSettings`` that ``add_refine_options`` asked for, or None (imports torch only then)."""
    if not getattr(args, "refine", 0):
        return None
    from mrt.errors import MRTError
    from mrt.refine import RefineSettings  # noqa: PLC0415 (torch: only when asked)

    try:
        return RefineSettings(steps=args.refine, w_lpips=args.refine_lpips, w_rate=args.refine_rate,
                              w_dists=args.refine_dists)
    except ValueError as err:
        raise MRTError(f"bad token-search option: {err}") from None


@contextmanager
def long_lived_objects() -> Iterator[None]:
    """Import torch and build a model without cyclic-GC passes, then freeze what they made.

    ``import torch`` and a model's construction create about a million objects that live as long
    as the process. Each full collection walks them all again, and so does the interpreter's last
    collection at exit: on the 2-core machine the passes cost ~0.1 s during the import, ~0.07 s
    while the model is built and ~0.35 s at exit, a third of a one-image ``mrt decompress``
    beside its 0.45 s of decoding (docs/benchmarks.md). ``gc.freeze`` moves them out of the
    collector's view; collection is back on for everything made afterwards. An entry-point
    setting, used by the commands that load a model, never by the library.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def passive_omp_wait() -> None:
    """Let idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``), unless the
    user chose a policy; only before torch is loaded, since OpenMP reads it once.

    With two threads on a 2-core machine whose other core is busy, spinning threads wait for a
    descheduled peer at every parallel region: the codec ran 1.4-1.7x slower than on one thread,
    with passive waiting as fast or faster (docs/benchmarks.md). An entry-point setting, so set
    by the commands that run the codec (``mrt compress`` / ``decompress``), never by the library.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _is_hidden(path: Path, root: Path) -> bool:
    """True if any component below ``root`` starts with a dot (temp files, .git, ...)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def find_files(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    """Files under ``folder`` (recursive, sorted) whose extension is in ``suffixes``."""
    found = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in suffixes and p.is_file() and not _is_hidden(p, folder)
    ]
    return sorted(found)


def _expand(inputs: Iterable[str], suffixes: frozenset[str], plan: Plan) -> tuple[list[tuple[Path, Path]], bool]:
    """Inputs -> (file, name relative to its folder) pairs; also whether any input was a folder."""
    items: list[tuple[Path, Path]] = []
    any_folder = False
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            any_folder = True
            files = find_files(path, suffixes)
            if not files:
                plan.failures.append(Failure(text, MRTError(f"no matching files in folder '{text}'")))
            items.extend((f, f.relative_to(path)) for f in files)
        elif path.exists():
            items.append((path, Path(path.name)))
        else:
            missing = input_error(suffixes)(f"cannot read '{text}': no such file or folder")
            plan.failures.append(Failure(text, missing))
    return items, any_folder


def input_error(suffixes: frozenset[str]) -> type[MRTError]:
    """The error class (so the exit status) of an input that cannot be read: of its kind, i.e.
    ``BitstreamError`` (4) for ``.mrt`` inputs and ``ImageError`` (3) for images."""
    return BitstreamError if suffixes <= MRT_SUFFIXES else ImageError


def _check_output_folder(output: str, out: Path) -> None:
    """Refuse ``-o`` that must be a folder but exists as a file or is named like a file.

    ``mrt decompress FOLDER -o x.png`` would otherwise create a folder named ``x.png``; an
    existing folder, or a name ending in a path separator, says a folder is meant. File names
    are those ending in ``.mrt`` or an image extension (``mrt.io``).
    """
    from mrt.io import IMAGE_SUFFIXES, SAVE_SUFFIXES  # numpy/Pillow: only when needed

    if out.exists() and not out.is_dir():
        raise MRTError(f"-o '{output}' must be a folder when processing several files")
    names_a_folder = out.is_dir() or output.endswith((os.sep, "/"))
    if not names_a_folder and out.suffix.lower() in MRT_SUFFIXES | IMAGE_SUFFIXES | SAVE_SUFFIXES:
        raise MRTError(
            f"-o '{output}' names a file, but several files will be written: give a folder "
            f"(add a trailing '/' to use a folder named '{out.name}')"
        )


def plan_jobs(
    inputs: list[str], output: str | None, suffixes: frozenset[str], new_suffix: str
) -> Plan:
    """Map inputs (files or folders) to output paths.

    * no ``output``: next to the input, extension replaced by ``new_suffix``;
    * one input file and ``output``: that file (or ``output/<name><new_suffix>`` if ``output`` is a
      folder or ends with a path separator);
    * several inputs or a folder: ``output`` is a folder; ``output/<relative name><new_suffix>``.
    """
    plan = Plan()
    items, any_folder = _expand(inputs, suffixes, plan)
    plan.n_inputs = len(items) + len(plan.failures)
    several = any_folder or len(inputs) > 1
    out = Path(output) if output is not None else None
    if out is not None and output is not None and several:
        _check_output_folder(output, out)
    out_is_dir = out is not None and (
        several or out.is_dir() or str(output).endswith((os.sep, "/"))
    )
    claimed: dict[Path, Path] = {}
    for src, rel in items:
        if out is None:
            dst = src.with_suffix(new_suffix)
        elif out_is_dir:
            dst = out / rel.with_suffix(new_suffix)
        else:
            dst = out
        _claim(plan, claimed, Job(src, dst))
    return plan


def _claim(plan: Plan, claimed: dict[Path, Path], job: Job) -> None:
    """Add ``job`` unless its output is its input or is already the output of another job."""
    key = Path(os.path.abspath(job.dst))
    if key == Path(os.path.abspath(job.src)):
        plan.failures.append(Failure(str(job.src), MRTError(f"'{job.src}': output would overwrite the input")))
    elif key in claimed:
        plan.failures.append(Failure(
            str(job.src), MRTError(f"'{job.src}': output '{job.dst}' is also the output of '{claimed[key]}'")
        ))
    else:
        claimed[key] = job.src
        plan.jobs.append(job)


class Reporter:
    """Per-file lines, error lines and an optional progress bar (stderr)."""

    def __init__(self, total: int, quiet: bool, progress: bool, desc: str) -> None:
        self.quiet = quiet
        self.failures: list[Failure] = []
        self._bar: Any = None
        if total > 1 and (progress or (not quiet and _isatty(sys.stderr))):
            from tqdm import tqdm

            self._bar = tqdm(total=total, file=sys.stderr, unit="file", desc=desc, leave=False)

    def _write(self, text: str, stream: IO[str]) -> None:
        if self._bar is not None:
            self._bar.write(text, file=stream)
        else:
            print(text, file=stream)

    def done(self, line: str) -> None:
        """A file succeeded: print its line (unless quiet) and advance the bar."""
        if not self.quiet:
            self._write(line, sys.stdout)
        self.step()

    def failed(self, failure: Failure) -> None:
        """A file failed: print one error line and advance the bar."""
        self.failures.append(failure)
        self._write(f"mrt: error: {describe_failure(failure)}", sys.stderr)
        self.step()

    def step(self) -> None:
        """Advance the progress bar."""
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        """Remove the progress bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def describe_failure(failure: Failure) -> str:
    """One line naming the file (unless the message already does) and the reason."""
    message = " ".join(str(failure.error).split())
    return message if failure.src in message else f"{failure.src}: {message}"


def exit_status(failures: list[Failure], n_inputs: int) -> int:
    """0 if none failed; the error's own status for a single input; else 1."""
    if not failures:
        return 0
    if n_inputs == 1:
        return failures[0].error.exit_code
    return 1


def iterate(jobs: list[Job], reporter: Reporter) -> Iterator[Job]:
    """Yield jobs; the reporter is closed at the end (also on Ctrl-C)."""
    try:
        yield from jobs
    finally:
        reporter.close()


def ensure_parent(path: Path) -> None:
    """Create the folder that will hold ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MRTError(f"cannot create folder '{path.parent}': {err.strerror or err}") from None


def refuse_existing(path: Path, force: bool) -> None:
    """Fail early (before any work) if ``path`` exists and ``force`` is not set, or may never be
    replaced (a device, FIFO, socket, folder: ``mrt.io.check_output_path``)."""
    from mrt.io import check_output_path

    check_output_path(path, force)


def read_bytes(path: Path) -> bytes:
    """Read a whole ``.mrt`` file; OS errors become one-line ``BitstreamError``s (exit status 4)."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise BitstreamError(f"cannot read '{path}': {err.strerror or err}") from None
