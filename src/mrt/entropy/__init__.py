"""Entropy coding of integer symbols with integer frequency tables (numpy only, no torch).

- :func:`quantize_pmf` turns model probabilities into exact integer tables (deterministic).
- :func:`portable_tables` turns float64 logits into integer tables that do not depend on the
  machine's float rounding (file format version 4).
- :class:`SymbolEncoder` / :class:`SymbolDecoder`: an exact range coder; both sides make the same
  calls in the same order; ``SymbolDecoder.finish()`` rejects payloads that are not exactly what
  the encoder wrote.
- :func:`estimate_bits`: ideal code length under the integer tables.
"""

from mrt.entropy.portable import portable_tables
from mrt.entropy.quantize import MAX_PRECISION, quantize_pmf
from mrt.entropy.rangecoder import SymbolDecoder, SymbolEncoder, estimate_bits

__all__ = ["MAX_PRECISION", "SymbolDecoder", "SymbolEncoder", "estimate_bits", "portable_tables", "quantize_pmf"]
