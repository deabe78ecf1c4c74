"""``mrt serve``: a local web page comparing MRT with classical codecs at the same file size.

:mod:`.compare` codes one image (MRT, then JPEG/VVC bisected to the MRT file's size) and scores
it; :mod:`.state` holds the models, limits and the download store; :mod:`.server` is the HTTP
side (standard library only); ``page.html`` is the page (plain HTML, CSS and JS, no CDN).
"""

from mrt.serve.compare import CodedImage, Comparison, compare
from mrt.serve.server import ComparisonServer, make_server
from mrt.serve.state import ClientError, ServeConfig, ServeState

__all__ = [
    "ClientError",
    "CodedImage",
    "Comparison",
    "ComparisonServer",
    "ServeConfig",
    "ServeState",
    "compare",
    "make_server",
]
