"""Rate control: ``Codec.encode(img, max_bytes=...)`` / ``bpp=...`` and ``mrt compress --max-bytes / --bpp``.

The chosen file must be the best that fits: the most tokens per window whose *real* file is
within the budget (checked here against every k), found from a few RCM rate estimates and one
or two real encodes, not an encode per candidate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import structured_image
from mrt.bitstream import unpack
from mrt.bitstream.budget import budget_bytes, largest_candidate, may_fit
from mrt.cli.main import main
from mrt.codec import Codec, decompress
from mrt.errors import BudgetError
from mrt.io import load_image

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.load("mrt-s-k16")


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return {"golden": load_image(DATA / "golden_input.png"), "structured": structured_image(256, 300, seed=1)}


@pytest.fixture(scope="module")
def real_sizes(codec: Codec, images: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Size of the real file at every k = 1..K (index k - 1), from one encoder pass per image."""
    out = {}
    for name, img in images.items():
        bits = codec.model.encode_bits(img, codec.max_tokens)[0]
        out[name] = [len(codec._encode_k(img, bits[:, :k].contiguous(), k).data)
                     for k in range(1, codec.max_tokens + 1)]
        assert out[name][4] == len(codec.compress(img, k=5))  # what compress writes
    return out


def _best(sizes: list[int], budget: int) -> int:
    return max((k for k, size in enumerate(sizes, start=1) if size <= budget), default=0)


@pytest.mark.parametrize("name", ["golden", pytest.param("structured", marks=pytest.mark.slow)])
def test_max_bytes_gives_the_best_file_that_fits(codec: Codec, images: dict[str, np.ndarray],
                                                 real_sizes: dict[str, list[int]], name: str) -> None:
    img, sizes = images[name], real_sizes[name]
    budgets = sorted({s + d for s in sizes[::5] for d in (-1, 0)} | {sizes[-1] + 50, sizes[12] + 2})
    for budget in budgets:
        best = _best(sizes, budget)
        if best == 0:
            with pytest.raises(BudgetError, match=f"in {budget} bytes: the smallest file .* is {sizes[0]} bytes"):
                codec.encode(img, max_bytes=budget)
            continue
        rep = codec.encode(img, max_bytes=budget)
        assert rep.k == best and len(rep.data) == sizes[best - 1] <= budget, (budget, rep.k, best)
        assert rep.data == codec.compress(img, k=best)
        assert len(rep.estimated_ks) <= 8 and len(rep.encoded_ks) <= 4, (rep.estimated_ks, rep.encoded_ks)


def test_bpp_aims_at_the_largest_file_under_the_target(codec: Codec, images: dict[str, np.ndarray],
                                                        real_sizes: dict[str, list[int]]) -> None:
    img, sizes = images["structured"], real_sizes["structured"]
    pixels = img.shape[0] * img.shape[1]
    for k in (1, 7, 20):
        target = sizes[k - 1] * 8 / pixels
        rep = codec.encode(img, bpp=target)
        assert rep.k == _best(sizes, budget_bytes(*img.shape[:2], None, target)) and rep.bpp <= target + 1e-12
    rep = codec.encode(img, bpp=1e-4)  # below every file: the smallest, not an error
    assert rep.k == 1 and len(rep.data) == sizes[0]
    assert rep.bpp > 1e-4


def test_rate_controlled_file_decodes(codec: Codec, images: dict[str, np.ndarray]) -> None:
    img = images["structured"]
    rep = codec.encode(img, max_bytes=150)
    assert unpack(rep.data).k == rep.k and len(rep.data) <= 150
    out = decompress(rep.data)
    bits, h, w = codec.decode_symbols(rep.data)
    assert bits.shape[2] == rep.k and np.array_equal(out, codec.model.decode_bits(bits, h, w))


def test_rate_options_are_checked(codec: Codec) -> None:
    img = structured_image(20, 20)
    with pytest.raises(ValueError, match="at most one of"):
        codec.encode(img, max_bytes=100, bpp=0.1)
    with pytest.raises(ValueError, match="at most one of"):
        codec.encode(img, k=3, bpp=0.1)
    with pytest.raises(ValueError, match="max_bytes"):
        codec.encode(img, max_bytes=0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="bpp"):
            codec.encode(img, bpp=bad)


def test_search_calls_few_estimates() -> None:
    """On a linear size curve the secant search needs about 3 estimates, never an encode per k."""
    for slope, base in ((33, 13), (2.2, 13), (24, 13), (300, 13)):
        for budget in range(10, int(base + 35 * slope), 7):
            calls: list[int] = []

            def estimate(k: int) -> int:
                calls.append(k)
                return int(base + slope * k)

            top = largest_candidate(estimate, 32, budget, base=13)
            expect = max((k for k in range(1, 33) if may_fit(int(base + slope * k), budget)), default=0)
            assert top == expect and len(calls) <= 6, (slope, budget, calls)


# ----------------------------------------------------------------------------- command line


def _png(tmp_path: Path, img: np.ndarray) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(img).save(path)
    return path


def test_cli_max_bytes_and_bpp(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               images: dict[str, np.ndarray], real_sizes: dict[str, list[int]]) -> None:
    src = _png(tmp_path, images["structured"])
    sizes = real_sizes["structured"]
    out = tmp_path / "a.mrt"
    # the sizes are mrt-s-k16's (the fixture's codec), so the CLI names that model
    assert main(["compress", str(src), "-m", "mrt-s-k16", "--max-bytes", str(sizes[9]), "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert out.stat().st_size == sizes[9] and line.endswith(", 10 tokens per window")
    assert main(["compress", str(src), "-m", "mrt-s-k16", "--bpp", "0.0001", "-o", str(tmp_path / "b.mrt")]) == 0
    assert (tmp_path / "b.mrt").stat().st_size == sizes[0]
    capsys.readouterr()


def test_cli_budget_too_small_fails_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            images: dict[str, np.ndarray], real_sizes: dict[str, list[int]]) -> None:
    src = _png(tmp_path, images["structured"])
    out = tmp_path / "a.mrt"
    code = main(["compress", str(src), "-m", "mrt-s-k16", "--max-bytes", str(real_sizes["structured"][0] - 1), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == BudgetError.exit_code == 7
    assert err.count("\n") == 1 and err.startswith("mrt: error: ") and "cannot fit" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


@pytest.mark.parametrize("argv", [["--max-bytes", "0"], ["--max-bytes", "1.5"], ["--bpp", "-1"], ["--bpp", "nan"],
                                  ["--max-bytes", "100", "--bpp", "0.1"]])
def test_cli_rejects_bad_rate_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(["compress", str(tmp_path / "x.png"), *argv]) == 2
    assert "usage" in capsys.readouterr().err
