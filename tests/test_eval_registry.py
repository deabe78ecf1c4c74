"""The metric registry is the one list of metrics: eval, schema, report and CLI agree with it."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from mrt.eval.bdrate import is_lower_better
from mrt.eval.cli_support import DEFAULT_METRICS
from mrt.eval.report import BD_METRICS
from mrt.eval.schema import CSV_COLUMNS, METRIC_KEYS, SET_METRIC_KEYS, ImageRecord, RatePoint
from mrt.eval.suite import PER_IMAGE_METRICS
from mrt.metrics import registry
from mrt.metrics.registry import METRICS, UnknownMetricError, find_metric, metric_names, metric_spec


def test_names_are_unique_identifiers_and_lookup_is_unambiguous() -> None:
    names = [s.name for s in METRICS]
    assert len(set(names)) == len(names)
    assert all(n.isidentifier() and n == n.lower() for n in names)
    words = [w.lower() for s in METRICS for w in {s.name, s.json_key, *s.aliases}]
    assert len(set(words)) == len(words), "an alias must name one metric only"


def test_aliases_and_case_resolve_to_the_canonical_name() -> None:
    assert metric_spec("ms-ssim").name == "ms_ssim"
    assert metric_spec("MS_SSIM").name == "ms_ssim"
    assert metric_spec(" LPIPS ").name == "lpips"
    assert find_metric("nope") is None
    with pytest.raises(UnknownMetricError, match="unknown metric 'nope'"):
        metric_spec("nope")


def test_schema_fields_follow_the_registry() -> None:
    per_image = metric_names(per_image=True)
    assert per_image == ("psnr", "ms_ssim", "lpips", "dists") == PER_IMAGE_METRICS
    assert metric_names(per_image=False) == ("fid", "kid")
    record_fields = {f.name for f in fields(ImageRecord)}
    point_fields = {f.name for f in fields(RatePoint)}
    assert set(per_image) <= record_fields
    assert set(metric_names()) <= point_fields
    # the file formats on disk keep their spellings
    assert METRIC_KEYS == {"psnr": "psnr", "ms_ssim": "ms-ssim", "lpips": "lpips", "dists": "dists"}
    assert SET_METRIC_KEYS == {"fid": "fid", "kid": "kid"}
    assert CSV_COLUMNS == ("codec", "setting", "image", "bpp", "est_bpp", "psnr", "ms_ssim", "lpips",
                           "dists", "enc_s", "dec_s", "quality", "nbytes", "height", "width")


def test_cli_default_metrics_match_the_registry() -> None:
    assert DEFAULT_METRICS.split(",") == list(metric_names(per_image=True))


def test_directions_and_report_metrics() -> None:
    assert [m for m in metric_names() if is_lower_better(m)] == ["lpips", "dists", "fid", "kid"]
    assert set(BD_METRICS) == set(metric_names(rd=True))
    assert metric_spec("kid").rd is False and metric_spec("dists").heavy


def test_implementations_exist_in_mrt_metrics() -> None:
    import mrt.metrics

    for s in METRICS:
        assert callable(getattr(mrt.metrics, s.impl)), s.name
    assert metric_spec("fid").implementation(64) == "mrt.metrics.FID(patch=64)"
    assert metric_spec("lpips").implementation() == "mrt.metrics.LPIPS(alex)"


def test_registry_is_plain_data() -> None:
    """No torch and no eval imports: the registry is cheap to read and stays in layer 4."""
    tree = ast.parse(Path(registry.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "dataclasses", "typing", "mrt.errors"}


def test_eval_commands_build_their_parsers_without_torch() -> None:
    """Why ``DEFAULT_METRICS`` is spelt out: ``--help`` and ``baselines --list`` stay fast."""
    code = ("import argparse, sys\n"
            "from mrt.cli import cmd_baselines, cmd_eval, cmd_report\n"
            "sub = argparse.ArgumentParser().add_subparsers()\n"
            "for m in (cmd_eval, cmd_baselines, cmd_report):\n"
            "    m.register(sub)\n"
            "assert 'torch' not in sys.modules and 'mrt.metrics' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
