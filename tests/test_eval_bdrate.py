"""BD-rate / BD-metric against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mrt.eval.bdrate import BDError, bd_metric, bd_rate, bd_rate_or_none, bjontegaard, is_lower_better

RATES = [0.005, 0.01, 0.02, 0.04, 0.08]
PSNR = [21.0, 22.4, 23.9, 25.1, 26.8]  # a realistic, non-linear curve


def test_scaled_rates_give_exactly_minus_20_percent() -> None:
    test_rates = [r * 0.8 for r in RATES]
    assert bd_rate(RATES, PSNR, test_rates, PSNR) == pytest.approx(-20.0, abs=1e-9)
    # and the anchor against the test curve: 1/0.8 - 1 = +25 %
    assert bd_rate(test_rates, PSNR, RATES, PSNR) == pytest.approx(25.0, abs=1e-9)


def test_identical_curves_give_zero() -> None:
    assert bd_rate(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-12)
    assert bd_metric(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-12)


def test_lower_is_better_metric_is_negated() -> None:
    lpips = [0.70, 0.60, 0.50, 0.42, 0.35]
    assert bd_rate(RATES, lpips, [r * 0.8 for r in RATES], lpips, lower_is_better=True) == pytest.approx(-20.0, abs=1e-9)
    # a test codec with lower LPIPS at the same rates is better: negative BD-rate, negative BD-LPIPS
    better = [v - 0.02 for v in lpips]
    assert bd_rate(RATES, lpips, RATES, better, lower_is_better=True) < 0
    assert bd_metric(RATES, lpips, RATES, better, lower_is_better=True) == pytest.approx(-0.02, abs=1e-12)
    assert is_lower_better("LPIPS") and is_lower_better("dists") and is_lower_better("fid")
    assert not is_lower_better("psnr") and not is_lower_better("ms-ssim")


def test_shifted_metric_on_a_log_linear_curve() -> None:
    # metric = a + b ln(R): PCHIP reproduces linear data exactly, so the deltas are closed-form.
    a, b, d = 30.0, 2.0, 0.5
    rates = np.array([0.004, 0.008, 0.016, 0.032, 0.064])
    m_anchor = a + b * np.log(rates)
    m_test = m_anchor + d
    # same metric m needs log R lower by d / b  ->  BD-rate = exp(-d / b) - 1
    assert bd_rate(rates, m_anchor, rates, m_test) == pytest.approx((math.exp(-d / b) - 1) * 100, abs=1e-9)
    # BD-PSNR over the common log-rate range is exactly d
    assert bd_metric(rates, m_anchor, rates, m_test) == pytest.approx(d, abs=1e-12)


def test_partial_overlap_uses_only_the_common_range() -> None:
    a, b = 30.0, 2.0
    ra = np.array([0.004, 0.008, 0.016, 0.032])
    rt = np.array([0.016, 0.032, 0.064, 0.128]) * 0.5  # test curve: same quality at half the rate
    res = bjontegaard(ra, a + b * np.log(ra), rt, a + b * np.log(rt / 0.5))
    assert res.value == pytest.approx(-50.0, abs=1e-9)
    lo, hi = a + b * math.log(0.016), a + b * math.log(0.032)
    assert (res.lo, res.hi) == (pytest.approx(lo), pytest.approx(hi))


def test_no_overlap_is_a_clear_error_or_none() -> None:
    hi_q = [p + 10 for p in PSNR]
    with pytest.raises(BDError, match="do not overlap"):
        bd_rate(RATES, PSNR, RATES, hi_q)
    assert bd_rate_or_none(RATES, PSNR, RATES, hi_q) is None


def test_bad_inputs() -> None:
    with pytest.raises(BDError):
        bd_rate([0.01], [20.0], RATES, PSNR)  # one point
    with pytest.raises(BDError):
        bd_rate([0.01, -0.02], [20.0, 21.0], RATES, PSNR)  # non-positive rate
    with pytest.raises(BDError):
        bd_rate([0.01, 0.02], [20.0], RATES, PSNR)  # length mismatch


def test_unsorted_points_and_nan_are_handled() -> None:
    order = [3, 0, 4, 1, 2]
    r = [RATES[i] for i in order]
    m = [PSNR[i] for i in order]
    assert bd_rate(r + [float("nan")], m + [1.0], [x * 0.8 for x in RATES], PSNR) == pytest.approx(-20.0, abs=1e-9)
