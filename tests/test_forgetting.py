"""Tests of analysis.forgetting on hand-built arrays; references are scipy/sklearn or hand values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import jaccard_score
from statsmodels.stats.multitest import multipletests

from analysis import forgetting as fg

LEVELS = [0.0, 0.5, 0.7, 0.9]


def test_relative_change_by_hand() -> None:
    # class a: dense 0.5 -> 0.4 -> 0.2: Δ = 0, -0.2, -0.6; class b: dense 0 -> NaN (not ±1e12)
    m = np.array([[[0.5, 0.0], [0.4, 0.1], [0.2, 0.3]]])
    delta = fg.relative_change(m)
    np.testing.assert_allclose(delta[0, :, 0], [0.0, -0.2, -0.6])
    assert np.isnan(delta[0, :, 1]).all()


def test_curves_are_median_over_seeds() -> None:
    # three seeds; at level 1 class 0 has Δ = -0.1, -0.5, -0.3 -> median -0.3
    delta = np.zeros((3, 2, 1))
    delta[:, 1, 0] = [-0.1, -0.5, -0.3]
    np.testing.assert_allclose(fg.forgettability_curves(delta)[:, 0], [0.0, -0.3])


def test_curve_intervals_bracket_median_and_collapse_when_seeds_agree() -> None:
    rng = np.random.default_rng(0)
    delta = rng.normal(-0.2, 0.1, size=(15, 3, 4))
    delta[:, 2, 3] = -0.4  # every seed agrees: the interval is the point
    delta[0, 1, 0] = np.nan  # a seed with an undefined Δ is skipped, not propagated
    med = fg.forgettability_curves(delta)
    low, high = fg.curve_intervals(delta, n_resamples=500, rng=1)
    assert low.shape == high.shape == (3, 4)
    assert (low <= med + 1e-12).all() and (high >= med - 1e-12).all()
    assert low[2, 3] == pytest.approx(-0.4) and high[2, 3] == pytest.approx(-0.4)
    low2, _ = fg.curve_intervals(delta, n_resamples=500, rng=1)
    np.testing.assert_array_equal(low, low2)  # rng makes it reproducible


def test_forgotten_at_hand_curve_and_never_forgotten_class() -> None:
    curves = np.array(
        [
            [0.0, 0.0, 0.0, 0.0],
            [-0.10, -0.10, -0.20, np.nan],  # class c: exactly -0.20 is not below -0.20
            [-0.25, -0.15, -0.30, np.nan],
            [-0.50, -0.19, -0.60, np.nan],
        ]
    )  # (level, class): a crosses at 0.7, b never, c at 0.7, d is all NaN (never)
    at = fg.forgotten_at(curves, LEVELS)
    np.testing.assert_array_equal(at[[0, 2]], [0.7, 0.7])
    assert np.isnan(at[1]) and np.isnan(at[3])
    summary = fg.forgetting_summary(curves, LEVELS, ["a", "b", "c", "d"])
    assert summary["forgotten"].tolist() == [True, False, True, False]
    np.testing.assert_allclose(summary["change_at_max"].to_numpy()[:3], [-0.5, -0.19, -0.6])


def test_forgotten_at_uses_level_order_not_row_order() -> None:
    curves = np.array([[-0.3], [0.0], [-0.5]])  # rows given for levels 0.9, 0.0, 0.5
    assert fg.forgotten_at(curves, [0.9, 0.0, 0.5])[0] == 0.5
    assert fg.change_at_max(curves, [0.9, 0.0, 0.5])[0] == -0.3


def test_metric_array_round_trip_and_duplicates() -> None:
    df = pd.DataFrame(
        {
            "seed": [1, 1, 0, 0],
            "sparsity": [0.5, 0.0, 0.0, 0.5],
            "class": ["x", "x", "x", "x"],
            "value": [0.3, 0.6, 0.5, 0.25],
        }
    )
    m, seeds, levels, classes = fg.metric_array(df)
    assert m.shape == (2, 2, 1) and seeds.tolist() == [0, 1] and levels.tolist() == [0.0, 0.5]
    np.testing.assert_allclose(m[:, :, 0], [[0.5, 0.25], [0.6, 0.3]])
    with pytest.raises(ValueError, match="more than once"):
        fg.metric_array(pd.concat([df, df.iloc[:1]]))
    with pytest.raises(ValueError, match="missing column"):
        fg.metric_array(df.drop(columns="value"))


def test_class_impact_matches_scipy_welch_on_shifted_metric() -> None:
    rng = np.random.default_rng(3)
    m = rng.uniform(0.4, 0.8, size=(8, 3, 4))
    m[:, 2, 1] -= 0.3  # class 1 hit hard at level 2
    out = fg.class_impact(m, [0.0, 0.5, 0.9], list("abcd"))
    assert len(out) == 2 * 4
    row = out[(out["level"] == 0.9) & (out["class"] == "b")].iloc[0]
    # reference: shift each model's class metric by that model's macro mean, then Welch
    z_sparse = m[:, 2, 1] - m[:, 2, :].mean(axis=1)
    z_dense = m[:, 0, 1] - m[:, 0, :].mean(axis=1)
    ref = stats.ttest_ind(z_sparse, z_dense, equal_var=False)
    assert row["statistic"] == pytest.approx(ref.statistic)
    assert row["pvalue"] == pytest.approx(ref.pvalue)
    # impact = class change minus the overall (macro) change, means over seeds
    class_change = m[:, 2, 1].mean() - m[:, 0, 1].mean()
    overall_change = m[:, 2, :].mean() - m[:, 0, :].mean()
    assert row["impact"] == pytest.approx(class_change - overall_change)
    lvl = out[out["level"] == 0.9]
    np.testing.assert_allclose(lvl["pvalue_adj"], multipletests(lvl["pvalue"], method="fdr_bh")[1])


def test_log_frequency_by_hand() -> None:
    Y = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 0]])
    out = fg.log_frequency(Y)
    np.testing.assert_allclose(out[:2], [math.log(3), 0.0])
    assert np.isnan(out[2])  # no positives: excluded from correlations, not -inf


def test_correlate_matches_scipy_and_excludes_nan() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=20)
    y = 0.6 * x + rng.normal(scale=0.8, size=20)
    x_nan = x.copy()
    x_nan[[3, 7]] = np.nan  # e.g. classes never forgotten
    out = fg.correlate(x_nan, y, n_resamples=2000, rng=0).set_index("method")
    keep = np.isfinite(x_nan)
    pr = stats.pearsonr(x[keep], y[keep])
    sr = stats.spearmanr(x[keep], y[keep])
    assert out.loc["pearson", "statistic"] == pytest.approx(pr.statistic)
    assert out.loc["pearson", "pvalue"] == pytest.approx(pr.pvalue)
    assert out.loc["spearman", "statistic"] == pytest.approx(sr.statistic)
    assert out.loc["spearman", "pvalue"] == pytest.approx(sr.pvalue)
    assert (out["n"] == 18).all() and (out["n_excluded"] == 2).all()
    # reference interval: scipy's percentile bootstrap of pearsonr over pairs (other draws,
    # so agreement within Monte Carlo error only)
    ref = stats.bootstrap(
        (x[keep], y[keep]),
        lambda a, b: stats.pearsonr(a, b).statistic,
        paired=True,
        vectorized=False,
        method="percentile",
        n_resamples=2000,
        rng=1,
    ).confidence_interval
    assert out.loc["pearson", "ci_low"] == pytest.approx(ref.low, abs=0.06)
    assert out.loc["pearson", "ci_high"] == pytest.approx(ref.high, abs=0.06)


def test_correlate_degenerate_input_gives_nan_not_crash() -> None:
    out = fg.correlate([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], n_resamples=50, rng=0)
    assert out["statistic"].isna().all()
    out = fg.correlate([np.nan, np.nan, 1.0], [1.0, 2.0, 3.0], n_resamples=50, rng=0)
    assert out["n"].tolist() == [1, 1] and out["statistic"].isna().all()


def test_frequency_regression_by_hand() -> None:
    # y = 2 + 0.5 x exactly on x = 0, 1, 2, 3; the NaN pair is excluded
    out = fg.frequency_regression([2.0, 2.5, 3.0, 3.5, np.nan], [0.0, 1.0, 2.0, 3.0, 4.0])
    assert out["slope"] == pytest.approx(0.5) and out["intercept"] == pytest.approx(2.0)
    assert out["r_squared"] == pytest.approx(1.0) and out["n_excluded"] == 1
    rng = np.random.default_rng(2)
    x = rng.normal(size=12)
    y = x + rng.normal(size=12)
    ref = stats.linregress(x, y)
    out = fg.frequency_regression(y, x)
    assert out["slope"] == pytest.approx(ref.slope) and out["pvalue"] == pytest.approx(ref.pvalue)


# Four images, classes A, B, C:  img1 = {A, B}, img2 = {A}, img3 = {B, C}, img4 = {A, B, C}
Y4 = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 1, 1]])


def test_cooccurrence_and_textbook_iou_by_hand() -> None:
    # |A| = 3, |B| = 3, |C| = 2; A∩B = {1,4}, A∩C = {4}, B∩C = {3,4}
    np.testing.assert_array_equal(fg.cooccurrence(Y4), [[3, 2, 1], [2, 3, 2], [1, 2, 2]])
    iou = fg.iou_textbook(Y4)
    # 2/(3+3-2) = 1/2, 1/(3+2-1) = 1/4, 2/(3+2-2) = 2/3
    np.testing.assert_allclose([iou[0, 1], iou[0, 2], iou[1, 2]], [0.5, 0.25, 2 / 3])
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert iou[a, b] == pytest.approx(jaccard_score(Y4[:, a], Y4[:, b]))
    np.testing.assert_allclose(np.diag(iou), 1.0)


def test_study_b_iou_by_hand() -> None:
    # column sums of C = labels on the images holding the class:
    # s_A = 2 + 1 + 3 = 6 (img1, img2, img4), s_B = 2 + 2 + 3 = 7, s_C = 2 + 3 = 5
    np.testing.assert_array_equal(fg.label_load(Y4), [6, 7, 5])
    iou = fg.iou_study_b(Y4)
    # 2/(6+7-2) = 2/11, 1/(6+5-1) = 1/10, 2/(7+5-2) = 1/5
    np.testing.assert_allclose([iou[0, 1], iou[0, 2], iou[1, 2]], [2 / 11, 0.1, 0.2])


def test_fcd_by_hand() -> None:
    curves = np.array([[0.0, 0.0, 0.0], [-0.3, -0.7, 0.0]])  # (level, class)
    d = fg.fcd(curves)
    # |a-b| = 0.4, |a-c| = 0.3, |b-c| = 0.7 (only the second level differs)
    np.testing.assert_allclose(d, [[0, 0.4, 0.3], [0.4, 0, 0.7], [0.3, 0.7, 0]])


def _sym(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.random((n, n))
    a = a + a.T
    np.fill_diagonal(a, 0)
    return a


def test_mantel_exact_p_matches_full_enumeration() -> None:
    rng = np.random.default_rng(11)
    a, b = _sym(rng, 4), _sym(rng, 4)
    iu = np.triu_indices(4, k=1)
    r_obs = stats.pearsonr(a[iu], b[iu]).statistic
    null = [
        stats.pearsonr(a[iu], b[np.ix_(p, p)][iu]).statistic
        for p in map(list, itertools.permutations(range(4)))
    ]  # all 4! = 24 relabelings of b's classes
    p_exact = np.mean(np.asarray(null) >= r_obs - 1e-12)
    res = fg.mantel(a, b, n_permutations=1000, alternative="greater", rng=0)
    assert res["exact"] and res["n_permutations"] == 24
    assert res["statistic"] == pytest.approx(r_obs)
    assert res["pvalue"] == pytest.approx(p_exact)


def test_mantel_randomised_p_formula_and_identical_matrices() -> None:
    a = _sym(np.random.default_rng(2), 9)
    res = fg.mantel(a, a, n_permutations=199, alternative="greater", rng=0)
    # no relabeling but the identity reproduces r = 1: p = (0 + 1) / (199 + 1)
    assert not res["exact"] and res["statistic"] == pytest.approx(1.0)
    assert res["pvalue"] == pytest.approx(1 / 200)
    sp = fg.mantel(a, a, method="spearman", n_permutations=199, rng=0)
    assert sp["statistic"] == pytest.approx(1.0) and sp["pvalue"] == pytest.approx(2 / 200)


def test_mantel_spearman_statistic_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    a, b = _sym(rng, 7), _sym(rng, 7)
    iu = np.triu_indices(7, k=1)
    res = fg.mantel(a, b, method="spearman", n_permutations=99, rng=0)
    assert res["statistic"] == pytest.approx(stats.spearmanr(a[iu], b[iu]).statistic)


def test_mantel_independent_matrices_give_roughly_uniform_p() -> None:
    rng = np.random.default_rng(8)
    ps = np.array(
        [
            fg.mantel(_sym(rng, 8), _sym(rng, 8), n_permutations=199, rng=rng)["pvalue"]
            for _ in range(40)
        ]
    )
    # under H0 p ~ U(0, 1): mean 0.5 (sd of the mean ≈ 0.046), P(p < 0.05) = 0.05
    assert 0.3 < ps.mean() < 0.7
    assert (ps < 0.05).mean() <= 0.2


def test_mantel_drops_classes_with_nan() -> None:
    rng = np.random.default_rng(1)
    a, b = _sym(rng, 6), _sym(rng, 6)
    a[0, 2] = a[2, 0] = np.nan
    res = fg.mantel(a, b, n_permutations=99, rng=0)
    assert res["n_dropped"] == 2 and res["n_classes"] == 4 and np.isfinite(res["statistic"])


def test_fcd_relations_and_pair_table() -> None:
    rng = np.random.default_rng(6)
    Y = (rng.random((200, 6)) < np.linspace(0.05, 0.5, 6)).astype(int)
    curves = np.vstack([np.zeros(6), rng.normal(-0.3, 0.2, size=(3, 6))])
    out = fg.fcd_relations(curves, Y, n_permutations=99, rng=0)
    assert len(out) == 4 and {"pvalue_adj", "adj_method"} <= set(out.columns)
    pairs = fg.pair_table(curves, Y, [f"c{i}" for i in range(6)])
    assert len(pairs) == 15
    row = out[(out["covariate"] == "abs_log_freq_diff") & (out["method"] == "mantel-pearson")]
    ref = stats.pearsonr(pairs["fcd"], pairs["abs_log_freq_diff"]).statistic
    assert row["statistic"].iloc[0] == pytest.approx(ref)
    row = out[(out["covariate"] == "iou_quarter") & (out["method"] == "mantel-spearman")]
    ref = stats.spearmanr(pairs["fcd"], pairs["iou_quarter"]).statistic
    assert row["statistic"].iloc[0] == pytest.approx(ref)


def test_curve_intervals_with_one_seed_are_nan_not_a_crash():
    low, high = fg.curve_intervals(np.zeros((1, 3, 2)))
    assert low.shape == high.shape == (3, 2) and np.isnan(low).all() and np.isnan(high).all()
