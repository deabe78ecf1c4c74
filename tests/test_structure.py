"""The package's shape: short functions, short files, and layers that import only downwards.

Limits of issue 9: no function over 80 lines and no file over 400 lines in ``src/``. Layers
(lowest first, ``docs/DESIGN.md``): a module may import its own layer and the ones below only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mrt"
MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 400

# package (or module) -> layer number; lower layers never import higher ones
LAYERS: dict[str, int] = {
    "errors": 0, "dataclass_config": 0,
    "ops": 1, "blocks": 1,
    "entropy": 2, "bitstream": 2, "io": 2,
    "models": 3,
    "metrics": 4,
    "codec": 5, "catalog": 5, "scaling": 5, "refine": 5, "data": 5, "train": 6,
    "eval": 7,
    "pillow": 8, "serve": 8, "cli": 9,
}


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _layer_of(module: str) -> int | None:
    """Layer of a dotted module name inside ``mrt`` (None for the package root / unknown)."""
    parts = module.split(".")
    if parts[0] != "mrt" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def test_no_long_files() -> None:
    long = {str(p.relative_to(SRC)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_long_functions() -> None:
    long: list[str] = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_only_go_down(path: Path) -> None:
    rel = path.relative_to(SRC).with_suffix("")
    own = _layer_of("mrt." + ".".join(rel.parts))
    if own is None:
        return  # the package root
    upward = [m for m in _imports(path) if (lay := _layer_of(m)) is not None and lay > own]
    assert not upward, f"{rel} (layer {own}) imports higher layers: {upward}"


def test_every_subpackage_has_a_layer() -> None:
    tops = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in _modules()} - {"__init__", "__main__"}
    assert tops <= set(LAYERS), f"modules without a layer: {sorted(tops - set(LAYERS))}"
