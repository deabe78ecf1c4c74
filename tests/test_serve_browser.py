"""``mrt serve`` in a real browser: headless Chromium (Debian's chromium + chromium-driver) driven by Selenium.

The server is the real command (``python -m mrt.cli.main serve --port 0``, the shipped default
model) in a subprocess; the page is used as a person would: choose a file, press Compress, set a
byte budget, press Compress again, read the table, follow the download link, choose a text file
named ``.png``. Browser and driver come from ``scripts/install_browser.sh`` (called by
``scripts/test.sh``); Selenium is pointed at /usr/bin/chromedriver, so Selenium Manager never
downloads anything. Opt-in: ``MRT_SERVE_SCREENSHOT=docs/serve_screenshot.png`` also runs
:func:`test_docs_screenshot`, which refreshes the README's screenshot (Kodak ``kodim23``, 600 bytes,
JPEG and VVC, all metrics; a few minutes of CPU).
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mrt.bitstream import read_header

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[1]
KODIM23 = ROOT / ".." / "shared" / "data" / "kodak" / "kodim23.png"
H, W = 176, 256  # MS-SSIM needs more than 160 pixels on the short side
VIEWPORT = (1400, 960)  # the page's layout at a laptop's size; the screenshot's size
WAIT_S = 300.0  # one comparison on a loaded 2-core CI machine (typically 2-5 s here)
INSTALL_HINT = "run `bash scripts/install_browser.sh` (as root: Debian's chromium + chromium-driver)"


def _find(debian_path: str, name: str) -> str | None:
    return debian_path if os.access(debian_path, os.X_OK) else shutil.which(name)


CHROMIUM = _find("/usr/bin/chromium", "chromium")
CHROMEDRIVER = _find("/usr/bin/chromedriver", "chromedriver")


def _need_browser() -> tuple[Any, Any]:
    """The Selenium modules, or a skip naming what is missing."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        missing = " and ".join(n for n, p in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if p is None)
        pytest.skip(f"{missing} not installed: {INSTALL_HINT}")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed: pip install -e '.[dev]'")
    by = pytest.importorskip("selenium.webdriver.common.by")
    return webdriver, by.By


# ----- the server -----------------------------------------------------------------------------
@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path  # the server's stderr: request lines and any traceback


@contextmanager
def serve(tmp: Path, *args: str) -> Iterator[Served]:
    """``mrt serve --port 0 ARGS`` in a subprocess; stopped with Ctrl-C (SIGINT) at the end."""
    out, log = tmp / "serve.out", tmp / "serve.log"
    cmd = [sys.executable, "-m", "mrt.cli.main", "serve", "--port", "0", *args]
    with out.open("wb") as fo, log.open("wb") as fe:
        # Ctrl-C must reach it even when the test runner was started with SIGINT ignored (a
        # background job of a script, nohup): an ignored signal is inherited across exec
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, cwd=tmp,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + WAIT_S
        while not (m := re.search(r"open (http://\S+) in a browser", out.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mrt serve did not start (status {proc.poll()}):\n{out.read_text()}\n{log.read_text()}")
            time.sleep(0.1)
        yield Served(m.group(1), proc, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def server_answers(served: Served) -> list[int]:
    """Statuses of the ``POST /api/compare`` requests in the server's log, in order."""
    return [int(s) for s in re.findall(r'"POST /api/compare\?[^"]*" (\d{3})', served.log.read_text())]


# ----- the browser ----------------------------------------------------------------------------
@contextmanager
def browser(tmp: Path) -> Iterator[Any]:
    """Headless Chromium through the system chromedriver (no Selenium Manager, no downloads)."""
    webdriver, _ = _need_browser()
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "--force-device-scale-factor=1", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", f"--user-data-dir={tmp / 'chromium-profile'}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    try:  # the window's size includes the browser's own bars: fix the page's viewport instead
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, what: str, cond: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; page status {text(driver, 'status')!r}, error {text(driver, 'error')!r}")
        time.sleep(0.1)
    return value


def text(driver: Any, element_id: str) -> str:
    return str(driver.execute_script("return document.getElementById(arguments[0]).textContent", element_id))


def choose_file(driver: Any, path: Path) -> None:
    """What the drop zone's file picker does: set the (hidden) file input."""
    _, by = _need_browser()
    driver.find_element(by.ID, "file").send_keys(str(path.resolve()))  # chromedriver wants a plain absolute path
    wait_for(driver, "the file name under the drop zone", lambda: path.name in text(driver, "fname"))


def compress(driver: Any, budget: int | None) -> None:
    """Type the byte budget (empty: none), press Compress, wait for the answer."""
    _, by = _need_browser()
    field = driver.find_element(by.ID, "budget")
    field.clear()
    if budget is not None:
        field.send_keys(str(budget))
    driver.find_element(by.ID, "go").click()  # run() sets "Compressing…" before its first await
    wait_for(driver, "the comparison", lambda: text(driver, "status").startswith("Done") or text(driver, "error"))
    assert not text(driver, "error"), text(driver, "error")


def table(driver: Any) -> dict[str, dict[str, str]]:
    """The results table as {codec label: {column: cell text}} (the download cell under "")."""
    rows = driver.execute_script("""
        const heads = [...document.querySelectorAll('#heads th')].map((th) => th.textContent);
        return [...document.querySelectorAll('#rows tr')].map((tr) =>
            Object.fromEntries([...tr.children].map((td, i) => [heads[i], td.textContent])));""")
    return {row["codec"]: row for row in rows}


def image_of(driver: Any, element_id: str) -> np.ndarray:
    """The pixels an <img> shows (its PNG data URL), after checking it loaded with a real size."""
    done, nw, nh, src = driver.execute_script(
        "const i = document.getElementById(arguments[0]); return [i.complete, i.naturalWidth, i.naturalHeight, i.src];",
        element_id)
    assert done and (nw, nh) == (W, H), (element_id, done, nw, nh)
    assert src.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
        return np.asarray(im.convert("RGB"))


def shown_bytes(cell: str) -> int:
    m = re.fullmatch(r"(\d+) B( ⚠)?", cell.strip())
    assert m, f"a size in bytes, got {cell!r}"  # kib() shows plain bytes below 10 KiB
    return int(m.group(1))


def tokens(setting: str) -> int:
    m = re.fullmatch(r"(\d+) tokens/window", setting)
    assert m, setting
    return int(m.group(1))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def scene(h: int, w: int) -> np.ndarray:
    """A small photo-like picture: sky gradient, a sun, a hill with a wavy ridge, some grain."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([90 + 80 * y / h, 140 + 60 * y / h, 230 - 40 * y / h], axis=-1)
    sun = (x - 0.7 * w) ** 2 + (y - 0.3 * h) ** 2 < (0.12 * h) ** 2
    img[sun] = (250, 220, 120)
    hill = y > 0.62 * h + 0.08 * h * np.sin(x / w * 2 * np.pi * 1.5)
    img[hill] = np.stack([60 + 30 * np.sin(x / 9), 120 + 40 * np.cos(y / 7), 50 + 0 * x], axis=-1)[hill]
    grain = np.random.default_rng(0).normal(0, 3, img.shape)
    return np.clip(img + grain, 0, 255).astype(np.uint8)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as resp:
        assert resp.headers["Content-Type"] == "application/octet-stream"
        return bytes(resp.read())


def severe_console_messages(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver: Any, path: Path) -> np.ndarray:
    assert driver.save_screenshot(str(path)), path
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ----- the tests ------------------------------------------------------------------------------
def test_compare_page_in_chromium(tmp_path: Path) -> None:
    _need_browser()
    img = scene(H, W)
    photo = tmp_path / "hill photo.png"
    Image.fromarray(img).save(photo)
    with serve(tmp_path, "--metrics", "psnr,ms_ssim", "--classical", "jpeg", "--max-upload-mb", "1") as served, \
            browser(tmp_path) as driver:
        driver.get(served.url)
        wait_for(driver, "the model list (GET /api/info)", lambda: text(driver, "model"))
        assert driver.title.startswith("mrt")
        choose_file(driver, photo)

        # 1. The model's own rate, then a byte budget below it: rate control must pick fewer tokens.
        model = driver.execute_script("return document.getElementById('model').value")
        compress(driver, None)
        own = table(driver)
        assert list(own) == [f"MRT ({model})", "JPEG"], own
        own_bytes, own_k = shown_bytes(own[f"MRT ({model})"]["bytes"]), tokens(own[f"MRT ({model})"]["setting"])
        budget = (3 * own_bytes) // 4
        compress(driver, budget)
        rows = table(driver)
        mrt = next(row for label, row in rows.items() if label.startswith("MRT"))
        n_bytes, k = shown_bytes(mrt["bytes"]), tokens(mrt["setting"])
        assert n_bytes <= budget < own_bytes and k < own_k, (n_bytes, budget, own_bytes, k, own_k)
        assert mrt["bpp"] == f"{8 * n_bytes / (H * W):.4f}"
        assert f"MRT file: {n_bytes} of the {budget} byte budget." in text(driver, "notes")
        jpeg = rows["JPEG"]
        if shown_bytes(jpeg["bytes"]) > n_bytes:  # JPEG cannot get this small: flagged, explained
            assert "⚠" in jpeg["bytes"] and "JPEG cannot go down to" in text(driver, "notes")

        # 2. The images: MRT on the left, the exact upload on the right; the metrics are theirs.
        assert driver.execute_script("return document.getElementById('pickL').value") == "mrt"
        recon = image_of(driver, "left")
        assert f"{n_bytes} B" in text(driver, "tagL") and mrt["bpp"] in text(driver, "tagL")
        driver.execute_script("const s = document.getElementById('pickR'); s.value = 'original';"
                              "s.dispatchEvent(new Event('change'));")
        assert np.array_equal(image_of(driver, "right"), img)
        assert abs(float(mrt["PSNR (dB)"]) - psnr(img, recon)) <= 0.011, (mrt, psnr(img, recon))
        assert 0.0 < float(mrt["MS-SSIM"]) <= 1.0 and float(mrt["PSNR (dB)"]) > 12.0  # a picture, not noise
        assert not np.array_equal(recon, img)  # lossy, really the reconstruction

        # 3. The download link: the exact file whose size the table shows.
        _, by = _need_browser()
        link = driver.find_element(by.CSS_SELECTOR, "#rows tr:first-child a")
        assert link.text == "download .mrt" and link.get_attribute("download") == "hill_photo.mrt"
        data = fetch(link.get_attribute("href"))
        header = read_header(data)
        assert len(data) == n_bytes == header.total_bytes and (header.height, header.width) == (H, W)
        assert header.k == k  # fewer tokens than the variant's own: a version-2 header states k

        shot = screenshot(driver, tmp_path / "serve.png")
        assert shot.shape[:2] == (VIEWPORT[1], VIEWPORT[0]) and shot.std() > 10

        # 4. Bad uploads: a clear message in the page, never a server error.
        notes = tmp_path / "notes.png"
        notes.write_text("shopping list: milk, eggs\n")
        choose_file(driver, notes)
        driver.find_element(by.ID, "go").click()
        error = wait_for(driver, "the error message", lambda: text(driver, "error"))
        assert "cannot read the upload" in error and "not a supported image" in error, error  # the server's 400
        assert text(driver, "status") == ""
        big = tmp_path / "big.png"
        big.write_bytes(b"\x89PNG" + bytes(1024 * 1024))  # over --max-upload-mb 1: refused before sending
        choose_file(driver, big)
        assert "the server accepts up to 1024.0 KiB" in text(driver, "error")
        assert not driver.find_element(by.ID, "go").is_enabled()

        console = severe_console_messages(driver)
    assert all("status of 400" in m for m in console) and len(console) == 1, console  # the bad upload only
    assert served.proc.returncode == 0, served.log.read_text()  # Ctrl-C: a clean stop
    log = served.log.read_text()
    assert server_answers(served) == [200, 200, 400], log
    assert "Traceback" not in log and "internal error" not in log, log


@pytest.mark.skipif(not os.environ.get("MRT_SERVE_SCREENSHOT"), reason="opt-in: MRT_SERVE_SCREENSHOT=docs/serve_screenshot.png")
def test_docs_screenshot(tmp_path: Path) -> None:
    """Refresh the README's screenshot: kodim23 at 600 bytes beside JPEG and VVC, all metrics."""
    _need_browser()
    image = Path(os.environ.get("MRT_SERVE_SCREENSHOT_IMAGE", KODIM23))
    if not image.is_file():
        pytest.skip(f"no {image} (set MRT_SERVE_SCREENSHOT_IMAGE to another picture)")
    out = Path(os.environ["MRT_SERVE_SCREENSHOT"])
    out = out if out.is_absolute() else ROOT / out
    with serve(tmp_path) as served, browser(tmp_path) as driver:
        driver.get(served.url)
        wait_for(driver, "the model list (GET /api/info)", lambda: text(driver, "model"))
        choose_file(driver, image)
        compress(driver, 600)
        mrt = next(row for label, row in table(driver).items() if label.startswith("MRT"))
        assert shown_bytes(mrt["bytes"]) <= 600
        screenshot(driver, tmp_path / "shot.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "shot.png", out)
