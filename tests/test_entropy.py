"""mrt.entropy: quantize_pmf properties, exact range coding round trips, overhead, checks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mrt.entropy import SymbolDecoder, SymbolEncoder, estimate_bits, quantize_pmf
from mrt.errors import BitstreamError


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _sample(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One symbol per row of ``probs``."""
    cum = np.cumsum(probs.astype(np.float64), axis=1)
    u = rng.random((probs.shape[0], 1)) * cum[:, -1:]
    return np.minimum((cum < u).sum(axis=1), probs.shape[1] - 1)


def _random_case(seed: int, n: int, n_sym: int, sharpness: float, precision: int = 16):
    rng = np.random.default_rng(seed)
    probs = _softmax(rng.normal(size=(n, n_sym)) * sharpness)
    return _sample(rng, probs), quantize_pmf(probs, precision)


def _roundtrip(symbols: np.ndarray, freqs: np.ndarray, chunk: int = 37) -> bytes:
    enc = SymbolEncoder()
    for k in range(0, len(symbols), chunk):
        enc.encode(symbols[k : k + chunk], freqs[k : k + chunk])
    payload = enc.finish()
    dec = SymbolDecoder(payload)
    parts = [dec.decode(freqs[k : k + chunk]) for k in range(0, len(symbols), chunk)]
    dec.finish()
    decoded = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    assert decoded.dtype == np.int64
    np.testing.assert_array_equal(decoded, symbols)
    return payload


# ----------------------------------------------------------------------------- quantize_pmf


@pytest.mark.parametrize("precision", [8, 12, 16, 20, 24])
@pytest.mark.parametrize("n_sym", [1, 2, 3, 17, 256])
def test_quantize_rows_sum_and_floor(precision: int, n_sym: int) -> None:
    rng = np.random.default_rng(precision * 1000 + n_sym)
    for sharpness in (0.0, 1.0, 8.0, 40.0):
        probs = _softmax(rng.normal(size=(50, n_sym)) * sharpness)
        q = quantize_pmf(probs, precision)
        assert q.dtype == np.int32 and q.shape == probs.shape
        assert np.all(q >= 1)
        assert np.all(q.astype(np.int64).sum(axis=1) == 1 << precision)


def test_quantize_known_value() -> None:
    # free = 16 - 3 = 13 units split 6.5 / 3.25 / 3.25 -> 6, 3, 3 + the leftover unit to symbol 0.
    q = quantize_pmf(np.array([[0.5, 0.25, 0.25]], dtype=np.float32), precision=4)
    np.testing.assert_array_equal(q, [[8, 4, 4]])
    # Ties in the remainder go to the lower index.
    q = quantize_pmf(np.array([[1, 1, 1]], dtype=np.float32) / 3, precision=3)
    np.testing.assert_array_equal(q, [[3, 3, 2]])


def test_quantize_close_to_probabilities_and_monotone() -> None:
    rng = np.random.default_rng(1)
    probs = _softmax(rng.normal(size=(200, 64)) * 3)
    q = quantize_pmf(probs, 16).astype(np.int64)
    free = (1 << 16) - 64
    weights = np.floor(probs.astype(np.float64) * 2**24)
    share = weights * free / weights.sum(axis=1, keepdims=True)
    assert np.all(np.abs(q - 1 - share) < 1.0)
    for w_row, q_row in zip(weights, q):  # a larger weight never gets a smaller frequency
        larger = w_row[:, None] > w_row[None, :]
        assert np.all(q_row[:, None] >= q_row[None, :], where=larger)


def test_quantize_deterministic_and_shape_generic() -> None:
    rng = np.random.default_rng(2)
    probs = rng.random((4, 5, 33)).astype(np.float32)
    a = quantize_pmf(probs, 16)
    b = quantize_pmf(probs.astype(np.float64), 16)  # cast to float32 first: identical
    c = quantize_pmf(probs.reshape(20, 33), 16).reshape(4, 5, 33)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert a.shape == probs.shape


def test_quantize_degenerate_rows() -> None:
    probs = np.zeros((3, 4), dtype=np.float32)
    probs[1, 2] = 1.0  # one-hot
    probs[2] = [1e-30, 0, 0, 5.0]  # tiny and > 1 (clipped)
    q = quantize_pmf(probs, 8)
    np.testing.assert_array_equal(q[0], [64, 64, 64, 64])  # all-zero row -> uniform
    np.testing.assert_array_equal(q[1], [1, 1, 253, 1])
    np.testing.assert_array_equal(q[2], [1, 1, 1, 253])


@pytest.mark.parametrize("key_limit", [None, 0])
def test_largest_remainder_selection(monkeypatch: pytest.MonkeyPatch, key_limit: int | None) -> None:
    from mrt.entropy import quantize

    if key_limit is not None:  # exercise the argsort fallback used for huge alphabets
        monkeypatch.setattr(quantize, "_KEY_LIMIT", key_limit)
    rng = np.random.default_rng(11)
    remainder = rng.integers(0, 4, size=(300, 9)).astype(np.int64)  # many ties
    count = rng.integers(0, 9, size=(300, 1))
    mask = quantize._largest(remainder, count)
    for rem, k, row in zip(remainder.tolist(), count[:, 0].tolist(), mask):
        chosen = sorted(range(9), key=lambda i: (-rem[i], i))[:k]
        assert sorted(np.flatnonzero(row).tolist()) == sorted(chosen)


def test_quantize_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        quantize_pmf(np.array([[0.5, np.nan]], dtype=np.float32))
    with pytest.raises(ValueError):
        quantize_pmf(np.array([[0.5, -0.1]], dtype=np.float32))
    with pytest.raises(ValueError):
        quantize_pmf(np.ones((1, 300), dtype=np.float32), precision=8)
    with pytest.raises(ValueError):
        quantize_pmf(np.ones((1, 2), dtype=np.float32), precision=25)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("n_sym,precision", [(2, 16), (3, 16), (16, 16), (256, 16), (5000, 20), (2, 24)])
@pytest.mark.parametrize("sharpness", [0.5, 4.0, 30.0])
def test_roundtrip_random_tables(n_sym: int, precision: int, sharpness: float) -> None:
    symbols, freqs = _random_case(n_sym + int(sharpness * 10), 400, n_sym, sharpness, precision)
    _roundtrip(symbols, freqs)


def test_roundtrip_peaked_with_rare_symbols() -> None:
    rng = np.random.default_rng(3)
    n, n_sym = 3000, 64
    freqs = np.ones((n, n_sym), dtype=np.int64)
    hot = rng.integers(0, n_sym, n)
    freqs[np.arange(n), hot] = (1 << 16) - (n_sym - 1)
    symbols = np.where(rng.random(n) < 0.97, hot, rng.integers(0, n_sym, n))  # rare ones cost 16 bits
    _roundtrip(symbols, freqs)
    # Worst case: every symbol has frequency 1 (16 bits each).
    symbols = (hot + 1) % n_sym
    payload = _roundtrip(symbols, freqs)
    assert abs(len(payload) * 8 - estimate_bits(symbols, freqs)) <= 16


def test_roundtrip_mixed_precisions_zero_entries_and_alphabet_one() -> None:
    rng = np.random.default_rng(4)
    rows = []
    symbols = []
    for i in range(300):
        bits = int(rng.integers(0, 25))
        n_sym = 1 if bits == 0 else int(rng.integers(1, min(1 << bits, 40) + 1))
        row = np.zeros(41, dtype=np.int64)
        cuts = np.sort(rng.integers(0, (1 << bits) + 1, n_sym - 1))
        row[:n_sym] = np.diff(np.concatenate([[0], cuts, [1 << bits]]))  # may contain zeros
        nonzero = np.flatnonzero(row)
        rows.append(row)
        symbols.append(int(rng.choice(nonzero)))
    _roundtrip(np.array(symbols), np.stack(rows), chunk=7)


def test_empty_stream_and_empty_calls() -> None:
    enc = SymbolEncoder()
    enc.encode(np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.int32))
    assert enc.finish() == b""
    dec = SymbolDecoder(b"")
    assert dec.decode(np.zeros((0, 4), dtype=np.int32)).shape == (0,)
    dec.finish()


def test_payload_is_deterministic_golden() -> None:
    """Locks the coded format: changing the coder changes these bytes."""
    freqs = np.array([[1, 3, 4, 8]] * 6, dtype=np.int32)  # total 16
    symbols = np.array([3, 0, 2, 1, 3, 3])
    enc = SymbolEncoder()
    enc.encode(symbols, freqs)
    payload = enc.finish()
    assert payload == _roundtrip(symbols, freqs)
    assert payload.hex() == GOLDEN_HEX


GOLDEN_HEX = "8268"


def _reference_encode(symbols: np.ndarray, freqs: np.ndarray) -> bytes:
    """The same code with an unbounded integer ``low`` (no carry handling needed)."""
    low, rng, shifted = 0, 1 << 64, 0
    for s, row in zip(symbols.tolist(), freqs.astype(np.int64).tolist()):
        total = sum(row)
        p = total.bit_length() - 1
        c, f = sum(row[:s]), row[s]
        r = rng >> p
        low += r * c
        rng = rng - r * c if c + f == total else r * f
        while rng < 1 << 56:
            low, rng, shifted = low << 8, rng << 8, shifted + 1
    for k in range(8, -1, -1):
        step = 1 << (8 * k)
        value = -(-low // step) * step
        if value < low + rng:
            break
    full = value.to_bytes(shifted + 8, "big")
    return full[:shifted] + full[shifted:].rstrip(b"\x00")


@pytest.mark.parametrize("seed", range(20))
def test_matches_unbounded_reference_including_carries(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, n_sym = 500, 8
    freqs = quantize_pmf(_softmax(rng.normal(size=(n, n_sym)) * 2), 12)
    # Mostly the last symbols: low keeps climbing towards the top, so carries happen often.
    symbols = np.where(rng.random(n) < 0.8, n_sym - 1 - rng.integers(0, 2, n), rng.integers(0, n_sym, n))
    payload = _roundtrip(symbols, freqs)
    assert payload == _reference_encode(symbols, freqs)


def test_encoder_rejects_bad_arguments() -> None:
    enc = SymbolEncoder()
    table = np.array([[2, 0, 2]], dtype=np.int32)
    with pytest.raises(ValueError, match="frequency 0"):
        enc.encode(np.array([1]), table)
    with pytest.raises(ValueError, match="power of two"):
        enc.encode(np.array([0]), np.array([[3, 2]]))
    with pytest.raises(ValueError):
        enc.encode(np.array([3]), table)
    with pytest.raises(ValueError):
        enc.encode(np.array([0, 0]), table)
    with pytest.raises(ValueError):
        enc.encode(np.array([0]), np.array([[0.5, 0.5]]))
    enc.finish()
    with pytest.raises(RuntimeError):
        enc.finish()


# ----------------------------------------------------------------------------- overhead


@pytest.mark.parametrize("n", [100, 1000, 10000])
def test_overhead_is_at_most_two_bytes(n: int) -> None:
    worst = -1e9
    for seed in range(6 if n < 10000 else 2):
        for n_sym, sharp in ((2, 1.0), (256, 3.0), (4096, 6.0)):
            if n * n_sym > 4_000_000:
                continue
            precision = 16 if n_sym <= 256 else 20
            symbols, freqs = _random_case(seed * 7 + n_sym, n, n_sym, sharp, precision)
            enc = SymbolEncoder()
            enc.encode(symbols, freqs)
            payload = enc.finish()
            worst = max(worst, len(payload) * 8 - estimate_bits(symbols, freqs))
    assert worst <= 16.0, f"overhead {worst:.1f} bits"


def test_estimate_bits_value() -> None:
    freqs = np.array([[1, 3, 4, 8], [8, 4, 3, 1]])
    assert estimate_bits(np.array([3, 3]), freqs) == pytest.approx(1.0 + 4.0)
    assert estimate_bits(np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.int64)) == 0.0


# ----------------------------------------------------------------------------- error detection


def _encode(symbols: np.ndarray, freqs: np.ndarray) -> bytes:
    enc = SymbolEncoder()
    enc.encode(symbols, freqs)
    return enc.finish()


def _decodes_cleanly(payload: bytes, freqs: np.ndarray) -> np.ndarray | None:
    dec = SymbolDecoder(payload)
    try:
        out = dec.decode(freqs)  # may stop early: the payload ran out (see the test below)
        dec.finish()
    except BitstreamError:
        return None
    return out


def test_finish_rejects_trailing_bytes() -> None:
    symbols, freqs = _random_case(5, 200, 16, 2.0)
    payload = _encode(symbols, freqs)
    for extra in (b"\x00", b"\x01", b"\xff\xff", b"garbage"):
        assert _decodes_cleanly(payload + extra, freqs) is None


def test_finish_rejects_or_changes_on_truncation() -> None:
    symbols, freqs = _random_case(6, 300, 16, 2.0)
    payload = _encode(symbols, freqs)
    for cut in range(len(payload)):
        out = _decodes_cleanly(payload[:cut], freqs)
        assert out is None or not np.array_equal(out, symbols)  # never the same, "valid" result


def test_finish_checks_the_final_code_value() -> None:
    """Same length, same decoded symbols, but the termination byte is not the encoder's."""
    checked = 0
    for seed in range(30):
        symbols, freqs = _random_case(200 + seed, 100, 16, 2.0)
        payload = _encode(symbols, freqs)
        for delta in (-1, 1):
            if not payload or not 1 <= payload[-1] + delta <= 255:
                continue
            new_last = payload[-1] + delta
            altered = payload[:-1] + bytes([new_last])
            dec = SymbolDecoder(altered)
            if not np.array_equal(dec.decode(freqs), symbols):
                continue
            checked += 1
            with pytest.raises(BitstreamError, match="inconsistent state"):
                dec.finish()
    assert checked > 10


def test_decoding_stops_once_the_payload_cannot_hold_the_symbols() -> None:
    """A payload far too short for the symbols asked is refused during ``decode``, after reading
    at most the window (8 bytes) past its end, not after decoding every symbol."""
    symbols, freqs = _random_case(9, 2000, 16, 2.0)
    payload = _encode(symbols, freqs)
    for cut in (0, 1, 10, len(payload) // 2):
        dec = SymbolDecoder(payload[:cut])
        with pytest.raises(BitstreamError, match="ends before the last symbol"):
            dec.decode(freqs)
    # the same, over many calls: the call in which the data runs out raises
    dec = SymbolDecoder(payload[:20])
    calls = 0
    with pytest.raises(BitstreamError):
        for start in range(0, len(symbols), 10):
            dec.decode(freqs[start : start + 10])
            calls += 1
    assert calls * 10 < 200  # 20 bytes hold ~60 of these symbols, not 2000
    # a valid payload decodes whole, however it is split
    dec = SymbolDecoder(payload)
    out = np.concatenate([dec.decode(freqs[s : s + 7]) for s in range(0, len(symbols), 7)])
    dec.finish()
    np.testing.assert_array_equal(out, symbols)


def test_decoder_never_crashes_on_garbage() -> None:
    rng = np.random.default_rng(7)
    _, freqs = _random_case(7, 100, 256, 3.0)
    rejected = 0
    for _ in range(200):
        garbage = rng.bytes(int(rng.integers(0, 60)))
        rejected += _decodes_cleanly(garbage, freqs) is None
    assert rejected >= 150  # the exactness check alone rejects most random payloads


def test_probability_mismatch_is_usually_detected_by_coder() -> None:
    rng = np.random.default_rng(8)
    caught = 0
    for trial in range(100):
        symbols, freqs = _random_case(100 + trial, 200, 64, 3.0)
        payload = _encode(symbols, freqs)
        other = quantize_pmf(_softmax(rng.normal(size=freqs.shape) * 3.0), 16)
        out = _decodes_cleanly(payload, other)
        caught += out is None
    assert caught >= 80  # the rest is left to the container checksum (see test_bitstream)


def test_speed_at_least_20k_symbols_per_second() -> None:
    """CPU time (not wall time: the machine may be busy training)."""
    symbols, freqs = _random_case(9, 20000, 256, 3.0)
    t0 = time.process_time()
    payload = _encode(symbols, freqs)
    t1 = time.process_time()
    dec = SymbolDecoder(payload)
    out = dec.decode(freqs)
    dec.finish()
    t2 = time.process_time()
    np.testing.assert_array_equal(out, symbols)
    assert t1 - t0 < 1.0 and t2 - t1 < 1.0, (t1 - t0, t2 - t1)
