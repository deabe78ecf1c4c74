"""Evaluation: MRT and classical codecs through real files, metrics, BD-rates, the report.

Modules (lowest first):

* :mod:`.common` (error type, logging), :mod:`.cache` (incremental baseline cache),
  :mod:`.schema` (results JSON/CSV), :mod:`.images` (loading the evaluated images);
* :mod:`.baselines` (one module per classical codec behind the ``Baseline`` interface);
* :mod:`.suite` (``MetricSuite``: per-image metrics and FID/KID, names from
  :mod:`mrt.metrics.registry`);
* :mod:`.evaluate` (MRT models through the Codec API) and :mod:`.sweep` (classical codecs
  over a quality grid);
* :mod:`.bdrate`, :mod:`.plots`, :mod:`.visuals`, :mod:`.report` (``docs/results/``);
* :mod:`.cli_support` (helpers of the ``eval``, ``baselines`` and ``report`` subcommands).
"""
