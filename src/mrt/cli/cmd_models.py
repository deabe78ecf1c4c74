"""``mrt models [--json]``: list the shipped/registered models."""

from __future__ import annotations

import argparse
import json
from typing import Any

_COLUMNS = ("NAME", "ID", "K", "BITS", "PARAMS", "SIZE", "DESCRIPTION")


def register(subparsers: Any) -> None:
    """Add the ``models`` subcommand."""
    p = subparsers.add_parser(
        "models",
        help="list the available models",
        description="List the models this installation can use (K = latent tokens per window, "
        "BITS = bits per token).",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list")


def _human(value: float, units: tuple[str, ...], base: float) -> str:
    """12345678 -> '12.3M' style."""
    for unit in units[:-1]:
        if abs(value) < base:
            return f"{value:.0f}{unit}" if unit == units[0] else f"{value:.1f}{unit}"
        value /= base
    return f"{value:.1f}{units[-1]}"


def _row(info: Any) -> dict[str, Any]:
    """Fields of one ``ModelInfo`` (tolerates missing optional fields)."""
    return {
        "name": str(info.name),
        "model_id": f"0x{int(info.model_id):06x}",
        "n_tokens": getattr(info, "n_tokens", None),
        "bits": getattr(info, "bits", None),
        "params": getattr(info, "params", None),
        "file_size": getattr(info, "file_size", None),
        "description": str(getattr(info, "description", "") or ""),
        "default": bool(getattr(info, "default", False)),
        "path": str(getattr(info, "path", "") or ""),
        "shadowed": bool(getattr(info, "shadowed", False)),
    }


def _cells(row: dict[str, Any]) -> list[str]:
    """Table cells of one row."""
    def opt(value: Any, fmt: Any) -> str:
        return "-" if value is None else fmt(value)

    return [
        row["name"] + (" *" if row.get("default") else "") + (" (shadowed)" if row.get("shadowed") else ""),
        row["model_id"],
        opt(row["n_tokens"], str),
        opt(row["bits"], str),
        opt(row["params"], lambda v: _human(float(v), ("", "K", "M", "G"), 1000.0)),
        opt(row["file_size"], lambda v: _human(float(v), (" B", " KB", " MB", " GB"), 1000.0)),
        row["description"],
    ]


def format_table(rows: list[dict[str, Any]]) -> str:
    """Aligned text table."""
    table = [list(_COLUMNS)] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS) - 1)]
    lines = []
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths)] + [line[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the model table."""
    from mrt.codec import list_models

    rows = [_row(info) for info in list_models()]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no models installed")
    else:
        print(format_table(rows))
        if any(r["default"] for r in rows):
            print("* the default model (used when none is named)")
        shadowed = [r for r in rows if r["shadowed"]]
        if shadowed:
            r = shadowed[0]
            print(f"(shadowed) a model earlier on the search path has the same name; select it by its file, "
                  f"e.g. --model {r['path']}#{r['name']} (paths: --json)")
    return 0
