"""Exact byte-oriented range coder over integer frequency tables (queue order: FIFO).

Why not constriction: its categorical models take float probabilities and re-quantize them
internally (to 24 bits, with float arithmetic), so our integer tables would not be coded
exactly and the file format would depend on a library's internals. This coder uses the
integer tables as given; only Python integers are involved, so it is exact and portable.

Coder (all integers; see docs/bitstream.md for the normative description):

* State: ``low`` (the low 64 bits of the interval start; higher digits are already in the
  output, where carries are propagated), ``rng`` (interval width, ``2**56 <= rng <= 2**64``
  between symbols; ``2**64`` at the start).
* Symbol with frequency ``f``, cumulative frequency ``c`` (sum of the frequencies of the smaller
  symbols), table total ``T = 2**p`` (``p <= 24``): ``r = rng >> p``; ``low += r * c``;
  ``rng = r * f``, except for the last symbol with non-zero frequency (``c + f == T``), which
  also takes the rounding remainder: ``rng -= r * c``. While ``rng < 2**56`` the top byte of
  ``low`` is output and ``low``, ``rng`` shift left by 8 bits.
* Termination: the encoder picks, inside the final interval ``[low, low + rng)``, the value with
  the most trailing zero bytes. Since ``rng >= 2**56`` only its top byte can be non-zero; its
  8 bytes are appended with their trailing zero bytes removed (so the termination costs at
  most one byte). Bytes output before termination are never removed. The decoder reads zeros
  past the end of the payload, so it sees exactly the untrimmed stream.
* Early stop: a valid payload is never read more than the window (8 bytes) past its end,
  because ``finish()`` requires ``bytes shifted in - 8 + len(tail) == len(payload)``; the decoder
  raises ``BitstreamError`` as soon as it would, so a short payload cannot make it decode
  symbols (and the caller compute tables) for much longer than its length allows.
* Check: at ``finish()`` the decoder recomputes that final value from its own state and the
  length the payload must then have (bytes it shifted in + the trimmed final value). The payload
  is accepted only if both match, i.e. only if it is exactly the encoder's output for the
  decoded symbols: appended bytes, truncation (running out of data), corruption and a
  probability mismatch are detected here with high probability; the container checksum catches
  the rest.

Cost: the coded length is within a small fraction of a bit per symbol of the ideal
(``r >= 2**32``), plus at most about one byte of termination.
"""

from __future__ import annotations

import numpy as np

from mrt.errors import BitstreamError

_WINDOW_BITS = 64
_MASK = (1 << _WINDOW_BITS) - 1
_BOTTOM = 1 << (_WINDOW_BITS - 8)  # renormalize while rng < 2**56
_WINDOW_BYTES = _WINDOW_BITS // 8
#: Largest supported table total is 2**MAX_TABLE_BITS.
MAX_TABLE_BITS = 24


def _check_tables(freqs: np.ndarray, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``freqs (n, A)`` -> (int64 table, per-row log2 of the total as int64)."""
    table = np.asarray(freqs)
    if table.ndim != 2:
        raise ValueError(f"freqs must have shape (n, A), got {table.shape}")
    if n is not None and table.shape[0] != n:
        raise ValueError(f"{n} symbols but {table.shape[0]} frequency rows")
    if table.shape[0] and table.shape[1] < 1:
        raise ValueError("freqs need at least one symbol per row")
    if not np.issubdtype(table.dtype, np.integer):
        raise ValueError(f"freqs must be integers, got {table.dtype}")
    table = table.astype(np.int64)
    if np.any(table < 0):
        raise ValueError("freqs must be >= 0")
    totals = table.sum(axis=1)
    if np.any(totals < 1) or np.any(totals & (totals - 1)) or np.any(totals > 1 << MAX_TABLE_BITS):
        raise ValueError(f"every freqs row must sum to a power of two <= 2**{MAX_TABLE_BITS}")
    shifts = np.zeros(totals.shape, dtype=np.int64)
    for bit in range(MAX_TABLE_BITS + 1):  # exact integer log2 of the totals
        shifts[totals == (1 << bit)] = bit
    return table, shifts


def _check_symbols(symbols: np.ndarray) -> np.ndarray:
    """Validate a 1-D integer symbol array -> int64."""
    syms = np.asarray(symbols)
    if syms.ndim != 1:
        raise ValueError(f"symbols must be 1-D, got shape {syms.shape}")
    if syms.size and not np.issubdtype(syms.dtype, np.integer):
        raise ValueError(f"symbols must be integers, got {syms.dtype}")
    return syms.astype(np.int64)


def _final_tail(low: int, rng: int) -> tuple[int, bytes]:
    """Final value (may exceed 2**64: carry) and its window bytes without trailing zeros."""
    value = _final_value(low, rng)
    return value, (value & _MASK).to_bytes(_WINDOW_BYTES, "big").rstrip(b"\x00")


def _final_value(low: int, rng: int) -> int:
    """The value in ``[low, low + rng)`` with the most trailing zero bytes (may exceed 2**64)."""
    for zero_bytes in range(_WINDOW_BYTES, -1, -1):
        step = 1 << (8 * zero_bytes)
        value = -(-low // step) * step  # round low up to a multiple of step
        if value < low + rng:
            return value
    raise AssertionError("unreachable: zero_bytes == 0 always fits")


def _add_carry(out: bytearray) -> None:
    """Propagate a carry into the bytes already written."""
    i = len(out) - 1
    while out[i] == 0xFF:  # i >= 0 always: the interval never leaves [0, 1)
        out[i] = 0
        i -= 1
    out[i] += 1


def _symbol_slots(syms: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative frequency ``c`` and frequency ``f`` of each symbol under its row."""
    n_sym = table.shape[1]
    if syms.size and (syms.min() < 0 or syms.max() >= n_sym):
        raise ValueError(f"symbols must be in [0, {n_sym})")
    rows = np.arange(syms.size)
    f = table[rows, syms]
    if np.any(f <= 0):
        raise ValueError("a symbol has frequency 0 in its table and cannot be coded")
    c = np.cumsum(table, axis=1)[rows, syms] - f
    return c, f


class SymbolEncoder:
    """Range encoder. Call ``encode`` any number of times, then ``finish()`` once."""

    def __init__(self) -> None:
        self._out = bytearray()
        self._low = 0
        self._rng = 1 << _WINDOW_BITS
        self._done = False

    def encode(self, symbols: np.ndarray, freqs: np.ndarray) -> None:
        """Append ``symbols (n,)``, symbol ``i`` coded with the integer table ``freqs[i]``."""
        if self._done:
            raise RuntimeError("encoder already finished")
        syms = _check_symbols(symbols)
        table, shifts = _check_tables(freqs, syms.size)
        if syms.size == 0:
            return
        c, f = _symbol_slots(syms, table)
        last = (c + f) == (np.int64(1) << shifts)
        self._encode_slots(c.tolist(), f.tolist(), shifts.tolist(), last.tolist())

    def _encode_slots(self, cs: list[int], fs: list[int], ps: list[int], lasts: list[bool]) -> None:
        """The coding loop (plain Python integers for exactness)."""
        out, low, rng = self._out, self._low, self._rng
        for c, f, p, last in zip(cs, fs, ps, lasts):
            r = rng >> p
            low += r * c
            rng = rng - r * c if last else r * f
            if low > _MASK:
                _add_carry(out)
                low &= _MASK
            while rng < _BOTTOM:
                out.append(low >> (_WINDOW_BITS - 8))
                low = (low << 8) & _MASK
                rng <<= 8
        self._low, self._rng = low, rng

    def finish(self) -> bytes:
        """Terminate the stream and return the payload (see the module docstring)."""
        if self._done:
            raise RuntimeError("encoder already finished")
        self._done = True
        out = self._out
        value, tail = _final_tail(self._low, self._rng)
        if value > _MASK:
            _add_carry(out)
        return bytes(out + tail)


class SymbolDecoder:
    """Range decoder mirroring :class:`SymbolEncoder` call for call."""

    def __init__(self, payload: bytes) -> None:
        self._data = bytes(payload)
        self._pos = 0
        self._low = 0
        self._rng = 1 << _WINDOW_BITS
        self._code = 0  # code value minus low; always in [0, rng)
        self._done = False
        for _ in range(_WINDOW_BYTES):
            self._code = (self._code << 8) | self._next_byte()

    def _next_byte(self) -> int:
        """Next payload byte; zeros past the end (the encoder strips trailing zeros)."""
        pos = self._pos
        self._pos = pos + 1
        return self._data[pos] if pos < len(self._data) else 0

    def decode(self, freqs: np.ndarray) -> np.ndarray:
        """Decode ``len(freqs)`` symbols, symbol ``i`` with table ``freqs[i]`` -> int64 ``(n,)``."""
        if self._done:
            raise RuntimeError("decoder already finished")
        table, shifts = _check_tables(freqs)
        n = table.shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        cdf = np.zeros((n, table.shape[1] + 1), dtype=np.int64)
        np.cumsum(table, axis=1, out=cdf[:, 1:])
        return np.asarray(self._decode_rows(cdf, shifts.tolist()), dtype=np.int64)

    def _decode_rows(self, cdf: np.ndarray, shifts: list[int]) -> list[int]:
        """The decoding loop; ``cdf (n, A + 1)`` starts at 0 and ends at the row total."""
        low, rng, code = self._low, self._rng, self._code
        data, pos, size = self._data, self._pos, len(self._data)
        limit = size + _WINDOW_BYTES  # a valid stream never reads further (see finish)
        search = np.searchsorted
        symbols: list[int] = []
        for row, p in zip(cdf, shifts):
            r = rng >> p
            target = min(code // r, (1 << p) - 1)
            s = int(search(row, target, side="right")) - 1  # last s with cdf[s] <= target
            c = int(row[s])
            f = int(row[s + 1]) - c
            code -= r * c
            low = (low + r * c) & _MASK
            rng = rng - r * c if c + f == (1 << p) else r * f
            while rng < _BOTTOM:
                code = (code << 8) | (data[pos] if pos < size else 0)
                pos += 1
                low = (low << 8) & _MASK
                rng <<= 8
                if pos > limit:
                    raise BitstreamError(
                        "truncated or corrupt file (the coded data ends before the last symbol)"
                    )
            symbols.append(s)
        self._low, self._rng, self._code, self._pos = low, rng, code, pos
        return symbols

    def finish(self) -> None:
        """Check that the payload is exactly what the encoder wrote for the decoded symbols.

        Raises ``BitstreamError`` for appended bytes, and with high probability for truncation,
        corruption or a probability mismatch between encoder and decoder.
        """
        if self._done:
            raise RuntimeError("decoder already finished")
        self._done = True
        value, tail = _final_tail(self._low, self._rng)
        expected_size = self._pos - _WINDOW_BYTES + len(tail)
        size = len(self._data)
        if size > expected_size:
            raise BitstreamError(
                f"corrupt file ({size - expected_size} unexpected byte(s) after the coded data)"
            )
        if size < expected_size:
            raise BitstreamError(
                f"truncated or corrupt file (coded data ends {expected_size - size} byte(s) early)"
            )
        if self._code != value - self._low:
            raise BitstreamError(
                "corrupt or truncated file (entropy decoder ended in an inconsistent state)"
            )


def estimate_bits(symbols: np.ndarray, freqs: np.ndarray) -> float:
    """Ideal code length in bits of ``symbols`` under the integer tables ``freqs``."""
    syms = _check_symbols(symbols)
    table, shifts = _check_tables(freqs, syms.size)
    if syms.size == 0:
        return 0.0
    _, f = _symbol_slots(syms, table)
    return float(shifts.sum() - np.log2(f.astype(np.float64)).sum())
