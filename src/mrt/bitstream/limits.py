"""What a header may claim for the bytes that follow it: the payload floor and the pixel cap.

A file's header decides how much work decoding it takes (how many symbols the range decoder
pulls, how many network calls and pixels follow). Honest files carry at least a few bits per
coded token (measured in docs/bitstream.md: 6.4 bits or more per token and window for the
shipped model, on flat images; 8.6 or more on Kodak), so the format requires a *floor* far
below that: at least one bit per coded token and per 128 x 128 block of the image. A file
whose body is shorter cannot be valid and is refused right after its header is read, before
any model is loaded; the encoder pads the rare honest payload that would fall short
(``mrt.bitstream.pack``). The pixel cap is a policy, not a format rule: the reader refuses
images over ``max_pixels`` decoded pixels unless asked for more.
"""

from __future__ import annotations

from mrt.errors import BitstreamError

#: Side of the blocks the floor counts, in pixels (= the shipped models' window).
FLOOR_BLOCK = 128
#: Bits the body must hold per coded token and per block (one token per window per ``k``).
FLOOR_BITS_PER_TOKEN = 1


def floor_blocks(height: int, width: int) -> int:
    """Number of ``FLOOR_BLOCK`` x ``FLOOR_BLOCK`` blocks covering an image (partial ones count)."""
    return -(-height // FLOOR_BLOCK) * -(-width // FLOOR_BLOCK)


def min_body_bytes(height: int, width: int, k: int) -> int:
    """Fewest bytes after the header that a ``width`` x ``height`` file with ``k`` tokens per window may have.

    ``floor(k * blocks * FLOOR_BITS_PER_TOKEN / 8)``: rounded down, so that images of a few
    blocks have a floor of 0 and never need padding.
    """
    return k * floor_blocks(height, width) * FLOOR_BITS_PER_TOKEN // 8


def floor_problem(height: int, width: int, body_bytes: int, k: int, k_known: bool = True) -> str | None:
    """The reason a body of ``body_bytes`` is too short for its header, or None when it is long enough."""
    need = min_body_bytes(height, width, k)
    if body_bytes >= need:
        return None
    tokens = f" at {k} token{'s' if k != 1 else ''} per window" if k_known else ""
    return (
        f"corrupt or truncated file ({body_bytes} bytes after the header; "
        f"a {width}x{height} image{tokens} needs at least {need})"
    )


def pixels_problem(height: int, width: int, max_pixels: int | None) -> str | None:
    """The reason an image is over the decoding limit, or None (``max_pixels=None``: no limit)."""
    if max_pixels is None or height * width <= max_pixels:
        return None
    return (
        f"image is {width}x{height} = {height * width} pixels, over the limit of {max_pixels} "
        f"decoded pixels (raise it with max_pixels / --max-pixels)"
    )


def check_pixels(height: int, width: int, max_pixels: int | None) -> None:
    """Raise ``BitstreamError`` when a ``width`` x ``height`` image is over ``max_pixels``."""
    problem = pixels_problem(height, width, max_pixels)
    if problem is not None:
        raise BitstreamError(problem)
