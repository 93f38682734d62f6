"""analysis.paired against scipy, statsmodels, scikit-learn and hand-worked examples."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from analysis import metrics as M
from analysis import paired as P
from analysis.results import ConfidenceInterval, PairedTest, StatsInputError


def test_paired_t_matches_scipy_ttest_rel():
    rng = np.random.default_rng(0)
    b = rng.normal(0.8, 0.02, 8)
    a = b + rng.normal(-0.01, 0.01, 8)
    res = P.paired_t(a, b)
    ref = stats.ttest_rel(a, b)  # reference: scipy
    ref_ci = ref.confidence_interval(0.95)
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.pvalue == pytest.approx(ref.pvalue)
    assert res.estimate == pytest.approx(np.mean(a - b))
    assert res.confidence_interval.low == pytest.approx(ref_ci.low)
    assert res.confidence_interval.high == pytest.approx(ref_ci.high)


def test_wilcoxon_matches_scipy_and_hodges_lehmann_interval_inverts_the_test():
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1.0, 12)
    res = P.wilcoxon(d, np.zeros(12))
    ref = stats.wilcoxon(d)  # reference: scipy
    assert res.statistic == pytest.approx(ref.statistic) and res.pvalue == pytest.approx(ref.pvalue)
    walsh = [(d[i] + d[j]) / 2 for i in range(12) for j in range(i, 12)]
    assert res.estimate == pytest.approx(np.median(walsh))
    # the distribution-free interval is the set of shifts the exact signed-rank test
    # (scipy) does not reject at 5 %: just inside each bound p > 0.05, just outside p ≤ 0.05
    low, high = res.confidence_interval.low, res.confidence_interval.high
    eps = 1e-9
    assert stats.wilcoxon(d - (low + eps), method="exact").pvalue > 0.05
    assert stats.wilcoxon(d - (low - eps), method="exact").pvalue <= 0.05
    assert stats.wilcoxon(d - (high - eps), method="exact").pvalue > 0.05
    assert stats.wilcoxon(d - (high + eps), method="exact").pvalue <= 0.05


def test_hodges_lehmann_too_few_pairs_has_no_interval():
    # n = 5: the smallest two-sided exact p-value is 2/32 = 0.0625 > 0.05
    assert np.isnan(P.hodges_lehmann(np.arange(1.0, 6.0)).confidence_interval.low)


def test_cohens_dz_interval_close_to_large_sample_normal_approximation():
    # reference: large-n normal approximation se(dz) ≈ sqrt(1/n + dz²/(2n))
    rng = np.random.default_rng(2)
    d = rng.normal(0.5, 1.0, 400)
    est = P.cohens_dz(d, np.zeros(400))
    dz = d.mean() / d.std(ddof=1)
    se = np.sqrt(1 / 400 + dz**2 / 800)
    assert est.statistic == pytest.approx(dz)
    assert est.confidence_interval.low == pytest.approx(dz - 1.96 * se, abs=0.005)
    assert est.confidence_interval.high == pytest.approx(dz + 1.96 * se, abs=0.005)


def test_corrected_resampled_t_hand_computation():
    # by hand: diffs mean 0.01, s² = 0.001/4 = 0.00025, factor 1/5 + 200/800 = 0.45,
    # se = sqrt(0.45·0.00025) = 0.0106066, t = 0.942809, df = 4,
    # half width = t_{0.975,4} · se = 2.776445 · 0.0106066 = 0.0294487
    res = P.corrected_resampled_t([0.01, 0.03, -0.01, 0.02, 0.00], 800, 200, k=5)
    assert res.statistic == pytest.approx(0.942809, abs=1e-6)
    assert res.estimate == pytest.approx(0.01)
    assert res.confidence_interval.low == pytest.approx(0.01 - 0.0294487, abs=1e-6)
    assert res.pvalue == pytest.approx(2 * stats.t.sf(0.942809, 4), abs=1e-6)
    assert res.n == 5
    with pytest.raises(StatsInputError, match="k·r"):
        P.corrected_resampled_t([0.1, 0.2, 0.3], 80, 20, k=5, r=2)


def test_corrected_t_without_correction_is_one_sample_t():
    # n_test/n_train → 0 leaves 1/J: the ordinary one-sample t-test (scipy)
    d = np.random.default_rng(3).normal(0.1, 0.2, 10)
    res = P.corrected_resampled_t(d, n_train=10**15, n_test=1)
    ref = stats.ttest_1samp(d, 0.0)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-9)


def test_delong_hand_worked_example():
    # positives A: .9 .8 .4, negatives A: .7 .4; positives B: .6 .3 .5, negatives B: .2 .55
    # ψ-kernel by hand: V10_A = (1, 1, .25), V01_A = (2/3, 5/6), AUC_A = .75;
    #                   V10_B = (1, .5, .5), V01_B = (1, 1/3),  AUC_B = 2/3.
    # S10 = cov of V10 (ddof 1) = [[.1875, .0625], [.0625, 1/12]],
    # S01 = [[1/72, -1/18], [-1/18, 2/9]],  S = S10/3 + S01/2 = [[5/72, -1/144], [-1/144, 5/36]]
    # var(A − B) = 5/72 + 5/36 + 2/144 = 2/9,  z = (1/12)/sqrt(2/9) = 1/(4√2)
    y = np.array([1, 1, 1, 0, 0])
    a = np.array([0.9, 0.8, 0.4, 0.7, 0.4])
    b = np.array([0.6, 0.3, 0.5, 0.2, 0.55])
    aucs, cov = P.delong_covariance(y, np.stack([a, b]))
    np.testing.assert_allclose(aucs, [0.75, 2 / 3], atol=1e-15)
    np.testing.assert_allclose(cov, [[5 / 72, -1 / 144], [-1 / 144, 5 / 36]], atol=1e-15)
    res = P.delong(y, a, b)
    assert res.estimate == pytest.approx(1 / 12)
    assert res.statistic == pytest.approx(1 / (4 * np.sqrt(2)))
    assert res.pvalue == pytest.approx(2 * stats.norm.sf(1 / (4 * np.sqrt(2))))
    half = stats.norm.ppf(0.975) * np.sqrt(2 / 9)
    assert res.confidence_interval.low == pytest.approx(1 / 12 - half)


@pytest.mark.parametrize("seed", range(5))
def test_delong_fast_equals_slow_formula(seed):
    rng = np.random.default_rng(seed)
    n = 150
    y = (rng.random(n) < 0.3).astype(int)
    scores = np.round(rng.random((3, n)) + 0.5 * y, 1)  # ties on purpose
    fast = P.delong_covariance(y, scores)
    slow = P._delong_slow(y, scores)
    np.testing.assert_allclose(fast[0], slow[0], atol=1e-12)
    np.testing.assert_allclose(fast[1], slow[1], atol=1e-12)
    # and the AUROCs agree with scikit-learn
    np.testing.assert_allclose(fast[0], [roc_auc_score(y, s) for s in scores], atol=1e-12)


def test_mcnemar_exact_matches_statsmodels():
    rng = np.random.default_rng(4)
    a = rng.random(120) < 0.85
    b = rng.random(120) < 0.75
    res = P.mcnemar_exact(a, b)
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    ref = mcnemar(table, exact=True)  # reference: statsmodels
    assert res.pvalue == pytest.approx(ref.pvalue) and res.statistic == ref.statistic
    assert res.estimate == pytest.approx(a.mean() - b.mean())
    assert res.confidence_interval.low < res.estimate < res.confidence_interval.high
    assert P.mcnemar_exact(a, a).pvalue == 1.0


def test_paired_bootstrap_matches_explicit_resampling():
    # reference: explicit index resampling with the same rng draws and scikit-learn AP
    rng = np.random.default_rng(5)
    y = (rng.random((70, 1)) < 0.3).astype(np.uint8)
    y[:2, 0] = [1, 0]
    pa = np.clip(0.4 * y + rng.random((70, 1)), 0, 1)
    pb = np.clip(0.2 * y + rng.random((70, 1)), 0, 1)
    res = P.paired_bootstrap(y, pa, pb, M.average_precision, n_resamples=300, rng=8)
    draws = np.random.default_rng(8).integers(0, 70, (300, 70))
    dist = np.array(
        [
            average_precision_score(y[i, 0], pa[i, 0]) - average_precision_score(y[i, 0], pb[i, 0])
            for i in draws
        ]
    )
    want = average_precision_score(y[:, 0], pa[:, 0]) - average_precision_score(y[:, 0], pb[:, 0])
    assert res.estimate[0] == pytest.approx(want)
    np.testing.assert_allclose(
        [res.confidence_interval.low[0], res.confidence_interval.high[0]],
        np.quantile(dist, [0.025, 0.975]),
        atol=1e-12,
    )
    tail = min((dist <= 0).sum(), (dist >= 0).sum())
    assert res.pvalue[0] == pytest.approx(min(1.0, 2 * (tail + 1) / 301))
    bca = P.paired_bootstrap(y, pa, pb, M.average_precision, n_resamples=300, rng=8, method="bca")
    assert bca.confidence_interval.low[0] != res.confidence_interval.low[0]


def test_noninferiority_decided_by_lower_bound():
    test = PairedTest(0.0, 0.5, ConfidenceInterval(-0.015, 0.01), 0.95, 10, "paired t", -0.002)
    assert P.noninferiority(test, margin=0.02)["noninferior"] is True
    assert P.noninferiority(test, margin=0.01)["noninferior"] is False
    assert P.noninferiority(test, 0.02)["one_sided_alpha"] == pytest.approx(0.025)


def _tidy(rng, folds=1):
    rows = []
    for seed in range(6):
        for fold in range(folds):
            for cls in ["A", "B"]:
                base = 0.8 + rng.normal(0, 0.01)
                rows.append(("baseline", seed, fold, cls, base))
                rows.append(("prune50", seed, fold, cls, base - 0.02 + rng.normal(0, 0.005)))
                rows.append(("int8", seed, fold, cls, base + rng.normal(0, 0.005)))
    return pd.DataFrame(rows, columns=["variant", "seed", "fold", "class", "value"])


def test_compare_variants_tidy_output_and_adjustment():
    df = _tidy(np.random.default_rng(6))
    out = P.compare_variants(df)
    assert len(out) == 8  # 2 variants × 2 classes × 2 adjustment methods
    holm = out[out["adj_method"] == "holm"]
    row = holm[(holm["variant"] == "prune50") & (holm["class"] == "A")].iloc[0]
    sub = df[df["class"] == "A"].pivot(index="seed", columns="variant", values="value")
    ref = stats.ttest_rel(sub["prune50"], sub["baseline"])  # reference: scipy
    assert row["pvalue"] == pytest.approx(ref.pvalue)
    assert row["estimate"] == pytest.approx((sub["prune50"] - sub["baseline"]).mean())
    # reference: statsmodels Holm over the four tests
    np.testing.assert_allclose(holm["pvalue_adj"], multipletests(holm["pvalue"], method="holm")[1])
    assert set(out.columns) >= {"statistic", "pvalue", "ci_low", "ci_high", "n", "method"}


def test_compare_variants_kfold_needs_corrected_t():
    df = _tidy(np.random.default_rng(7), folds=5)
    with pytest.raises(StatsInputError, match="corrected_t"):
        P.compare_variants(df)
    out = P.compare_variants(df, test="corrected_t", n_train=800, n_test=200, adjust_methods="holm")
    assert (out["n"] == 30).all() and (out["adj_method"] == "holm").all()


@pytest.mark.slow
def test_coverage_paired_t():
    # nominal 95 % interval of the mean paired difference over 5 seeds covers the truth
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(2000):
        base = rng.normal(0.8, 0.02, 5)
        variant = base - 0.01 + rng.normal(0, 0.01, 5)
        ci = P.paired_t(variant, base).confidence_interval
        hits += ci.low <= -0.01 <= ci.high
    assert 0.93 <= hits / 2000 <= 0.97
