"""Paired comparisons of a variant against its own baseline (same seed, fold and images).

Every function takes the variant first and the baseline second and reports the effect as
variant − baseline, so a negative estimate means the compressed model is worse.

- across seeds on one test set: ``paired_t``, ``wilcoxon`` (+ Hodges–Lehmann), ``cohens_dz``
- across k folds (× r repeats): ``corrected_resampled_t`` (Nadeau & Bengio 2003)
- one test set, one model pair: ``delong`` (paired AUROC), ``mcnemar_exact`` (paired
  accuracy), ``paired_bootstrap`` (any metric, e.g. AP; patients with ``clusters=``)
- deployment question: ``noninferiority``; many classes × variants: ``compare_variants``
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from analysis.ci import (
    Metric,
    _scalar_or_array,
    as_rng,
    interval_from_distribution,
    jackknife_distribution,
    resample_distribution,
)
from analysis.metrics import check_inputs
from analysis.results import (
    ConfidenceInterval,
    Estimate,
    PairedTest,
    StatsInputError,
    adjust,
)


def _pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Differences a − b over the pairs where both values exist."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise StatsInputError(f"paired values: a has {a.size} values, b has {b.size}")
    d = a - b
    return d[~np.isnan(d)]


def paired_t(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> PairedTest:
    """Paired t-test over seeds (``scipy.stats.ttest_rel``); effect = mean of a − b."""
    d = _pairs(a, b)
    if d.size < 2:
        return PairedTest(
            np.nan,
            np.nan,
            ConfidenceInterval(np.nan, np.nan),
            confidence,
            d.size,
            "paired t",
            float(d.mean()) if d.size else np.nan,
        )
    res = stats.ttest_rel(d, np.zeros_like(d))
    ci = res.confidence_interval(confidence)
    return PairedTest(
        float(res.statistic),
        float(res.pvalue),
        ConfidenceInterval(float(ci.low), float(ci.high)),
        confidence,
        d.size,
        "paired t",
        float(d.mean()),
    )


def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(W+ ≤ w), w = 0..n(n+1)/2, of the Wilcoxon signed-rank statistic without ties."""
    m = n * (n + 1) // 2
    counts = np.zeros(m + 1)
    counts[0] = 1.0
    for i in range(1, n + 1):
        shifted = np.zeros_like(counts)
        shifted[i:] = counts[: m + 1 - i]
        counts = counts + shifted
    return np.cumsum(counts) / 2.0**n


def hodges_lehmann(d: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Hodges–Lehmann estimate (median of Walsh averages) of the paired shift, with the
    distribution-free interval from the signed-rank distribution (exact for n ≤ 200 without
    ties; normal approximation above). NaN interval when n is too small for the level."""
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    if n == 0:
        return Estimate(np.nan, ConfidenceInterval(np.nan, np.nan), confidence, 0, "Hodges-Lehmann")
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2.0)
    m = walsh.size
    alpha = (1.0 - confidence) / 2.0
    if n <= 200:
        k = int(np.searchsorted(_signed_rank_cdf(n), alpha, side="right"))
    else:
        sd = np.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
        k = int(np.floor(m / 2.0 - stats.norm.ppf(1 - alpha) * sd))
    ci = (
        ConfidenceInterval(float(walsh[k - 1]), float(walsh[m - k]))
        if k >= 1
        else ConfidenceInterval(np.nan, np.nan)
    )
    return Estimate(float(np.median(walsh)), ci, confidence, n, "Hodges-Lehmann")


def wilcoxon(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> PairedTest:
    """Wilcoxon signed-rank test over seeds (``scipy.stats.wilcoxon``); effect = the
    Hodges–Lehmann shift of a − b with its distribution-free interval."""
    d = _pairs(a, b)
    hl = hodges_lehmann(d, confidence)
    if d.size == 0 or np.all(d == 0):
        return PairedTest(
            np.nan,
            np.nan,
            hl.confidence_interval,
            confidence,
            d.size,
            "Wilcoxon signed-rank",
            hl.statistic,
        )
    res = stats.wilcoxon(d)
    return PairedTest(
        float(res.statistic),
        float(res.pvalue),
        hl.confidence_interval,
        confidence,
        d.size,
        "Wilcoxon signed-rank",
        hl.statistic,
    )


def cohens_dz(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Standardised paired effect d_z = mean(d) / sd(d) with the exact interval obtained by
    inverting the noncentral t distribution of √n·d_z (normal differences assumed)."""
    d = _pairs(a, b)
    n = d.size
    if n < 2 or d.std(ddof=1) == 0:
        return Estimate(np.nan, ConfidenceInterval(np.nan, np.nan), confidence, n, "Cohen's dz")
    dz = float(d.mean() / d.std(ddof=1))
    t_obs, df, alpha = dz * np.sqrt(n), n - 1, (1.0 - confidence) / 2.0

    def ncp_at(q: float) -> float:
        # the noncentrality at which t_obs is the q-quantile; the cdf decreases in ncp
        span = 10.0 + 2.0 * abs(t_obs)
        return optimize.brentq(
            lambda nc: stats.nct.cdf(t_obs, df, nc) - q, t_obs - span, t_obs + span, xtol=1e-12
        )

    ci = ConfidenceInterval(ncp_at(1 - alpha) / np.sqrt(n), ncp_at(alpha) / np.sqrt(n))
    return Estimate(dz, ci, confidence, n, "Cohen's dz (noncentral t interval)")


def corrected_resampled_t(
    diffs: np.ndarray,
    n_train: int,
    n_test: int,
    k: int | None = None,
    r: int = 1,
    confidence: float = 0.95,
) -> PairedTest:
    """Corrected resampled t-test for k-fold (× r repeats) differences.

    Variance of the mean difference (1/J + n_test/n_train)·s² with J = k·r differences
    (Nadeau & Bengio 2003; Bouckaert & Frank 2004 for repeated k-fold); t with J − 1
    degrees of freedom. The naive 1/J ignores that training sets overlap across folds.
    """
    d = np.asarray(diffs, dtype=np.float64).ravel()
    d = d[~np.isnan(d)]
    j = d.size
    if k is not None and j != k * r:
        raise StatsInputError(
            f"corrected_resampled_t: expected k·r = {k}·{r} = {k * r} differences, got {j}"
        )
    if n_train <= 0 or n_test <= 0:
        raise StatsInputError("corrected_resampled_t: n_train and n_test must be positive")
    method = "corrected resampled t (Nadeau-Bengio)"
    mean = float(d.mean()) if j else np.nan
    if j < 2:
        return PairedTest(
            np.nan, np.nan, ConfidenceInterval(np.nan, np.nan), confidence, j, method, mean
        )
    se = float(np.sqrt((1.0 / j + n_test / n_train) * d.var(ddof=1)))
    t = mean / se if se > 0 else np.nan
    p = float(2 * stats.t.sf(abs(t), j - 1)) if se > 0 else np.nan
    half = stats.t.ppf(0.5 + confidence / 2.0, j - 1) * se
    return PairedTest(
        t, p, ConfidenceInterval(mean - half, mean + half), confidence, j, method, mean
    )


def _binary(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).ravel()
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if scores.shape[-1] != y.size or not np.isin(y, (0, 1)).all():
        raise StatsInputError(
            f"DeLong: expected 0/1 labels (N,) and scores (k, N); got {y.shape}, {scores.shape}"
        )
    if not 0 < y.sum() < y.size:
        raise StatsInputError("DeLong: the labels need at least one positive and one negative")
    return y.astype(bool), scores


def delong_covariance(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs (k,) and their DeLong covariance (k, k) for k score vectors on the same images.

    Fast algorithm of Sun & Xu (2014): the structural components come from midranks
    within positives, within negatives and overall, O(k·N log N).
    """
    pos, scores = _binary(y, scores)
    x, z = scores[:, pos], scores[:, ~pos]
    m, n = x.shape[1], z.shape[1]
    tx = stats.rankdata(x, axis=1)
    tz = stats.rankdata(z, axis=1)
    t_all = stats.rankdata(np.concatenate([x, z], axis=1), axis=1)
    aucs = (t_all[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v10 = (t_all[:, :m] - tx) / n  # per positive: share of negatives scored below
    v01 = 1.0 - (t_all[:, m:] - tz) / m  # per negative: share of positives scored above
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def _delong_slow(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) structural components with the O(m·n) kernel ψ (tests only)."""
    pos, scores = _binary(y, scores)
    x, z = scores[:, pos], scores[:, ~pos]
    psi = (x[:, :, None] > z[:, None, :]) + 0.5 * (x[:, :, None] == z[:, None, :])
    v10 = psi.mean(axis=2)
    v01 = psi.mean(axis=1)
    aucs = psi.mean(axis=(1, 2))
    cov = np.atleast_2d(np.cov(v10)) / x.shape[1] + np.atleast_2d(np.cov(v01)) / z.shape[1]
    return aucs, cov


def delong(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray, confidence: float = 0.95) -> PairedTest:
    """DeLong test of AUROC(a) − AUROC(b) on one test set (binary labels (N,), scores (N,)).

    Returns z, the two-sided normal p-value and the Wald interval of the difference.
    """
    aucs, cov = delong_covariance(y, np.stack([np.ravel(p_a), np.ravel(p_b)]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    n = int(np.size(y))
    if var <= 0:
        return PairedTest(
            np.nan, np.nan, ConfidenceInterval(diff, diff), confidence, n, "DeLong", diff
        )
    se = np.sqrt(var)
    z = diff / se
    half = stats.norm.ppf(0.5 + confidence / 2.0) * se
    return PairedTest(
        float(z),
        float(2 * stats.norm.sf(abs(z))),
        ConfidenceInterval(diff - half, diff + half),
        confidence,
        n,
        "DeLong",
        diff,
    )


def mcnemar_exact(
    correct_a: np.ndarray, correct_b: np.ndarray, confidence: float = 0.95
) -> PairedTest:
    """Exact McNemar test of paired accuracy: binomial test on the discordant pairs.

    statistic = the smaller discordant count (as statsmodels); effect = accuracy(a) −
    accuracy(b) with the Agresti–Min (2005) adjusted Wald interval (+0.5 per cell).
    """
    a = np.asarray(correct_a).astype(bool).ravel()
    b = np.asarray(correct_b).astype(bool).ravel()
    if a.shape != b.shape:
        raise StatsInputError(f"mcnemar_exact: {a.size} vs {b.size} paired outcomes")
    n = a.size
    only_a = int((a & ~b).sum())
    only_b = int((~a & b).sum())
    discordant = only_a + only_b
    p = stats.binomtest(only_a, discordant, 0.5).pvalue if discordant else 1.0
    cells = np.array([(a & b).sum(), only_a, only_b, (~a & ~b).sum()], dtype=float) + 0.5
    n_adj = cells.sum()
    diff_adj = (cells[1] - cells[2]) / n_adj
    se = np.sqrt(cells[1] + cells[2] - (cells[1] - cells[2]) ** 2 / n_adj) / n_adj
    half = stats.norm.ppf(0.5 + confidence / 2.0) * se
    return PairedTest(
        float(min(only_a, only_b)),
        float(p),
        ConfidenceInterval(float(diff_adj - half), float(diff_adj + half)),
        confidence,
        n,
        "McNemar exact",
        (only_a - only_b) / n if n else np.nan,
    )


def paired_bootstrap(
    y: np.ndarray,
    p_a: np.ndarray,
    p_b: np.ndarray,
    metric: Metric,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    method: str = "percentile",
    rng: np.random.Generator | int | None = None,
    clusters: np.ndarray | None = None,
    jackknife_blocks: int = 200,
) -> PairedTest:
    """Bootstrap of metric(a) − metric(b) over images (or patients), same resample for both.

    statistic = effect / bootstrap SE; the p-value inverts the percentile interval:
    2·min(#{Δ* ≤ 0} + 1, #{Δ* ≥ 0} + 1) / (B + 1), capped at 1.
    """
    y, p_a = check_inputs(y, p_a)
    _, p_b = check_inputs(y, p_b)
    gen = as_rng(rng)
    both = np.stack([p_a, p_b])

    def diff(yy, pp, sample_weight=None):
        m = np.asarray(metric(yy, pp, sample_weight=sample_weight))
        return m[:, 0] - m[:, 1] if sample_weight is not None else m[0] - m[1]

    effect = np.asarray(diff(y, both), dtype=np.float64)
    dist = resample_distribution(y, both, diff, n_resamples=n_resamples, rng=gen, clusters=clusters)
    jack = None
    if method == "bca":
        jack = jackknife_distribution(
            y, both, diff, clusters=clusters, max_blocks=jackknife_blocks, rng=gen
        )
    ci = interval_from_distribution(
        effect, dist, confidence=confidence, method=method, jackknife=jack
    )
    ok = ~np.isnan(dist)
    b = ok.sum(axis=0)
    tail = np.minimum(((dist <= 0) & ok).sum(axis=0), ((dist >= 0) & ok).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.minimum(1.0, 2.0 * (tail + 1) / (b + 1))
        se = np.nanstd(dist, axis=0, ddof=1)
        z = effect / se
    n_units = len(np.unique(clusters)) if clusters is not None else y.shape[0]
    unit = "image" if clusters is None else "cluster"
    return PairedTest(
        _scalar_or_array(z),
        _scalar_or_array(p),
        ConfidenceInterval(_scalar_or_array(ci.low), _scalar_or_array(ci.high)),
        confidence,
        n_units,
        f"paired {unit} bootstrap {method} ({n_resamples})",
        _scalar_or_array(effect),
    )


def noninferiority(test: PairedTest, margin: float) -> dict:
    """Is the variant non-inferior to its baseline by ``margin``?  (the deployment question)

    Non-inferior when the lower interval bound of the effect (variant − baseline) lies
    above −margin. With a two-sided 95 % interval this is a one-sided test at 2.5 %.
    """
    if margin < 0:
        raise StatsInputError(f"noninferiority: margin must be ≥ 0, got {margin}")
    low = test.confidence_interval.low
    return {
        "estimate": test.estimate,
        "ci_low": low,
        "margin": margin,
        "noninferior": bool(np.all(np.asarray(low) > -margin)),
        "one_sided_alpha": (1.0 - test.confidence_level) / 2.0,
        "method": f"non-inferiority by interval bound ({test.method})",
    }


TESTS = ("paired_t", "wilcoxon", "corrected_t")


def compare_variants(
    df: pd.DataFrame,
    *,
    value: str = "value",
    baseline: str = "baseline",
    test: str = "paired_t",
    n_train: int | None = None,
    n_test: int | None = None,
    confidence: float = 0.95,
    adjust_methods: str | Sequence[str] = ("holm", "fdr_bh"),
    family: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Test every variant × class against the baseline of the same seed and fold.

    ``df`` is tidy: columns ``variant``, ``seed``, ``fold``, ``class``, ``value`` (and an
    optional ``metric`` column; each metric is compared separately). ``test`` is
    ``"paired_t"`` or ``"wilcoxon"`` over seeds (one fold per seed), or ``"corrected_t"``
    over all seed × fold differences (needs ``n_train`` and ``n_test`` per fold).
    Returns one row per variant × class (× metric) and adjustment method, with the
    flattened ``PairedTest`` columns plus ``pvalue_adj`` and ``adj_method``; the family for
    the adjustment is all tests of a metric unless ``family`` names other columns.
    """
    if test not in TESTS:
        raise StatsInputError(f"compare_variants: test {test!r} is not one of {TESTS}")
    keys = ["seed", "fold", "class"]
    need = ["variant", *keys, value]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise StatsInputError(
            f"compare_variants: columns {missing} missing; got {list(df.columns)}"
        )
    extra = ["metric"] if "metric" in df.columns else []
    if (df["variant"] == baseline).sum() == 0:
        raise StatsInputError(f"compare_variants: no rows with variant == {baseline!r}")
    base = df[df["variant"] == baseline][[*extra, *keys, value]]
    if base.duplicated([*extra, *keys]).any():
        raise StatsInputError("compare_variants: duplicate baseline rows per seed/fold/class")
    merged = df[df["variant"] != baseline].merge(
        base, on=[*extra, *keys], how="inner", suffixes=("", "_baseline")
    )
    records = []
    for group, rows in merged.groupby([*extra, "variant", "class"], sort=False):
        a = rows[value].to_numpy(float)
        b = rows[f"{value}_baseline"].to_numpy(float)
        if test == "corrected_t":
            if n_train is None or n_test is None:
                raise StatsInputError("compare_variants: corrected_t needs n_train and n_test")
            res = corrected_resampled_t(a - b, n_train, n_test, k=None, r=1, confidence=confidence)
        else:
            if rows.duplicated("seed").any():
                raise StatsInputError(
                    f"compare_variants: several folds per seed for {group}; "
                    "use test='corrected_t' for k-fold results"
                )
            res = (paired_t if test == "paired_t" else wilcoxon)(a, b, confidence)
        records.append(
            {**dict(zip([*extra, "variant", "class"], group, strict=True)), **res.to_dict()}
        )
    out = pd.DataFrame.from_records(records)
    methods = [adjust_methods] if isinstance(adjust_methods, str) else list(adjust_methods)
    fam = extra if family is None else list(np.atleast_1d(family))
    if out.empty:
        return out.assign(pvalue_adj=pd.Series(dtype=float), adj_method=pd.Series(dtype=str))
    return pd.concat([adjust(out, m, by=fam or None) for m in methods], ignore_index=True)
