"""``mrt serve [--host H] [--port P] [--model NAME|PATH] ...``: the local comparison page."""

from __future__ import annotations

import argparse
from typing import Any

from mrt.errors import ConfigError

DESCRIPTION = """\
Start a local web page that compares MRT with classical codecs at the same file size: drop an
image, pick a byte budget (max bytes) or a model, and see the MRT reconstruction beside the
original and beside JPEG (and VVC when this installation has it) bisected to the MRT file's
size, under one before/after slider, with sizes, bpp and metrics; the .mrt file can be
downloaded. The server listens on 127.0.0.1 only unless --host says otherwise, keeps every
upload and result in memory, and never opens a path sent by the page. Stop it with Ctrl-C.
"""


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="start a local page comparing MRT with classical codecs",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 picks a free one)")
    p.add_argument("-m", "--model", metavar="NAME|PATH", help="default model (default: the default shipped model)")
    p.add_argument("--max-upload-mb", type=float, default=20.0, metavar="MB", help="largest accepted upload (default: 20)")
    p.add_argument("--max-pixels", type=int, default=1 << 24, metavar="N", help="largest accepted image in pixels (default: 16777216)")
    p.add_argument("--metrics", default="psnr,ms_ssim,lpips,dists",
                   help="comma-separated metrics (LPIPS/DISTS shown when their weights are installed)")
    p.add_argument("--classical", default="jpeg,vvc", help="classical codecs offered (default: jpeg,vvc; unavailable ones are greyed out)")
    p.add_argument("--device", default="cpu", help="device of the metric networks (default: cpu)")
    p.add_argument("-q", "--quiet", action="store_true", help="no request log lines")


def _config(args: argparse.Namespace) -> Any:
    from mrt.eval.baselines import BaselineError, get_baseline
    from mrt.serve import ServeConfig

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.max_pixels <= 0:
        raise ConfigError("--max-upload-mb and --max-pixels must be positive")
    try:
        classical = tuple(get_baseline(n).name for n in _names(args.classical))
    except BaselineError as err:
        raise ConfigError(str(err)) from None
    return ServeConfig(host=args.host, port=args.port, model=args.model,
                       max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=args.max_pixels,
                       metrics=_names(args.metrics), classical=classical, device=args.device, quiet=args.quiet)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (which stops the server and exits with status 0)."""
    from mrt.eval.common import EvalError
    from mrt.serve import make_server

    try:
        cfg = _config(args)
        print("mrt serve: loading the model and metrics...", flush=True)
        server = make_server(cfg)
    except EvalError as err:  # unknown metric name
        raise ConfigError(str(err)) from None
    print(f"mrt serve: open {server.url} in a browser (Ctrl-C stops the server)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nmrt serve: stopped", flush=True)
    finally:
        server.server_close()
    return 0
