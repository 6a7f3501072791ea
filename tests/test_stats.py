"""Replicate statistics on cases with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from pait.report.stats import (
    FAILS,
    HOLDS,
    UNCLEAR,
    bootstrap_ci,
    mean_ci,
    paired,
    sign_test_p,
    verdict,
    wilcoxon_p,
)


def test_t_interval_by_hand_and_against_scipy():
    x = [0.80, 0.82, 0.78, 0.85]
    ci = mean_ci(x)
    # by hand: mean 0.8125, s = sqrt(sum((x - m)^2) / 3), t_{0.975, 3} = 3.182446305284263
    m = 0.8125
    s = math.sqrt(((0.80 - m) ** 2 + (0.82 - m) ** 2 + (0.78 - m) ** 2 + (0.85 - m) ** 2) / 3)
    half = 3.182446305284263 * s / 2
    assert (ci.mean, ci.n) == (pytest.approx(m), 4)
    assert (ci.low, ci.high) == (pytest.approx(m - half), pytest.approx(m + half))
    want = sps.t.interval(0.95, 3, loc=np.mean(x), scale=sps.sem(x))
    assert (ci.low, ci.high) == pytest.approx(want)


def test_t_interval_with_one_replicate_is_undefined_and_constant_values_give_a_point():
    one = mean_ci([0.7])
    assert one.mean == 0.7 and one.n == 1 and math.isnan(one.low) and math.isnan(one.high)
    const = mean_ci([0.5, 0.5, 0.5])
    assert const.low == const.high == pytest.approx(0.5)


def test_bootstrap_covers_and_approaches_the_analytic_interval_on_a_large_normal_sample():
    x = np.random.default_rng(1).normal(0.3, 1.0, 400)
    low, high = bootstrap_ci(x)
    t = mean_ci(x)
    assert low < x.mean() < high and low < 0.3 < high
    assert low == pytest.approx(t.low, abs=0.02) and high == pytest.approx(t.high, abs=0.02)
    assert (high - low) == pytest.approx(t.high - t.low, rel=0.05)
    assert bootstrap_ci(x) == (low, high)  # fixed seed: reproducible


def test_bootstrap_is_exact_for_constant_differences_and_undefined_for_one():
    assert bootstrap_ci([-0.02] * 7) == (pytest.approx(-0.02), pytest.approx(-0.02))
    assert all(math.isnan(v) for v in bootstrap_ci([0.1]))


def test_wilcoxon_and_sign_test_on_hand_checkable_cases():
    all_positive = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert sign_test_p(all_positive) == pytest.approx(0.03125)  # 2 * (1/2)^6
    assert wilcoxon_p(all_positive) == pytest.approx(0.03125)  # W- = 0: 1 of 64 sign patterns, two-sided
    one_negative = [1, 2, -3, 4, 5, 6]
    # sign test: P(X >= 5 | n=6) = 7/64, two-sided 14/64
    assert sign_test_p(one_negative) == pytest.approx(14 / 64)
    # Wilcoxon: W- = 3; subsets of ranks {1..6} summing to <= 3: {}, {1}, {2}, {3}, {1,2} -> 2 * 5/64
    assert wilcoxon_p(one_negative) == pytest.approx(10 / 64)
    # zeros are dropped: the sign test sees 5 positives of 5
    assert sign_test_p([0, 1, 2, 3, 4, 5]) == pytest.approx(2 / 32)


def test_tests_on_all_zero_differences_and_fewer_than_two_pairs():
    assert wilcoxon_p([0.0, 0.0, 0.0]) == 1.0 and sign_test_p([0.0, 0.0, 0.0]) == 1.0
    assert math.isnan(wilcoxon_p([0.3])) and math.isnan(sign_test_p([0.3]))
    assert math.isnan(wilcoxon_p([])) and math.isnan(sign_test_p([]))


def test_paired_bundles_the_same_numbers():
    d = [0.01, -0.02, 0.03, 0.04, 0.00, 0.02]
    p = paired(d)
    assert p.n == 6 and p.mean == pytest.approx(np.mean(d))
    assert (p.low, p.high) == bootstrap_ci(d)
    assert (p.t_low, p.t_high) == (mean_ci(d).low, mean_ci(d).high)
    assert p.wilcoxon_p == wilcoxon_p(d) and p.sign_p == sign_test_p(d)
    assert p.verdict_interval() == (min(p.low, p.t_low), max(p.high, p.t_high))


def test_verdict_interval_is_never_narrower_than_the_t_interval_and_undefined_for_one_pair():
    two = paired([-0.05, -0.04])  # the bootstrap gives [min, max]; the t-interval with 1 df is far wider
    assert (two.low, two.high) == (pytest.approx(-0.05), pytest.approx(-0.04))
    low, high = two.verdict_interval()
    assert (low, high) == (two.t_low, two.t_high) and low < -0.05 and high > -0.04
    assert verdict(*two.verdict_interval()) == UNCLEAR and verdict(two.low, two.high) == FAILS
    assert all(math.isnan(v) for v in paired([0.2]).verdict_interval())
    assert paired([0.0] * 5).verdict_interval() == (0.0, 0.0)


@pytest.mark.parametrize(("low", "high", "want"), [
    (0.0, 0.0, HOLDS),           # identical methods
    (-0.005, 0.02, HOLDS),       # any loss is within the 0.01 margin
    (-0.01, 0.02, HOLDS),        # the bound itself is tolerated
    (-0.03, 0.02, UNCLEAR),      # straddles -margin
    (-0.05, -0.02, FAILS),       # confidently worse by more than the margin
    (float("nan"), float("nan"), UNCLEAR),  # one pair: no interval
])
def test_verdict_follows_the_interval_against_the_margin(low, high, want):
    assert verdict(low, high) == want


def test_verdict_margin_is_a_parameter():
    assert verdict(-0.03, -0.02, margin=0.0) == FAILS
    assert verdict(-0.03, -0.02, margin=0.05) == HOLDS
