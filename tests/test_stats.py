"""Replicate statistics on cases with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from pait.report.stats import (
    COLLAPSED,
    FAILS,
    HOLDS,
    UNCLEAR,
    accuracy_ci,
    bootstrap_ci,
    collapsed,
    crossed_ci,
    crossed_paired,
    holm,
    holm_verdicts,
    margin_p_values,
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


# --- crossed (source x seed) replicates ---


def _crossed_draw(rng, sources, seeds, var_source, var_seed, var_noise):
    y = (rng.normal(0, math.sqrt(var_source), (sources, 1)) + rng.normal(0, math.sqrt(var_seed), (1, seeds))
         + rng.normal(0, math.sqrt(var_noise), (sources, seeds)))
    return y.reshape(-1), np.repeat(np.arange(sources), seeds), np.tile(np.arange(seeds), sources)


def test_crossed_interval_by_hand_on_a_two_by_two_table():
    # y = [[1, 2], [3, 6]] (rows: sources, columns: seeds); mean 3, residuals -2, -1, 0, 3
    ci = crossed_ci([1, 2, 3, 6], ["a", "a", "b", "b"], [0, 1, 0, 1])
    v_source = 2 / 1 * ((-3) ** 2 + 3 ** 2) / 16  # source sums -3, +3
    v_seed = 2 / 1 * ((-2) ** 2 + 2 ** 2) / 16  # seed sums -2, +2
    v_cell = 4 / 3 * (4 + 1 + 0 + 9) / 16
    se = math.sqrt(v_source + v_seed - v_cell)
    assert (ci.mean, ci.n, ci.df, ci.sources, ci.seeds) == (3.0, 4, 1, 2, 2)
    assert ci.se == pytest.approx(se)
    assert (ci.low, ci.high) == pytest.approx((3 - 12.706204736174707 * se, 3 + 12.706204736174707 * se))


def test_crossed_interval_with_one_seed_is_the_t_interval_and_undefined_on_one_cell():
    x = [0.80, 0.82, 0.78, 0.85]
    one_seed = crossed_ci(x, ["a", "b", "c", "d"], [0, 0, 0, 0])
    t = mean_ci(x)
    assert (one_seed.low, one_seed.high, one_seed.df) == (pytest.approx(t.low), pytest.approx(t.high), 3)
    one_source = crossed_ci(x, ["a"] * 4, [0, 1, 2, 3])
    assert (one_source.low, one_source.high) == (pytest.approx(t.low), pytest.approx(t.high))
    cell = crossed_ci([0.5], ["a"], [0])
    assert cell.mean == 0.5 and math.isnan(cell.low) and math.isnan(cell.high)
    with pytest.raises(ValueError, match="3 values but 2 sources"):
        crossed_ci([1, 2, 3], ["a", "b"], [0, 1])


def test_crossed_interval_covers_at_about_the_nominal_rate_and_the_naive_one_does_not():
    rng = np.random.default_rng(11)
    hits = {"crossed": 0, "naive": 0}
    width = {"crossed": 0.0, "naive": 0.0}
    draws = 1000
    for _ in range(draws):
        x, sources, seeds = _crossed_draw(rng, 4, 3, 1.0, 0.1, 0.2)  # a large source effect; true mean 0
        for name, ci in (("crossed", crossed_ci(x, sources, seeds)), ("naive", mean_ci(x))):
            hits[name] += ci.low <= 0 <= ci.high
            width[name] += ci.high - ci.low
    assert 0.94 <= hits["crossed"] / draws <= 0.995  # bench/crossed_coverage.py: 0.977 over 4,000 draws
    assert hits["naive"] / draws < 0.85  # replicates of one source treated as independent
    assert width["crossed"] > 2 * width["naive"]


def test_crossed_interval_covers_when_the_seed_effect_dominates_on_ten_sources():
    rng = np.random.default_rng(12)
    draws = 1000
    covered = 0
    for _ in range(draws):
        ci = crossed_ci(*_crossed_draw(rng, 10, 3, 0.1, 1.0, 0.2))
        covered += ci.low <= 0 <= ci.high
    assert 0.935 <= covered / draws <= 0.99  # bench: 0.957


def test_crossed_paired_bundles_the_interval_and_the_p_values():
    d = [0.01, -0.02, 0.03, 0.04, 0.00, 0.02]
    sources, seeds = ["a", "a", "b", "b", "c", "c"], [0, 1, 0, 1, 0, 1]
    p, ci = crossed_paired(d, sources, seeds), crossed_ci(d, sources, seeds)
    assert (p.n, p.sources, p.seeds, p.mean, p.low, p.high, p.se, p.df) == (6, 3, 2, ci.mean, ci.low, ci.high, ci.se, 1)
    assert (p.wilcoxon_p, p.sign_p) == (wilcoxon_p(d), sign_test_p(d))


def test_margin_p_values_agree_with_the_verdict_rule():
    rng = np.random.default_rng(5)
    for _ in range(200):
        x, sources, seeds = _crossed_draw(rng, 4, 3, 1e-4, 1e-4, 1e-4)
        x = x + rng.uniform(-0.04, 0.02)
        ci = crossed_ci(x, sources, seeds)
        p_holds, p_fails = margin_p_values(ci.mean, ci.se, ci.df)
        assert p_holds + p_fails == pytest.approx(1.0)
        want = HOLDS if p_holds <= 0.025 else FAILS if p_fails <= 0.025 else UNCLEAR
        assert verdict(ci.low, ci.high) == want
    assert margin_p_values(0.0, 0.0, 3) == (0.0, 1.0) and margin_p_values(-0.5, 0.0, 3) == (1.0, 0.0)
    assert all(math.isnan(v) for v in margin_p_values(0.1, float("nan"), 0))


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    got = holm([0.01, float("nan"), 0.02])  # NaN is not a member of the family
    assert got[[0, 2]] == pytest.approx([0.02, 0.02]) and math.isnan(got[1])
    assert holm([]).shape == (0,)


def test_holm_against_statsmodels():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    p = np.random.default_rng(2).uniform(0, 0.2, 30)
    assert holm(p) == pytest.approx(multipletests(p, method="holm")[1])


def _holm_rejections(p: np.ndarray, alpha: float) -> np.ndarray:
    """Holm's sequentially rejective rule as statsmodels' ``multipletests(method="holm")`` decides it: sorted
    ascending, reject while p_(k) <= alpha / (m - k + 1); from the first that is not, keep every remaining one."""
    order = np.argsort(p)
    passes = p[order] <= alpha / np.arange(len(p), 0, -1)
    first_kept = int(np.argmin(passes)) if not passes.all() else len(p)
    reject = np.zeros(len(p), dtype=bool)
    reject[order[:first_kept]] = True
    return reject


def test_holm_decisions_match_the_sequentially_rejective_rule():
    rng = np.random.default_rng(4)
    for _ in range(300):
        p = rng.uniform(0, 0.08, int(rng.integers(1, 12)))
        holds = np.array(holm_verdicts(p, 1 - p)) == HOLDS
        assert (holds == _holm_rejections(p, 0.025)).all()
        for alpha in (0.01, 0.05):
            assert ((holm(p) <= alpha) == _holm_rejections(p, alpha)).all()


def test_holm_verdicts_need_more_evidence_than_the_raw_rule():
    p_holds = np.array([0.001, 0.02, 0.6, 0.99])
    raw = [HOLDS if h <= 0.025 else FAILS if 1 - h <= 0.025 else UNCLEAR for h in p_holds]
    assert raw == [HOLDS, HOLDS, UNCLEAR, FAILS]
    # holds: 0.001 x 4 = 0.004; 0.02 x 3 = 0.06 > 0.025. Fails: 0.01 x 4 = 0.04 > 0.025
    assert holm_verdicts(p_holds, 1 - p_holds) == [HOLDS, UNCLEAR, UNCLEAR, UNCLEAR]
    assert holm_verdicts([0.01], [0.99]) == [HOLDS]  # a family of one is the raw rule


def test_collapsed_when_both_sides_are_near_chance():
    assert collapsed(0.12, 0.14, chance=0.1)  # ten classes: both below 0.15
    assert not collapsed(0.12, 0.16, chance=0.1)
    assert not collapsed(0.12, 0.12, chance=float("nan"))  # chance unknown: never
    assert COLLAPSED not in (HOLDS, FAILS, UNCLEAR)


def test_accuracy_intervals_stay_in_the_unit_interval():
    for value in (0.0, 1.0):
        ci = accuracy_ci([value] * 5)
        assert (ci.mean, ci.low, ci.high) == (value, value, value)
    near_one = accuracy_ci([1.0, 1.0, 0.9, 1.0])
    t = mean_ci([1.0, 1.0, 0.9, 1.0])
    assert t.high > 1 and near_one.high == 1.0 and near_one.low == pytest.approx(t.low)
    crossed = accuracy_ci([0.0, 0.02, 0.0, 0.1], ["a", "a", "b", "b"], [0, 1, 0, 1])
    assert crossed.low == 0.0 and crossed.high <= 1.0
    assert math.isnan(accuracy_ci([0.7]).low)
