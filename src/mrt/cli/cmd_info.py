"""``mrt info FILE... [--json] [--verify] [--max-pixels N]``: show the header of .mrt files.

A header that cannot be decoded (a body under the payload floor for the image size it states,
or an image over the pixel limit) is shown with its problems and counts as a failed file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mrt.cli._common import Failure, describe_failure, exit_status, read_bytes
from mrt.errors import BitstreamError, MRTError


def register(subparsers: Any) -> None:
    """Add the ``info`` subcommand."""
    p = subparsers.add_parser(
        "info",
        help="show the header of .mrt files",
        description="Show the header fields of .mrt files (no decoding unless --verify).",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help=".mrt files")
    p.add_argument("--json", action="store_true", help="print one JSON object per file (a JSON list)")
    p.add_argument("--verify", action="store_true", help="also decode the file and check its checksum (needs its model)")
    p.add_argument("--max-pixels", type=int, metavar="N",
                   help="flag images over N pixels, as decompress would refuse them (default 2^27)")


def _models() -> tuple[dict[int, str], dict[int, int]]:
    """(model id -> name, version-1 id -> tokens per window) of the installed models (empty if unavailable)."""
    from mrt.codec import list_models

    try:
        models = list_models()
    except (MRTError, OSError):  # names are cosmetic: show the id alone
        return {}, {}
    names = {int(m.model_id): str(m.name) for m in models}
    names.update({int(m.file_id): Path(m.path).stem for m in models if getattr(m, "file_id", None) is not None})
    return names, {int(m.model_id): int(m.n_tokens) for m in models}


def _describe(path: Path, models: tuple[dict[int, str], dict[int, int]], verify: bool, max_pixels: int | None) -> dict[str, Any]:
    """Header fields of one file, the problems that make it undecodable (and the verification result).

    ``max_pixels``: the pixel limit to check (None: the default, 2^27).
    """
    from mrt.bitstream import header_problems, read_header
    from mrt.io import DEFAULT_MAX_PIXELS

    data = read_bytes(path)
    c = read_header(data)
    names, tokens = models
    k = c.k if c.k is not None else tokens.get(c.model_id)
    fields: dict[str, Any] = {
        "file": str(path),
        "version": c.version,
        "portable_tables": c.portable,
        "model_id": f"0x{c.model_id:06x}",
        "model_name": names.get(c.model_id),
        "tokens_per_window": k,
        "height": c.height,
        "width": c.width,
        "coded_height": c.coded_size[0],
        "coded_width": c.coded_size[1],
        "payload_bytes": len(c.payload),
        "padding_bytes": len(c.padding),
        "total_bytes": len(data),
        "bpp": 8.0 * len(data) / (c.height * c.width),
        "checksum": f"0x{c.checksum:04x}",
        "problems": header_problems(c, DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels, k),
        "verified": None,
    }
    if verify and not fields["problems"]:
        from mrt.codec import open_for

        limits = {} if max_pixels is None else {"max_pixels": max_pixels}
        open_for(data).decompress(data, **limits)  # raises on any mismatch
        fields["verified"] = True
    return fields


def _text(fields: dict[str, Any]) -> str:
    """Human-readable block for one file."""
    name = fields["model_name"] or "unknown model"
    check = {None: "", True: " (verified)"}[fields["verified"]]
    pixels = fields["height"] * fields["width"]
    k = fields["tokens_per_window"]
    padding = f" (+ {fields['padding_bytes']} B padding)" if fields["padding_bytes"] else ""
    lines = [
        f"{fields['file']}:",
        f"  format version  {fields['version']}",
        f"  entropy tables  {'portable (decode the same on every machine)' if fields['portable_tables'] else 'float32 (decode where the writer computed the same floats; older files)'}",
        f"  model           {fields['model_id']} ({name})",
        f"  tokens/window   {k if k is not None else 'set by the model'}",
        f"  image size      {fields['width']} x {fields['height']} ({pixels} pixels)",
        *([f"  coded size      {fields['coded_width']} x {fields['coded_height']} (downscaled; the decoder restores the size)"]
          if (fields["coded_height"], fields["coded_width"]) != (fields["height"], fields["width"]) else []),
        f"  payload         {fields['payload_bytes']} B{padding}",
        f"  total           {fields['total_bytes']} B ({fields['bpp']:.4f} bpp)",
        f"  checksum        {fields['checksum']}{check}",
    ]
    lines += [f"  INVALID         {problem}" for problem in fields["problems"]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the header of every file; failures get one error line each."""
    models = _models()
    results: list[dict[str, Any]] = []
    failures: list[Failure] = []
    for text in args.files:
        try:
            fields = _describe(Path(text), models, args.verify, args.max_pixels)
        except MRTError as err:
            failures.append(Failure(text, err))
            print(f"mrt: error: {describe_failure(failures[-1])}", file=sys.stderr)
            continue
        results.append(fields)
        if not args.json:
            print(_text(fields))
        if fields["problems"]:  # shown above; the file still counts as failed
            failures.append(Failure(text, BitstreamError(fields["problems"][0])))
            print(f"mrt: error: {describe_failure(failures[-1])}", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    return exit_status(failures, len(args.files))
