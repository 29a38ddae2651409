"""Statistics for the dashboards: pure functions of plain numbers, no database.

Every arm's outcome is summarised by n, mean, median and a percentile-bootstrap 95 % CI of the
mean (fixed seed, so a page shows the same interval on every load). Arms are compared pairwise
with Mann-Whitney U (ratings are ordinal) and Welch's t (unequal variances), each with an effect
size, and the p-values of each test are Holm-corrected across the pairwise comparisons of one
outcome.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats as sps

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20250214
CONFIDENCE = 0.95


def _clean(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean; (nan, nan) for fewer than two values."""
    data = _clean(values)
    if data.size < 2:
        return (math.nan, math.nan)
    means = _bootstrap_means(data, np.random.default_rng(seed), resamples)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return (float(low), float(high))


def _bootstrap_means(data: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    uniques, counts = np.unique(data, return_counts=True)
    if uniques.size <= 32:
        # Resampling n values from the empirical distribution is a multinomial draw over its
        # distinct values: the same distribution of means at a cost that grows with the number
        # of distinct values, not with n (1-10 ratings: a few milliseconds for any n).
        draws = rng.multinomial(data.size, counts / data.size, size=resamples)
        means = draws @ uniques / data.size
    else:
        # float32 and 16-bit indices halve the memory traffic of the gather, which is the cost;
        # the means keep ~7 significant digits, far more than an interval shows.
        values = data.astype(np.float32)
        index_type = np.uint16 if data.size <= np.iinfo(np.uint16).max else np.int32
        means = np.empty(resamples)
        chunk = max(1, 4_000_000 // data.size)  # bounds the index matrix for huge arms
        for start in range(0, resamples, chunk):
            stop = min(resamples, start + chunk)
            idx = rng.integers(0, data.size, size=(stop - start, data.size), dtype=index_type)
            means[start:stop] = values[idx].mean(axis=1, dtype=np.float64)
    return means


def relative_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """mean(b) / mean(a) - 1 (b relative to a, as the paper's "-10.4 % time"), with a
    percentile-bootstrap CI resampling each arm on its own; NaN where a's mean is 0 or an arm
    has fewer than two values."""
    xa, xb = _clean(a), _clean(b)
    if xa.size < 2 or xb.size < 2 or xa.mean() == 0:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means_a = _bootstrap_means(xa, rng, resamples)
    means_b = _bootstrap_means(xb, rng, resamples)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = means_b / means_a - 1
    ratios = ratios[np.isfinite(ratios)]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return (float(xb.mean() / xa.mean() - 1), float(low), float(high))


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    median: float
    sd: float
    ci_low: float
    ci_high: float


def summarise(values: Sequence[float] | np.ndarray, *, seed: int = BOOTSTRAP_SEED) -> Summary:
    data = _clean(values)
    if data.size == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    low, high = bootstrap_ci(data, seed=seed)
    sd = float(np.std(data, ddof=1)) if data.size > 1 else math.nan
    return Summary(data.size, float(data.mean()), float(np.median(data)), sd, low, high)


def mean_sd_from_sums(
    *, n: int, total: float | None, total_sq: float | None
) -> tuple[float | None, float | None]:
    """Mean and sample SD from SQL's count, sum and sum of squares (None where undefined).

    Every database computes these three the same way; standard deviation aggregates differ
    (SQLite's raises for one value). For integer ratings the arithmetic below is exact.
    """
    if n < 1 or total is None or total_sq is None:
        return (None, None)
    mean = total / n
    if n < 2:
        return (mean, None)
    # n * sum(x^2) - sum(x)^2 = n^2 * population variance; exact in integers, >= 0 up to
    # rounding for floats.
    spread = max(n * total_sq - total * total, 0)
    return (mean, math.sqrt(spread / (n * (n - 1))))


def t_interval(mean: float, sd: float | None, n: int) -> tuple[float, float]:
    """Student-t CI of a mean from its aggregates (what SQL returns: avg, stddev_samp, count)."""
    if n < 2 or sd is None or not math.isfinite(sd):
        return (math.nan, math.nan)
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)
    return (mean - half, mean + half)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (NaN entries stay NaN and do not count as tests)."""
    indexed = [(p, i) for i, p in enumerate(pvalues) if p is not None and math.isfinite(p)]
    adjusted = [math.nan] * len(pvalues)
    m = len(indexed)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def rank_biserial(u_statistic: float, n_a: int, n_b: int) -> float:
    """Rank-biserial r from the U of sample a: P(a > b) - P(a < b), in [-1, 1]."""
    return 2 * u_statistic / (n_a * n_b) - 1


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    pooled = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    if pooled <= 0:
        return math.nan
    return float((a.mean() - b.mean()) / math.sqrt(pooled))


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    # Small-sample correction J = 1 - 3 / (4 (n_a + n_b) - 9).
    return cohens_d(a, b) * (1 - 3 / (4 * (a.size + b.size) - 9))


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    n_a: int
    n_b: int
    mwu_u: float
    mwu_p: float
    rank_biserial: float
    welch_t: float
    welch_df: float
    welch_p: float
    cohens_d: float
    hedges_g: float
    mwu_p_holm: float = math.nan
    welch_p_holm: float = math.nan
    # mean(b) / mean(a) - 1 with its bootstrap 95 % CI
    relative: float = math.nan
    relative_low: float = math.nan
    relative_high: float = math.nan


def _compare(a_name: str, b_name: str, a: np.ndarray, b: np.ndarray) -> Comparison:
    if a.size < 2 or b.size < 2:
        nan = math.nan
        return Comparison(a_name, b_name, a.size, b.size, nan, nan, nan, nan, nan, nan, nan, nan)
    mwu = sps.mannwhitneyu(a, b, alternative="two-sided")
    welch = sps.ttest_ind(a, b, equal_var=False)
    return Comparison(
        a=a_name,
        b=b_name,
        n_a=a.size,
        n_b=b.size,
        mwu_u=float(mwu.statistic),
        mwu_p=float(mwu.pvalue),
        rank_biserial=rank_biserial(float(mwu.statistic), a.size, b.size),
        welch_t=float(welch.statistic),
        welch_df=float(welch.df),
        welch_p=float(welch.pvalue),
        cohens_d=cohens_d(a, b),
        hedges_g=hedges_g(a, b),
    )


def pairwise_tests(groups: Mapping[str, Sequence[float] | np.ndarray]) -> list[Comparison]:
    """Every pair of arms (in the mapping's order), with Holm-adjusted p-values per test."""
    arrays = {name: _clean(values) for name, values in groups.items()}
    raw = [_compare(a, b, arrays[a], arrays[b]) for a, b in combinations(arrays, 2)]
    mwu_holm = holm([c.mwu_p for c in raw])
    welch_holm = holm([c.welch_p for c in raw])
    out = []
    for c, m, w in zip(raw, mwu_holm, welch_holm, strict=True):
        rel, low, high = relative_difference(arrays[c.a], arrays[c.b])
        out.append(Comparison(**{
            **c.__dict__, "mwu_p_holm": m, "welch_p_holm": w,
            "relative": rel, "relative_low": low, "relative_high": high,
        }))
    return out


def chi_square_balance(observed: Sequence[int], weights: Sequence[float]) -> float:
    """p-value of the observed arm counts against the allocation weights (NaN if undefined)."""
    total = sum(observed)
    if total == 0 or len(observed) < 2 or sum(weights) <= 0:
        return math.nan
    expected = [total * w / sum(weights) for w in weights]
    return float(sps.chisquare(observed, expected).pvalue)


@dataclass(frozen=True)
class Agreement:
    """Spearman's rank correlation between two raters over the documents both scored."""

    a: str
    b: str
    n: int
    rho: float  # nan below MIN_AGREEMENT_N or when one rater gave every document the same score
    p: float


MIN_AGREEMENT_N = 3


def spearman_agreement(
    raters: Mapping[str, Mapping[int, float]], pairs: Sequence[tuple[str, str]]
) -> list[Agreement]:
    """Agreement for each pair of raters (scores keyed by the document's participation id),
    on the documents both rated: Spearman's rho with ties given their average rank."""
    found = []
    for a, b in pairs:
        shared = sorted(set(raters.get(a, {})) & set(raters.get(b, {})))
        x = np.array([raters[a][k] for k in shared], dtype=float)
        y = np.array([raters[b][k] for k in shared], dtype=float)
        rho = p = math.nan
        if len(shared) >= MIN_AGREEMENT_N and np.ptp(x) > 0 and np.ptp(y) > 0:
            result = sps.spearmanr(x, y)
            rho, p = float(result.statistic), float(result.pvalue)
        found.append(Agreement(a=a, b=b, n=len(shared), rho=rho, p=p))
    return found


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` with Welch's 95 % CI (NaN where either side has fewer than two)."""

    diff: float
    ci_low: float
    ci_high: float
    n_a: int
    n_b: int


def welch_difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> Difference:
    """The difference of two means with a Welch-Satterthwaite t interval (unequal variances)."""
    x, y = _clean(a), _clean(b)
    if not x.size or not y.size:
        return Difference(math.nan, math.nan, math.nan, int(x.size), int(y.size))
    diff = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return Difference(diff, math.nan, math.nan, int(x.size), int(y.size))
    va, vb = float(x.var(ddof=1)) / x.size, float(y.var(ddof=1)) / y.size
    se = math.sqrt(va + vb)
    if se == 0:
        return Difference(diff, diff, diff, int(x.size), int(y.size))
    df = (va + vb) ** 2 / (va**2 / (x.size - 1) + vb**2 / (y.size - 1))
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, df)) * se
    return Difference(diff, diff - half, diff + half, int(x.size), int(y.size))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of paired values (NaN below two pairs or with no spread)."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 2:
        return math.nan
    xs, ys = zip(*pairs, strict=True)
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return math.nan
    return float(sps.spearmanr(xs, ys).statistic)


def bonferroni(pvalues: Sequence[float]) -> list[float]:
    """Bonferroni-adjusted p-values (NaN entries stay NaN and do not count as tests)."""
    m = sum(1 for p in pvalues if p is not None and math.isfinite(p))
    return [min(1.0, p * m) if p is not None and math.isfinite(p) else math.nan for p in pvalues]


def adjust(pvalues: Sequence[float], method: str) -> list[float]:
    """p-values adjusted across a family of tests by ``method``: holm, bonferroni or none."""
    if method == "holm":
        return holm(pvalues)
    if method == "bonferroni":
        return bonferroni(pvalues)
    if method == "none":
        return [p if p is not None and math.isfinite(p) else math.nan for p in pvalues]
    raise ValueError(f"unknown correction {method!r}")


@dataclass(frozen=True)
class Omnibus:
    """One test across every arm with at least two values: is any arm different?"""

    k: int  # arms tested
    n: int  # values tested
    kruskal_h: float
    kruskal_p: float
    anova_f: float
    anova_p: float
    # Welch (1951): no equal-variance assumption; NaN when an arm's values are all equal.
    welch_f: float = math.nan
    welch_df2: float = math.nan
    welch_p: float = math.nan


def welch_anova(arrays: Sequence[np.ndarray]) -> tuple[float, float, float, float]:
    """Welch's (1951) one-way test of equal means under unequal variances: (F, df1, df2, p).

    Each arm is weighted by n / s^2; F is the weighted between-arm variance over
    1 + 2(k - 2) / (k^2 - 1) * lambda, with lambda = sum((1 - w_i / W)^2 / (n_i - 1)) and
    df2 = (k^2 - 1) / (3 lambda). NaN below two arms of two values or with a zero variance.
    """
    nan = math.nan
    groups = [np.asarray(a, dtype=float) for a in arrays]
    if len(groups) < 2 or any(g.size < 2 for g in groups):
        return nan, nan, nan, nan
    n = np.array([g.size for g in groups], dtype=float)
    variances = np.array([g.var(ddof=1) for g in groups])
    if np.any(variances <= 0):
        return nan, nan, nan, nan
    k = len(groups)
    means = np.array([g.mean() for g in groups])
    w = n / variances
    total = w.sum()
    grand = float((w * means).sum() / total)
    between = float((w * (means - grand) ** 2).sum()) / (k - 1)
    lam = float(((1 - w / total) ** 2 / (n - 1)).sum())
    f = between / (1 + 2 * (k - 2) * lam / (k**2 - 1))
    df1, df2 = float(k - 1), (k**2 - 1) / (3 * lam)
    return f, df1, df2, float(sps.f.sf(f, df1, df2))


def omnibus(groups: Mapping[str, Sequence[float] | np.ndarray]) -> Omnibus:
    """Kruskal-Wallis H (ranks; ratings are ordinal), one-way ANOVA F and Welch's ANOVA F
    across the arms; NaN below two arms with two values each, or when every value is the same."""
    arrays = [a for a in (_clean(v) for v in groups.values()) if a.size >= 2]
    n = int(sum(a.size for a in arrays))
    nan = math.nan
    if len(arrays) < 2 or np.ptp(np.concatenate(arrays)) == 0:
        return Omnibus(len(arrays), n, nan, nan, nan, nan)
    kruskal = sps.kruskal(*arrays)
    anova = sps.f_oneway(*arrays)
    welch_f, _, welch_df2, welch_p = welch_anova(arrays)
    return Omnibus(
        k=len(arrays), n=n, kruskal_h=float(kruskal.statistic), kruskal_p=float(kruskal.pvalue),
        anova_f=float(anova.statistic), anova_p=float(anova.pvalue),
        welch_f=welch_f, welch_df2=welch_df2, welch_p=welch_p,
    )


def krippendorff_alpha_interval(units: Iterable[Sequence[float]]) -> tuple[float, int, int]:
    """Krippendorff's alpha for interval data over units (documents), each with the values its
    raters gave (any number of raters, missing ones simply absent).

    Returns (alpha, pairable units, pairable values); alpha is NaN below two pairable units or
    when every value is the same. Computed from sums of squared differences: within a unit,
    the ordered pairs' sum is 2(m·Σv² - (Σv)²), weighted 1/(m-1) as in the coincidence matrix.
    """
    within = 0.0
    values: list[float] = []
    n_units = 0
    for unit in units:
        v = np.array([x for x in unit if math.isfinite(x)], dtype=float)
        if v.size < 2:
            continue  # a unit rated once has no pair: it does not count
        n_units += 1
        within += 2 * (v.size * float(v @ v) - float(v.sum()) ** 2) / (v.size - 1)
        values.extend(v.tolist())
    n = len(values)
    if n_units < 2:
        return math.nan, n_units, n
    everything = np.array(values)
    between = 2 * (n * float(everything @ everything) - float(everything.sum()) ** 2)
    if between <= 0:
        return math.nan, n_units, n
    return 1 - (n - 1) * within / between, n_units, n


def icc_two_way_absolute(ratings: Sequence[Sequence[float]]) -> float:
    """ICC(2,1) of Shrout and Fleiss: two-way random effects, absolute agreement, one rater.

    ``ratings`` has one row per document and one column per rater, every cell filled (the
    documents all raters scored). NaN below two documents or two raters, or with no variance.
    """
    x = np.array(ratings, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        return math.nan
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * float(((x.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((x.mean(axis=0) - grand) ** 2).sum())
    ss_error = float(((x - grand) ** 2).sum()) - ss_rows - ss_cols
    ms_rows, ms_cols = ss_rows / (n - 1), ss_cols / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n
    return (ms_rows - ms_error) / denominator if denominator > 0 else math.nan
