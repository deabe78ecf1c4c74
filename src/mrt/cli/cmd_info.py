"""``mrt info FILE... [--json] [--verify]``: show the header of .mrt files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mrt.cli._common import Failure, describe_failure, exit_status, read_bytes
from mrt.errors import MRTError


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


def _model_names() -> dict[int, str]:
    """Model id -> name of the models this installation knows (empty if unavailable)."""
    from mrt.codec import list_models

    try:
        return {int(m.model_id): str(m.name) for m in list_models()}
    except (MRTError, OSError):  # names are cosmetic: show the id alone
        return {}


def _describe(path: Path, names: dict[int, str] | None, verify: bool) -> dict[str, Any]:
    """Header fields of one file (and the verification result)."""
    from mrt.bitstream import unpack

    data = read_bytes(path)
    c = unpack(data)
    fields: dict[str, Any] = {
        "file": str(path),
        "version": c.version,
        "model_id": f"0x{c.model_id:06x}",
        "model_name": (names or {}).get(c.model_id),
        "height": c.height,
        "width": c.width,
        "payload_bytes": len(c.payload),
        "total_bytes": len(data),
        "bpp": 8.0 * len(data) / (c.height * c.width),
        "checksum": f"0x{c.checksum:04x}",
        "verified": None,
    }
    if verify:
        from mrt.codec import open_for

        open_for(data).decompress(data)  # raises on any mismatch
        fields["verified"] = True
    return fields


def _text(fields: dict[str, Any]) -> str:
    """Human-readable block for one file."""
    name = fields["model_name"] or "unknown model"
    check = {None: "", True: " (verified)"}[fields["verified"]]
    pixels = fields["height"] * fields["width"]
    return "\n".join([
        f"{fields['file']}:",
        f"  format version  {fields['version']}",
        f"  model           {fields['model_id']} ({name})",
        f"  image size      {fields['width']} x {fields['height']} ({pixels} pixels)",
        f"  payload         {fields['payload_bytes']} B",
        f"  total           {fields['total_bytes']} B ({fields['bpp']:.4f} bpp)",
        f"  checksum        {fields['checksum']}{check}",
    ])


def run(args: argparse.Namespace) -> int:
    """Print the header of every file; failures get one error line each."""
    names = _model_names()
    results: list[dict[str, Any]] = []
    failures: list[Failure] = []
    for text in args.files:
        try:
            fields = _describe(Path(text), names, args.verify)
        except MRTError as err:
            failures.append(Failure(text, err))
            print(f"mrt: error: {describe_failure(failures[-1])}", file=sys.stderr)
            continue
        results.append(fields)
        if not args.json:
            print(_text(fields))
    if args.json:
        print(json.dumps(results, indent=2))
    return exit_status(failures, len(args.files))
