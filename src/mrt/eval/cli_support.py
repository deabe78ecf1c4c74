"""Helpers shared by the ``eval``, ``baselines`` and ``report`` subcommands."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mrt.errors import MRTError

if TYPE_CHECKING:  # importing them at run time would pull in torch when building the parser
    from mrt.eval.images import LoadedImage
    from mrt.eval.suite import MetricSuite

__all__ = ["DEFAULT_METRICS", "DEFAULT_RESULTS", "add_metric_args", "dataset_meta", "make_suite",
           "parse_floats", "set_threads"]

#: where ``mrt eval`` / ``mrt baselines`` write and ``mrt report`` reads results JSON
DEFAULT_RESULTS = Path("docs/results/json")
#: default of ``--metrics``: the registry's per-image metrics. Spelt out because reading
#: ``mrt.metrics.registry`` imports ``mrt.metrics`` (torch), which would slow every ``mrt``
#: command; a test checks that it matches the registry.
DEFAULT_METRICS = "psnr,ms_ssim,lpips,dists"


class UsageError(MRTError):
    """A command-line value is malformed."""

    exit_code = 2


def parse_floats(text: str) -> list[float]:
    """``"63,60,55"`` or ``"1:5"``-free comma lists -> floats."""
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise UsageError(f"expected comma-separated numbers, got {text!r}") from exc


def add_metric_args(p: argparse.ArgumentParser) -> None:
    """``--metrics``, ``--no-fid``, ``--fid-patch``, ``--threads``, ``--limit``."""
    p.add_argument("--metrics", default=DEFAULT_METRICS,
                   help="per-image metrics (default: %(default)s)")
    p.add_argument("--no-fid", action="store_true", help="skip FID/KID")
    p.add_argument("--fid-patch", type=int, default=64,
                   help="FID/KID patch size (GLC protocol: 64 for Kodak, 256 for CLIC)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--device", default="cpu", help="where metric networks run (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")


def make_suite(args: argparse.Namespace) -> MetricSuite:
    """The :class:`~mrt.eval.suite.MetricSuite` the options ask for (names or registry aliases)."""
    from mrt.eval.suite import MetricSuite  # noqa: PLC0415

    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    return MetricSuite(names, fid=not args.no_fid, fid_patch=args.fid_patch, device=args.device)


def set_threads(n: int) -> None:
    """Limit torch's intra-op threads (the CLI is the application, so it may do this)."""
    import torch  # noqa: PLC0415

    torch.set_num_threads(max(1, int(n)))


def dataset_meta(dirs: Sequence[str], images: Sequence[LoadedImage]) -> dict[str, Any]:
    """Dataset name, sources and a content id of the evaluated images."""
    h = hashlib.sha256()
    for hh in sorted(im.hash for im in images):
        h.update(hh.encode())
    name = "+".join(Path(d).resolve().name for d in dirs)
    return {"dataset": name, "sources": [str(Path(d).resolve()) for d in dirs],
            "dataset_id": h.hexdigest()[:16], "n_images": len(images)}
