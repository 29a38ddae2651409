"""The pure statistics: bootstrap CI, Holm, effect sizes, pairwise tests."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from studyapp.dashboards import stats


def test_holm_matches_a_hand_computed_example():
    # sorted: 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 (monotone)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    adjusted = stats.holm([0.02, math.nan, 0.01])
    assert adjusted[0] == pytest.approx(0.02)
    assert adjusted[2] == pytest.approx(0.02)
    assert math.isnan(adjusted[1])


@pytest.mark.parametrize("kind", ["ratings", "continuous"])
def test_bootstrap_ci_agrees_with_scipy_and_is_reproducible(kind):
    rng = np.random.default_rng(7)
    data = rng.integers(1, 11, 300) if kind == "ratings" else rng.gamma(2.0, 10.0, 300)
    low, high = stats.bootstrap_ci(data)
    assert (low, high) == stats.bootstrap_ci(data)  # fixed seed
    assert low < data.mean() < high
    reference = sps.bootstrap(
        (data,), np.mean, n_resamples=20000, method="percentile", random_state=1
    ).confidence_interval
    width = reference.high - reference.low
    assert low == pytest.approx(reference.low, abs=0.06 * width)
    assert high == pytest.approx(reference.high, abs=0.06 * width)


def test_bootstrap_ci_of_too_few_values_is_undefined():
    assert all(math.isnan(v) for v in stats.bootstrap_ci([5.0]))
    summary = stats.summarise([])
    assert summary.n == 0
    assert math.isnan(summary.mean)


def test_rank_biserial_is_the_difference_of_pair_probabilities():
    a, b = [3, 5, 7, 9], [1, 4, 5, 6, 8]
    u = sps.mannwhitneyu(a, b).statistic
    greater = sum(x > y for x in a for y in b)
    less = sum(x < y for x in a for y in b)
    assert stats.rank_biserial(u, len(a), len(b)) == pytest.approx((greater - less) / 20)


def test_cohens_d_and_hedges_g_by_hand():
    a, b = np.array([2.0, 4.0, 6.0]), np.array([1.0, 2.0, 3.0, 4.0])
    pooled = math.sqrt((2 * np.var(a, ddof=1) + 3 * np.var(b, ddof=1)) / 5)
    d = (a.mean() - b.mean()) / pooled
    assert stats.cohens_d(a, b) == pytest.approx(d)
    assert stats.hedges_g(a, b) == pytest.approx(d * (1 - 3 / (4 * 7 - 9)))


def test_pairwise_tests_match_scipy_with_holm_per_test():
    groups = {"x": [5, 6, 7, 4, 6], "y": [7, 8, 6, 7, 9], "z": [9, 8, 9, 7, 10, 9]}
    result = stats.pairwise_tests(groups)
    assert [(c.a, c.b) for c in result] == [("x", "y"), ("x", "z"), ("y", "z")]
    mwu = [sps.mannwhitneyu(groups[c.a], groups[c.b]).pvalue for c in result]
    welch = [sps.ttest_ind(groups[c.a], groups[c.b], equal_var=False).pvalue for c in result]
    for c, p_mwu, p_welch in zip(result, mwu, welch, strict=True):
        assert c.mwu_p == pytest.approx(p_mwu)
        assert c.welch_p == pytest.approx(p_welch)
    order = np.argsort(mwu)
    expected = [0.0] * 3
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * mwu[i]))
        expected[i] = running
    assert [c.mwu_p_holm for c in result] == pytest.approx(expected)


def test_an_arm_with_one_value_is_not_tested():
    (only,) = stats.pairwise_tests({"a": [1.0], "b": [2.0, 3.0]})
    assert math.isnan(only.mwu_p)
    assert math.isnan(only.mwu_p_holm)


def test_t_interval_matches_scipy():
    values = np.array([4.0, 6.0, 5.0, 9.0])
    low, high = stats.t_interval(values.mean(), values.std(ddof=1), 4)
    assert (low, high) == pytest.approx(
        sps.t.interval(0.95, 3, loc=values.mean(), scale=sps.sem(values))
    )


def test_mean_and_sd_from_sql_sums_match_numpy():
    values = [4, 6, 5, 9, 7]
    mean, sd = stats.mean_sd_from_sums(
        n=len(values), total=sum(values), total_sq=sum(v * v for v in values)
    )
    assert mean == pytest.approx(np.mean(values))
    assert sd == pytest.approx(np.std(values, ddof=1))


def test_sd_from_sql_sums_is_none_below_two_values_and_zero_for_equal_ones():
    assert stats.mean_sd_from_sums(n=1, total=7, total_sq=49) == (7.0, None)
    assert stats.mean_sd_from_sums(n=0, total=None, total_sq=None) == (None, None)
    assert stats.mean_sd_from_sums(n=3, total=15, total_sq=75) == (5.0, 0.0)


def test_relative_difference_is_b_against_a_with_an_interval_around_it():
    a, b = [10, 12, 11, 9, 13, 10], [9, 10, 10, 8, 11, 9]
    rel, low, high = stats.relative_difference(a, b)
    assert rel == pytest.approx(57 / 65 - 1)  # about -12.3 %
    assert low < rel < high < 0.05
    assert stats.relative_difference(a, b) == (rel, low, high)  # fixed seed: the same on every load


@pytest.mark.parametrize(("a", "b"), [([0, 0, 0], [1, 2, 3]), ([5], [1, 2, 3]), ([1, 2], [])])
def test_relative_difference_is_undefined_without_a_reference(a, b):
    assert all(math.isnan(v) for v in stats.relative_difference(a, b))
