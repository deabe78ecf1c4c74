"""Mutated ``.mrt`` files for the decoder fuzz test (``tests/test_fuzz.py``) and benchmark
(``benchmarks/fuzz_decoder.py``): seeded, no ``../shared``.

Seed files are small synthetic images compressed with the shipped default model (and any extra
files given). Mutant ``i`` of a run depends only on ``(seed, i)`` and the seed files, so a case
can be replayed alone. Mutations: bit flips, byte sets, inserts, deletes, truncations, and header
edits (size, model id, tokens per window, version, flags) **with the checksum recomputed** as
docs/bitstream.md defines it (CRC-16 over the header bytes before it, the body and the digest of
the symbols the decoder decodes), so that edits reach the decoder past the checksum.

Every byte-level mutant differs from its seed file. Every outcome must be a clean project error
(an ``MRTError``) or an image of the declared size.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mrt.bitstream import HEADER_SIZES, crc16, header_problems, read_header, symbols_digest
from mrt.errors import MRTError

KINDS = ("flip", "set", "insert", "delete", "truncate", "header")
#: How often each kind is drawn (header edits are the interesting ones past the checksum).
WEIGHTS = (25, 15, 10, 10, 10, 30)


def smooth_image(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth, colourful uint8 image [height, width, 3] with some noise (photo-like enough)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    a, b = 5 + 10 * rng.random(2)
    img = np.stack([128 + 100 * np.sin(x / a + y / 17), 128 + 90 * np.cos(y / b), (3 * x + y) % 256], axis=-1)
    return np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Seed:
    """A valid file and the digest of its symbols (what its checksum covers besides the bytes)."""

    data: bytes
    digest: bytes


@dataclass(frozen=True)
class Mutant:
    index: int
    kind: str
    note: str
    data: bytes


@dataclass(frozen=True)
class Outcome:
    """What decoding a mutant gave: ``image``, ``error`` (an ``MRTError``) or ``failure`` (anything else)."""

    index: int
    kind: str
    note: str
    result: str  # "image" | "error" | "failure"
    detail: str  # error class and message, or what was wrong
    seconds: float


class Mutator:
    """Makes mutant ``i`` of the seed files; ``max_side`` caps the sides that header edits declare."""

    def __init__(self, codec: object, seeds: list[Seed], seed: int = 0, max_side: int | None = 512) -> None:
        self.codec = codec
        self.seeds = seeds
        self.seed = seed
        self.max_side = max_side

    def mutant(self, index: int) -> Mutant:
        rng = random.Random(f"{self.seed}-{index}")
        source = rng.choice(self.seeds)
        kind = rng.choices(KINDS, WEIGHTS)[0]
        data, note = getattr(self, f"_{kind}")(rng, source)
        return Mutant(index, kind, note, data)

    # ----- byte-level mutations (the checksum is left as it is) -----
    def _flip(self, rng: random.Random, s: Seed) -> tuple[bytes, str]:
        b = bytearray(s.data)
        spots = [divmod(i, 8) for i in rng.sample(range(8 * len(b)), rng.choice((1, 1, 2, 3)))]  # distinct bits
        for pos, bit in spots:
            b[pos] ^= 1 << bit
        return bytes(b), f"bits {spots}"

    def _set(self, rng: random.Random, s: Seed) -> tuple[bytes, str]:
        b = bytearray(s.data)
        pos, value = rng.randrange(len(b)), rng.choice((0x00, 0xFF, rng.randrange(256)))
        if value == b[pos]:  # always a change
            value = (value + rng.randint(1, 255)) % 256
        b[pos] = value
        return bytes(b), f"byte {pos} = {value:#04x}"

    def _insert(self, rng: random.Random, s: Seed) -> tuple[bytes, str]:
        pos = rng.randrange(len(s.data) + 1)
        extra = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        return s.data[:pos] + extra + s.data[pos:], f"insert {extra.hex()} at {pos}"

    def _delete(self, rng: random.Random, s: Seed) -> tuple[bytes, str]:
        pos, n = rng.randrange(len(s.data)), rng.randint(1, 4)
        return s.data[:pos] + s.data[pos + n :], f"delete {n} at {pos}"

    def _truncate(self, rng: random.Random, s: Seed) -> tuple[bytes, str]:
        n = rng.randrange(len(s.data))
        return s.data[:n], f"truncate to {n}"

    # ----- header edits with a recomputed checksum -----
    def _header(self, rng: random.Random, s: Seed) -> tuple[bytes, str]:
        b = bytearray(s.data)
        size = HEADER_SIZES[b[2] >> 4]
        field = rng.choice(("size", "size", "model", "k", "version", "flags"))
        if field == "k" and size == HEADER_SIZES[1]:
            field = "size"  # version 1 has no k byte
        if field == "size":
            note = self._edit_size(rng, b, size)
        elif field == "model":
            pos, bit = 3 + rng.randrange(3), rng.randrange(8)
            if rng.random() < 0.5:
                b[pos] ^= 1 << bit
                note = f"model id byte {pos} bit {bit}"
            else:
                b[3:6] = rng.randrange(1 << 24).to_bytes(3, "big")
                note = f"model id {b[3:6].hex()}"
        elif field == "k":
            b[6] = rng.choice((b[6] + 1, b[6] - 1, rng.randrange(256), 0, 255)) % 256
            note = f"k = {b[6] + 1}"
        elif field == "version":
            b[2] = (rng.randrange(16) << 4) | (b[2] & 0x0F)
            note = f"version {b[2] >> 4}"
        else:
            b[2] = (b[2] & 0xF0) | rng.randrange(16)
            note = f"flags {b[2] & 0x0F:#x}"
        return self.with_checksum(bytes(b), s.digest), note

    def _edit_size(self, rng: random.Random, b: bytearray, size: int) -> str:
        """Change the height and/or the width: a little (the same windows), anywhere, or to an extreme."""
        top = self.max_side or 65536
        at = size - 6  # height - 1 at [at, at + 2), width - 1 at [at + 2, at + 4)
        which = rng.choice(((at,), (at + 2,), (at, at + 2)))
        for pos in which:
            old = int.from_bytes(b[pos : pos + 2], "big") + 1
            how = rng.random()
            if how < 0.15:  # usually the same windows: a valid file of another size
                new = old + rng.choice((-1, 1)) * rng.randint(1, 32)
            elif how < 0.7:
                new = rng.randint(1, top)
            else:
                new = rng.choice((1, 2, 4096, 8192, 65536))
            new = min(max(new, 1), top, 65536)
            b[pos : pos + 2] = (new - 1).to_bytes(2, "big")
        c = bytes(b)
        return f"size {int.from_bytes(c[at:at + 2], 'big') + 1}x{int.from_bytes(c[at + 2:at + 4], 'big') + 1} (h x w)"

    def with_checksum(self, data: bytes, fallback_digest: bytes) -> bytes:
        """``data`` with its checksum recomputed over the symbols the decoder would decode.

        When the decoder would not reach the checksum (bad header, body under the floor, a model
        or k it cannot decode with, a range-coder failure), the seed's digest is used instead.
        """
        size = HEADER_SIZES.get(data[2] >> 4, HEADER_SIZES[1])
        digest = self._decoded_digest(data) or fallback_digest
        prefix, body = data[: size - 2], data[size:]
        crc = crc16(digest, crc16(body, crc16(prefix)))
        return prefix + crc.to_bytes(2, "big") + body

    def _decoded_digest(self, data: bytes) -> bytes | None:
        codec = self.codec
        try:
            c = read_header(data)
        except MRTError:
            return None
        if c.version == 1:
            k = next((v.k_code for v in codec.info.variants if v.model_id == c.model_id), None)  # type: ignore[attr-defined]
        else:
            k = c.k if c.model_id == codec.file_id and (c.k or 0) <= codec.max_tokens else None  # type: ignore[attr-defined]
        if k is None or header_problems(c, self.max_side**2 if self.max_side else None, k=k):
            return None
        n_windows = codec.model.geometry(*c.coded_size).n_windows  # type: ignore[attr-defined]
        try:
            _, symbols = codec.model.rcm.decode(c.payload, n_windows, k, portable=c.portable)  # type: ignore[attr-defined]
        except MRTError:
            return None
        return symbols_digest(symbols)


def make_seeds(codec: object, sizes: list[tuple[int, int]], extra_files: list[bytes] = ()) -> list[Seed]:
    """Compress a synthetic image of each size (default rate, and a second file at 4 tokens per
    window: a version-2 header) and add ``extra_files`` (valid files of installed models)."""
    files = []
    for i, (h, w) in enumerate(sizes):
        img = smooth_image(h, w, seed=i)
        files.append(codec.compress(img))  # type: ignore[attr-defined]
        files.append(codec.compress(img, k=4))  # type: ignore[attr-defined]
    files.extend(extra_files)
    mutator = Mutator(codec, [], max_side=None)
    return [Seed(data, mutator._decoded_digest(data) or b"") for data in files]


def run_case(mutant: Mutant, decode: Callable[[bytes], np.ndarray]) -> Outcome:
    """Decode one mutant and classify the outcome (see :class:`Outcome`)."""
    start = time.perf_counter()
    try:
        img = decode(mutant.data)
    except MRTError as err:
        detail = f"{type(err).__name__}: {err}"
        return Outcome(mutant.index, mutant.kind, mutant.note, "error", detail, time.perf_counter() - start)
    except Exception as err:  # noqa: BLE001 - exactly what the fuzz looks for
        detail = f"{type(err).__name__}: {err}"
        return Outcome(mutant.index, mutant.kind, mutant.note, "failure", detail, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    c = read_header(mutant.data)
    expected = (c.height, c.width, 3)
    ok = isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.shape == expected
    detail = f"image {getattr(img, 'shape', None)}" + ("" if ok else f", expected uint8 {expected}")
    return Outcome(mutant.index, mutant.kind, mutant.note, "image" if ok else "failure", detail, seconds)


def summary(outcomes: list[Outcome]) -> dict[str, int]:
    """Counts by result and by error class (``error:BitstreamError``, ...)."""
    counts: Counter[str] = Counter()
    for o in outcomes:
        counts[o.result] += 1
        if o.result == "error":
            counts["error:" + o.detail.split(":", 1)[0]] += 1
    return dict(sorted(counts.items()))
