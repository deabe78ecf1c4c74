"""The HTTP side of ``mrt serve``: the standard library's ``ThreadingHTTPServer`` and one handler.

Routes::

    GET  /                      the comparison page (one static HTML file, no external resources)
    GET  /api/info              models, classical codecs, limits (JSON)
    POST /api/compare?model=&max_bytes=&classical=jpeg,vvc&name=   body: the image file's bytes
    GET  /api/download/<id>     the exact .mrt file of an earlier comparison

Every answer other than the page and a download is JSON; errors are ``{"error": message}`` with
a 4xx status (5xx only for a bug, logged with its traceback on the server's terminal, never sent).
Uploads must be sent as ``application/octet-stream`` or ``image/*``: browsers cannot send those
cross-site without a CORS preflight (which this server never grants), and the ``Host`` header
must name this machine when it is bound to a loopback address (against DNS rebinding).
"""

from __future__ import annotations

import json
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from mrt.serve.state import ClientError, ServeConfig, ServeState

__all__ = ["ComparisonServer", "make_server"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
UPLOAD_TYPES = ("application/octet-stream", "image/")
_DRAIN_LIMIT = 64 * 1024 * 1024  # an over-large upload is read and dropped up to this much, so the client gets the answer
_CHUNK = 1 << 16
PAGE_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
            "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


def _host_name(header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8765`` -> ``::1``)."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0].lower()
    return header.rsplit(":", 1)[0].lower() if header.count(":") == 1 else header.lower()


class ComparisonServer(ThreadingHTTPServer):
    """A threading HTTP server holding the :class:`ServeState` its handlers use."""

    daemon_threads = True

    def __init__(self, cfg: ServeConfig, state: ServeState | None = None) -> None:
        self.cfg = cfg
        self.state = state if state is not None else ServeState(cfg)
        self.page = resources.files("mrt.serve").joinpath("page.html").read_bytes()
        super().__init__((cfg.host, cfg.port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}/"


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the page, the JSON API and the download store."""

    server: ComparisonServer
    server_version = "mrt-serve"

    # ----- responses ---------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """JSON instead of the standard HTML error page (malformed requests, unknown methods)."""
        self.close_connection = True
        self._json(code, {"error": message or HTTPStatus(code).phrase})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if not self.server.cfg.quiet:
            super().log_message(format, *args)

    # ----- checks ------------------------------------------------------------------------
    def _check_host(self) -> None:
        if self.server.cfg.host not in LOOPBACK_HOSTS:
            return  # the operator chose to listen beyond this machine
        if _host_name(self.headers.get("Host", "")) not in LOOPBACK_HOSTS:
            raise ClientError(403, "this server answers only requests addressed to localhost")

    def _read_upload(self) -> bytes:
        """The request body, within the configured size limit (:class:`ClientError` otherwise)."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise ClientError(411, "the upload needs a Content-Length header") from None
        if length < 0:
            raise ClientError(400, "invalid Content-Length")
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not ctype.startswith(UPLOAD_TYPES):
            self._drain(length)
            raise ClientError(415, "send the image file's bytes as application/octet-stream or image/*")
        limit = self.server.cfg.max_upload_bytes
        if length > limit:
            self._drain(length)
            raise ClientError(413, f"the upload is {length} bytes; the limit is {limit} bytes ({limit / 2**20:.0f} MiB)")
        body = self.rfile.read(length)
        if len(body) != length:
            raise ClientError(400, "the upload was cut short")
        return body

    def _drain(self, length: int) -> None:
        """Read and drop an over-large body (up to a bound) so that the client reads our answer."""
        self.close_connection = True
        left = min(length, _DRAIN_LIMIT)
        while left > 0:
            chunk = self.rfile.read(min(left, _CHUNK))
            if not chunk:
                break
            left -= len(chunk)

    # ----- routes ------------------------------------------------------------------------
    def _dispatch(self, route: Any) -> None:
        try:
            self._check_host()
            route()
        except ClientError as err:
            self._json(err.status, {"error": err.message})
        except Exception as err:  # noqa: BLE001 - a bug: log it here, send one line there
            print(f"mrt serve: internal error on {self.command} {self.path}", file=sys.stderr)
            traceback.print_exc()
            self._json(500, {"error": f"internal error ({type(err).__name__}: {err}); see the server's log"})

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's name
        self._dispatch(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch(self._post)

    def _get(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            self._send(200, self.server.page, "text/html; charset=utf-8", {"Content-Security-Policy": PAGE_CSP})
        elif path == "/api/info":
            self._json(200, self.server.state.info())
        elif path.startswith("/api/download/"):
            self._download(path.removeprefix("/api/download/").removesuffix(".mrt"))
        else:
            raise ClientError(404, f"no such page: {path}")

    def _download(self, file_id: str) -> None:
        stored = self.server.state.stored(file_id)
        if stored is None:
            raise ClientError(404, "no such file (the server keeps only the latest results; compress again)")
        disposition = f'attachment; filename="{stored.filename}"'
        self._send(200, stored.data, "application/octet-stream", {"Content-Disposition": disposition})

    def _post(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/api/compare":
            raise ClientError(404, f"no such endpoint: {parts.path}")
        body = self._read_upload()
        state = self.server.state
        self._json(200, state.run(state.parse(parts.query, body)))


def make_server(cfg: ServeConfig, state: ServeState | None = None) -> ComparisonServer:
    """A bound (not yet serving) server; call ``serve_forever()`` and later ``shutdown()``."""
    return ComparisonServer(cfg, state)
