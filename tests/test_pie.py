"""Tests of analysis.pie on tiny hand-made arrays; references are worked by hand or scipy/pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis import pie


def test_modal_single_label_by_hand() -> None:
    # rows = seeds, columns = images
    dense = np.array([[0, 1, 2, 1], [0, 1, 2, 2], [1, 1, 0, 1]])
    sparse = np.array([[0, 1, 0, 1], [1, 1, 0, 2], [0, 2, 2, 0]])
    # dense modes:  img0 {0,0,1}->0, img1 {1,1,1}->1, img2 {2,2,0}->2, img3 {1,2,1}->1
    # sparse modes: img0 {0,1,0}->0, img1 {1,1,2}->1, img2 {0,0,2}->0, img3 {1,2,0} tie -> 0
    res = pie.pies_modal(dense, sparse)
    np.testing.assert_array_equal(res.modal_dense, [0, 1, 2, 1])
    np.testing.assert_array_equal(res.modal_sparse, [0, 1, 0, 0])
    np.testing.assert_array_equal(res.is_pie, [False, False, True, True])
    assert res.disagree is None
    # independent check: scipy.stats.mode also returns the smallest of tied modes
    np.testing.assert_array_equal(res.modal_sparse, stats.mode(sparse, axis=0).mode)


def test_modal_multi_label_by_hand_with_ties() -> None:
    # 4 seeds, 2 images, 2 labels
    dense = np.array(
        [
            [[1, 0], [0, 0]],
            [[1, 0], [0, 0]],
            [[1, 1], [0, 1]],
            [[0, 1], [0, 0]],
        ]
    )
    sparse = np.array(
        [
            [[1, 0], [0, 1]],
            [[1, 0], [0, 1]],
            [[1, 0], [1, 1]],
            [[1, 0], [0, 0]],
        ]
    )
    # img0: dense label0 3/4 -> 1, label1 2/4 tie -> 0; sparse 4/4 -> 1, 0/4 -> 0: same
    # img1: dense 0/4, 1/4 -> 0, 0; sparse 1/4 -> 0, 3/4 -> 1: label1 differs -> PIE
    res = pie.pies_modal(dense, sparse)
    np.testing.assert_array_equal(res.modal_dense, [[1, 0], [0, 0]])
    np.testing.assert_array_equal(res.modal_sparse, [[1, 0], [0, 1]])
    np.testing.assert_array_equal(res.is_pie, [False, True])
    np.testing.assert_array_equal(res.disagree, [[False, False], [False, True]])


def test_modal_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="matching"):
        pie.pies_modal(np.zeros((3, 4), int), np.zeros((3, 5), int))


def test_predicted_labels() -> None:
    p = np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.9]])
    np.testing.assert_array_equal(pie.predicted_labels(p), [1, 2])
    np.testing.assert_array_equal(pie.predicted_labels(p, [0.5, 0.5, 0.95]), [[0, 1, 0], [1, 0, 0]])


def test_spearman_rule_by_hand() -> None:
    base = np.array([0.1, 0.2, 0.3])
    dense_mean = np.tile(base, (4, 1))
    sparse_mean = np.array(
        [
            [0.1, 0.2, 0.3],  # same order: rho = 1
            [0.3, 0.2, 0.1],  # reversed: rho = -1
            [0.2, 0.1, 0.3],  # ranks (2,1,3) vs (1,2,3): 1 - 6*2/(3*8) = 0.5
            [0.1, 0.3, 0.2],  # ranks (1,3,2): also 0.5
        ]
    )
    e = 0.01  # two seeds whose mean is the vectors above
    p_dense = np.stack([dense_mean + e, dense_mean - e])
    p_sparse = np.stack([sparse_mean - e, sparse_mean + e])
    res = pie.pies_spearman(p_dense, p_sparse, q=0.5)
    np.testing.assert_allclose(res.rho, [1.0, -1.0, 0.5, 0.5])
    # floor(0.5 * 4) = 2 PIEs: image 1 (rho -1), then the tie at 0.5 goes to the lower index 2
    assert res.n_pies == 2
    np.testing.assert_array_equal(res.is_pie, [False, True, True, False])


def test_spearman_rule_matches_pandas_corrwith_and_counts() -> None:
    rng = np.random.default_rng(0)
    p_dense = rng.random((3, 59, 6))
    p_sparse = rng.random((2, 59, 6))
    res = pie.pies_spearman(p_dense, p_sparse, q=0.05)
    # study B's call: DataFrame.corrwith(method="spearman", axis=1) on the seed averages
    ref = pd.DataFrame(p_dense.mean(0)).corrwith(
        pd.DataFrame(p_sparse.mean(0)), axis=1, method="spearman"
    )
    np.testing.assert_allclose(res.rho, ref.to_numpy())
    assert res.n_pies == 2 == res.is_pie.sum()  # floor(0.05 * 59) = 2
    assert set(np.flatnonzero(res.is_pie)) == set(np.argsort(ref.to_numpy())[:2])


def test_spearman_rule_constant_vector_is_never_a_pie() -> None:
    p_dense = np.array([[[0.2, 0.2, 0.2], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]]])
    p_sparse = np.array([[[0.3, 0.2, 0.1], [0.3, 0.2, 0.1], [0.1, 0.2, 0.3]]])
    res = pie.pies_spearman(p_dense, p_sparse, q=0.5)
    assert np.isnan(res.rho[0])
    # two valid images: floor(0.5 * 2) = 1 PIE, the one with rho = -1
    np.testing.assert_array_equal(res.is_pie, [False, True, False])


LABELS = np.array(
    [  # 8 images, 3 classes; the first 3 are PIEs
        [1, 1, 0],
        [1, 0, 1],
        [0, 1, 1],
        [0, 0, 0],
        [1, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
        [1, 1, 1],
    ]
)
IS_PIE = np.array([True, True, True, False, False, False, False, False])


def test_prevalence_ratio_against_fisher() -> None:
    out = pie.prevalence_ratio(LABELS, IS_PIE, ["a", "b", "c"])
    # class a: 2/3 among PIEs, 2/5 among non-PIEs -> ratio (2/3)/(2/5) = 5/3
    a = out.set_index("class").loc["a"]
    assert a["prev_pie"] == pytest.approx(2 / 3) and a["prev_nonpie"] == pytest.approx(0.4)
    assert a["ratio"] == pytest.approx(5 / 3)
    ref = stats.fisher_exact([[2, 1], [2, 3]])
    assert a["odds_ratio"] == pytest.approx(ref.statistic)
    assert a["pvalue"] == pytest.approx(ref.pvalue)
    np.testing.assert_allclose(out["pvalue_adj"], multipletests(out["pvalue"], method="fdr_bh")[1])


def test_findings_count_ratio_against_chi2() -> None:
    res = pie.findings_count_ratio(LABELS, IS_PIE)
    # findings per image: PIEs 2, 2, 2; non-PIEs 0, 1, 0, 0, 3
    np.testing.assert_array_equal(res.table["n_pie"], [0, 0, 3, 0, 0])
    np.testing.assert_array_equal(res.table["n_nonpie"], [3, 1, 0, 1, 0])
    assert np.isnan(res.table["ratio"].iloc[2])  # no non-PIE with 2 findings
    assert res.table["ratio"].iloc[0] == 0.0
    # the 4+ bin is empty in both groups and is left out of the test
    ref = stats.chi2_contingency(np.array([[0, 0, 3, 0], [3, 1, 0, 1]]))
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.pvalue == pytest.approx(ref.pvalue) and res.dof == ref.dof


def test_findings_count_excludes_columns_and_bins_4_plus() -> None:
    Y = np.array([[1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0]])
    res = pie.findings_count_ratio(Y, np.array([True, True, False, False]), exclude=[0])
    # without column 0: 5 -> "4+", 0, 4 -> "4+", 0
    np.testing.assert_array_equal(res.table["n_pie"], [1, 0, 0, 0, 1])
    np.testing.assert_array_equal(res.table["n_nonpie"], [1, 0, 0, 0, 1])


def test_accuracy_on_pies_by_hand() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    p = np.array([[0.9, 0.6], [0.2, 0.8], [0.7, 0.7], [0.1, 0.1]])
    is_pie = np.array([True, True, False, False])
    out = pie.accuracy_on_pies(y, p, [0.5, 0.5], is_pie).set_index("group")
    # PIE images: img0 label1 wrong (exact match fails), img1 right -> accuracy 1/2, labels 3/4
    assert out.loc["PIE", "accuracy"] == 0.5 and out.loc["PIE", "label_accuracy"] == 0.75
    assert out.loc["non-PIE", "accuracy"] == 1.0
    assert out.loc["PIE", "pvalue"] == pytest.approx(stats.fisher_exact([[1, 1], [2, 0]]).pvalue)
    single = pie.accuracy_on_pies(np.eye(2)[[0, 1, 1, 0]], p, None, is_pie).set_index("group")
    # argmax: img0 -> 0 (right), img1 -> 1 (right), img2 tie -> 0 (wrong), img3 tie -> 0 (right)
    assert single.loc["PIE", "accuracy"] == 1.0 and single.loc["non-PIE", "accuracy"] == 0.5


def test_characteristics_need_both_groups() -> None:
    with pytest.raises(ValueError, match="at least one PIE"):
        pie.prevalence_ratio(LABELS, np.zeros(8, bool))
