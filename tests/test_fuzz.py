"""A bounded, seeded fuzz of the decoder (issue 14): every mutant of a few small files made with
the shipped default model gives a clean project error or an image of its declared size, within
a time and memory bound. The long run is ``benchmarks/fuzz_decoder.py`` (results: docs/fuzz.md).

Header edits recompute the checksum (see ``_fuzz.py``) and declare sides of at most
``MAX_SIDE`` pixels, which keeps every case cheap; the benchmark declares any size.
"""

from __future__ import annotations

import resource

from _fuzz import KINDS, Mutator, make_seeds, run_case, summary

from mrt.codec import Codec, decompress

N_MUTANTS = 200
SEED = 14
MAX_SIDE = 512
CASE_SECONDS = 10.0  # per case, on a slow shared CI machine (typical: well under 0.2 s)
EXTRA_MEMORY_MIB = 1024  # growth of the process's peak resident memory over the whole run


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def test_fuzz_the_decoder() -> None:
    codec = Codec.load()
    seeds = make_seeds(codec, [(64, 64), (40, 100)])  # one window each: a valid mutant decodes fast
    assert all(s.digest for s in seeds)  # every seed is a valid file
    mutator = Mutator(codec, seeds, seed=SEED, max_side=MAX_SIDE)
    decompress(seeds[0].data)  # load the model before measuring
    peak_before = _peak_mib()
    outcomes = [run_case(mutator.mutant(i), decompress) for i in range(N_MUTANTS)]
    failures = [o for o in outcomes if o.result == "failure"]
    assert not failures, "\n".join(f"#{o.index} {o.kind} {o.note}: {o.detail}" for o in failures[:10])
    slow = [o for o in outcomes if o.seconds > CASE_SECONDS]
    assert not slow, [(o.index, o.note, round(o.seconds, 1)) for o in slow]
    assert _peak_mib() - peak_before < EXTRA_MEMORY_MIB
    # the mutants reach both outcomes and every kind of mutation was drawn
    counts = summary(outcomes)
    assert counts.get("image", 0) >= 1 and counts.get("error", 0) >= N_MUTANTS // 2, counts
    assert {o.kind for o in outcomes} == set(KINDS)
