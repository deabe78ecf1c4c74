"""``mrt serve``: the comparison server end to end on port 0 with a tiny model (PSNR/MS-SSIM, JPEG)."""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import structured_image
from mrt.cli.main import main
from mrt.codec import MODEL_PATH_ENV, Codec
from mrt.serve import ComparisonServer, ServeConfig, make_server
from mrt.serve.state import download_name

MAX_UPLOAD = 64 * 1024
H, W = 48, 64


@pytest.fixture(scope="module")
def server(tiny_model_file: Path) -> Iterator[ComparisonServer]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODEL_PATH_ENV, str(tiny_model_file.parent))
        cfg = ServeConfig(port=0, model="tiny-k8", metrics=("psnr", "ms_ssim"), classical=("jpeg",),
                          max_upload_bytes=MAX_UPLOAD, max_pixels=200 * 200, quiet=True)
        srv = make_server(cfg)
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        try:
            yield srv
        finally:
            srv.shutdown()
            srv.server_close()
            thread.join(10)


def _request(srv: ComparisonServer, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    hdrs = {"Content-Type": "application/octet-stream"} if body is not None else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(srv.url.rstrip("/") + path, data=body, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def _json_error(status_body: tuple[int, Any, bytes], status: int) -> str:
    code, headers, body = status_body
    assert code == status, body
    assert headers["Content-Type"].startswith("application/json")
    return str(json.loads(body)["error"])


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _decode_data_url(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        return np.asarray(im.convert("RGB"))


def test_page_and_info(server: ComparisonServer) -> None:
    code, headers, body = _request(server, "GET", "/")
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert b"<script>" in body and b"://" not in body  # one self-contained page: no external resources
    assert "connect-src 'self'" in headers["Content-Security-Policy"]
    code, _, body = _request(server, "GET", "/api/info")
    info = json.loads(body)
    assert code == 200 and info["default_model"] == "tiny-k8" and "tiny-k4" in info["models"]
    assert [c["name"] for c in info["classical"]] == ["jpeg"] and info["max_upload_bytes"] == MAX_UPLOAD


def test_compare_and_download(server: ComparisonServer) -> None:
    img = structured_image(H, W, seed=7)
    code, _, body = _request(server, "POST", "/api/compare?model=tiny-k8&classical=jpeg&name=../dir/my%20photo.png",
                             _png(img))
    assert code == 200, body
    out = json.loads(body)
    assert (out["width"], out["height"]) == (W, H) and out["filename"] == "my_photo.mrt"
    assert np.array_equal(_decode_data_url(out["original"]), img)
    mrt, jpeg = out["results"]
    assert mrt["codec"] == "mrt" and jpeg["codec"] == "jpeg"
    code, headers, data = _request(server, "GET", mrt["download"])
    assert code == 200 and headers["Content-Type"] == "application/octet-stream"
    assert 'filename="my_photo.mrt"' in headers["Content-Disposition"]
    assert len(data) == mrt["bytes"] and mrt["bpp"] == pytest.approx(8 * len(data) / (H * W))
    codec = Codec.load("tiny-k8")
    assert data == codec.compress(img)  # the exact file the codec writes
    assert np.array_equal(_decode_data_url(mrt["image"]), codec.decompress(data))
    assert jpeg["over_budget"] == (jpeg["bytes"] > mrt["bytes"]) and jpeg["setting"].startswith("q=")
    assert _decode_data_url(jpeg["image"]).shape == (H, W, 3)
    for r in (mrt, jpeg):
        assert set(r["metrics"]) == {"psnr", "ms_ssim"} and all(isinstance(v, float) for v in r["metrics"].values())


def test_byte_budget(server: ComparisonServer) -> None:
    png = _png(structured_image(H, W, seed=3))
    full = json.loads(_request(server, "POST", "/api/compare?classical=", png)[2])["results"][0]["bytes"]
    code, _, body = _request(server, "POST", f"/api/compare?classical=&max_bytes={full - 1}", png)
    assert code == 200, body
    out = json.loads(body)
    assert out["budget"] == full - 1 and out["results"][0]["bytes"] <= full - 1 and len(out["results"]) == 1
    _json_error(_request(server, "POST", "/api/compare?max_bytes=3", png), 422)  # below any file's size
    _json_error(_request(server, "POST", "/api/compare?max_bytes=many", png), 400)


def test_bad_uploads_get_json_errors(server: ComparisonServer) -> None:
    assert "limit" in _json_error(_request(server, "POST", "/api/compare", b"\0" * (MAX_UPLOAD + 1)), 413)
    assert "not a supported image" in _json_error(_request(server, "POST", "/api/compare", b"hello, not an image"), 400)
    assert "empty" in _json_error(_request(server, "POST", "/api/compare", b""), 400)
    big = _png(np.zeros((201, 200, 3), np.uint8))  # small file, too many pixels
    assert "pixels" in _json_error(_request(server, "POST", "/api/compare", big), 413)
    form = _request(server, "POST", "/api/compare", b"a=b", {"Content-Type": "application/x-www-form-urlencoded"})
    _json_error(form, 415)
    png = _png(structured_image(H, W))
    assert "unknown model" in _json_error(_request(server, "POST", "/api/compare?model=/etc/passwd", png), 400)
    assert "unknown classical" in _json_error(_request(server, "POST", "/api/compare?classical=gif", png), 400)


def test_unknown_paths_and_hosts(server: ComparisonServer) -> None:
    _json_error(_request(server, "GET", "/nope"), 404)
    _json_error(_request(server, "GET", "/api/download/0123456789abcdef"), 404)
    _json_error(_request(server, "POST", "/api/nope", b"x"), 404)
    _json_error(_request(server, "PUT", "/api/compare", b"x"), 501)
    _json_error(_request(server, "GET", "/api/info", headers={"Host": "evil.example:8765"}), 403)


def test_download_names() -> None:
    assert download_name("C:\\Users\\me\\kodim01.png") == "kodim01.mrt"
    assert download_name("../../etc/passwd") == "passwd.mrt"
    assert download_name('"quoted";.png') == "quoted.mrt"
    assert download_name("") == "image.mrt"


def test_cli_help_and_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    assert "127.0.0.1" in capsys.readouterr().out
    assert main(["serve", "--classical", "nosuchcodec"]) == 2
    assert main(["serve", "--port", "70000"]) == 2
