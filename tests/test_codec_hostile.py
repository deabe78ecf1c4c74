"""Work bounded by the file (issue 14): headers that claim more than their bytes can hold.

Each hostile file is refused by ``mrt decompress`` in a fresh process in under 1 s of CPU time
with under 500 MB peak memory, exit status 4 and one line: the payload floor is checked right
after the header is read, before torch or any model is loaded. The same files through the API
and ``mrt info``; the pixel limit (``--max-pixels``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mrt.bitstream import read_header
from mrt.cli.main import main
from mrt.codec import decompress
from mrt.errors import BitstreamError

DATA = Path(__file__).parent / "data"
GOLDEN_V1 = DATA / "golden_v4_mrt-s_k16.mrt"  # (a portable file: decodes on every machine)
REPRO = b"\xd7\x4d\x10\xaf\x95\x5a\xff\xff\xff\xff\x00\x00"  # issue 14: 65536 x 65536, 12 bytes

# Peak memory: VmHWM, the high-water mark of this process image (ru_maxrss would also count the
# parent's memory at fork time, which Linux carries over exec).
_PROBE = (
    "import json, re, resource, sys, time\n"
    "t = time.perf_counter()\n"
    "from mrt.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "r = resource.getrusage(resource.RUSAGE_SELF)\n"
    "hwm = re.search(r'VmHWM:\\s*(\\d+) kB', open('/proc/self/status').read())\n"
    "print(json.dumps({'code': code, 'seconds': time.perf_counter() - t, 'cpu': r.ru_utime + r.ru_stime,\n"
    "                  'peak_mb': int(hwm.group(1)) / 1024, 'torch': 'torch' in sys.modules}))\n"
)


def _header(version: int, side: int, k: int = 1) -> bytes:
    """A header for a ``side`` x ``side`` image of the shipped mrt-s (v1: the k16 variant; v2: the file)."""
    dims = (side - 1).to_bytes(2, "big") * 2
    if version == 1:
        return b"\xd7\x4d\x10\xaf\x95\x5a" + dims + b"\x00\x00"
    return b"\xd7\x4d\x20\x57\x30\xaf" + bytes([k - 1]) + dims + b"\x00\x00"


def _hostile() -> dict[str, bytes]:
    filler = bytes((i * 37 + 11) % 256 for i in range(100))
    files = {"repro": REPRO}
    for version in (1, 2):
        for side in (65536, 8192, 4096):
            head = _header(version, side)
            files[f"v{version}-{side}-{len(head)}B"] = head
            files[f"v{version}-{side}-100B"] = head + filler[: 100 - len(head)]
    return files


HOSTILE = _hostile()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from /proc")
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_header_is_refused_quickly_in_a_fresh_process(tmp_path: Path, name: str) -> None:
    src = tmp_path / "b.mrt"
    src.write_bytes(HOSTILE[name])
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PROBE, "decompress", str(src), "-o", str(tmp_path / "b.png")],
                          capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - start
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 4, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("mrt: error: ")
    assert "needs at least" in proc.stderr and "Traceback" not in proc.stderr
    assert report["cpu"] < 1.0 and report["peak_mb"] < 500, report
    assert not report["torch"]  # refused before any model (or torch) was loaded
    assert wall < 10  # wall time on a busy machine; the CPU time above is the measure
    assert not (tmp_path / "b.png").exists()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_header_is_refused_by_the_api_before_any_work(name: str) -> None:
    start = time.process_time()
    with pytest.raises(BitstreamError, match="needs at least"):
        decompress(HOSTILE[name])
    assert time.process_time() - start < 0.5


def test_info_flags_a_header_that_cannot_be_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "b.mrt"
    src.write_bytes(REPRO)
    assert main(["info", str(src)]) == 4
    out, err = capsys.readouterr()
    assert "65536 x 65536" in out and "INVALID         corrupt or truncated file" in out
    assert "over the limit of 134217728" in out
    assert err.count("\n") == 1 and "needs at least" in err
    assert main(["info", "--json", str(src)]) == 4
    fields = json.loads(capsys.readouterr().out)[0]
    assert len(fields["problems"]) == 2 and fields["tokens_per_window"] == 16
    assert main(["info", "--json", str(GOLDEN_V1)]) == 0
    fields = json.loads(capsys.readouterr().out)[0]
    assert fields["problems"] == [] and fields["tokens_per_window"] == 16 and fields["padding_bytes"] == 0


def test_max_pixels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = read_header(GOLDEN_V1.read_bytes())
    pixels = c.height * c.width  # 13056
    out = tmp_path / "x.png"
    assert main(["decompress", str(GOLDEN_V1), "-o", str(out), "--max-pixels", str(pixels - 1)]) == 4
    err = capsys.readouterr().err
    assert f"over the limit of {pixels - 1} decoded pixels" in err and not out.exists()
    assert main(["info", str(GOLDEN_V1), "--max-pixels", str(pixels - 1)]) == 4
    capsys.readouterr()
    assert main(["decompress", str(GOLDEN_V1), "-o", str(out), "--max-pixels", str(pixels), "-q"]) == 0
    assert out.is_file()
    with pytest.raises(BitstreamError, match="over the limit"):
        decompress(GOLDEN_V1.read_bytes(), max_pixels=1000)
