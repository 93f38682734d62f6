"""analysis.metrics against scikit-learn (the independent reference for every value here)."""

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    recall_score,
    roc_auc_score,
)

from analysis import metrics as M
from analysis.results import StatsInputError


def _data(rng, n=300, c=5, runs=(3,), decimals=None, dtype=np.float32):
    y = (rng.random((n, c)) < rng.uniform(0.05, 0.5, c)).astype(np.uint8)
    y[:2] = [[1] * c, [0] * c]  # every class has a positive and a negative
    p = np.clip(0.3 * y + rng.random((*runs, n, c)), 0, 1)
    if decimals is not None:
        p = np.round(p, decimals)  # many ties
    return y, p.astype(dtype)


def _per_class(fn, y, p):
    """Reference: loop over runs and classes calling scikit-learn."""
    flat = p.reshape(-1, *y.shape)
    out = [[fn(y[:, c], run[:, c]) for c in range(y.shape[1])] for run in flat]
    return np.array(out).reshape(*p.shape[:-2], y.shape[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_auroc_ap_equal_sklearn_including_ties(dtype, decimals):
    y, p = _data(np.random.default_rng(0), runs=(2, 3), decimals=decimals, dtype=dtype)
    auc, ap = M.ranking_metrics(y, p)
    assert auc.shape == ap.shape == (2, 3, 5)
    np.testing.assert_allclose(auc, _per_class(roc_auc_score, y, p), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ap, _per_class(average_precision_score, y, p), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(M.auroc(y, p), auc)
    np.testing.assert_array_equal(M.average_precision(y, p), ap)


def test_negative_scores_and_signed_zero():
    # logits (negative values, -0.0 tied with +0.0) take the float32 bit-packing path
    rng = np.random.default_rng(1)
    y, _ = _data(rng, n=200, c=3, runs=())
    p = np.round(rng.normal(size=(200, 3)) + y, 1).astype(np.float32)
    p[:20, 0] = -0.0
    p[20:40, 0] = 0.0
    auc, ap = M.ranking_metrics(y, p)
    np.testing.assert_allclose(auc, _per_class(roc_auc_score, y, p), atol=1e-12)
    np.testing.assert_allclose(ap, _per_class(average_precision_score, y, p), atol=1e-12)


def test_weighted_equals_resampled_data():
    # multinomial counts as weights == the metric on the explicitly resampled rows (sklearn)
    rng = np.random.default_rng(2)
    y, p = _data(rng, n=150, c=4, runs=(), decimals=1)
    w = rng.multinomial(150, np.full(150, 1 / 150), size=3)
    auc, ap = M.ranking_metrics(y, p, sample_weight=w)
    assert auc.shape == (3, 4)
    for b in range(3):
        rows = np.repeat(np.arange(150), w[b])
        np.testing.assert_allclose(auc[b], _per_class(roc_auc_score, y[rows], p[rows]), atol=1e-12)
        np.testing.assert_allclose(
            ap[b], _per_class(average_precision_score, y[rows], p[rows]), atol=1e-12
        )


def _resampled_reference(y, p, w):
    """Reference: sklearn on the explicitly repeated rows, NaN where a class is one-valued."""
    rows = np.repeat(np.arange(len(y)), w)
    auc, ap = [], []
    for c in range(y.shape[1]):
        yc, pc = y[rows, c], p[rows, c]
        ok = 0 < yc.sum() < yc.size
        auc.append(roc_auc_score(yc, pc) if ok else np.nan)
        ap.append(average_precision_score(yc, pc) if ok else np.nan)
    return np.array(auc), np.array(ap)


@pytest.mark.parametrize("group_chunk", [1, 7, M._GROUP_CHUNK])
def test_weighted_edge_cases_equal_resampled_data(monkeypatch, group_chunk):
    # rare class (2 positives, often none drawn), a constant (all-tied) column, a class
    # whose positives all tie with negatives, zero weights; the weight vectors evaluated
    # one by one, 7 groups x vectors at a time, or all together
    monkeypatch.setattr(M, "_GROUP_CHUNK", group_chunk)
    rng = np.random.default_rng(10)
    n = 60
    y, p = _data(rng, n=n, c=4, runs=(), decimals=1)
    y[:, 1] = 0
    y[[5, 40], 1] = 1
    p[:, 2] = 0.5
    p[y[:, 3] == 1, 3] = 0.7
    p[:10, 3] = 0.7
    w = rng.multinomial(n, np.full(n, 1 / n), size=12)
    w[0, [5, 40]] = 0  # no positive of class 1 drawn
    auc, ap = M.ranking_metrics(y, p, sample_weight=w)
    for b in range(len(w)):
        ref_auc, ref_ap = _resampled_reference(y, p, w[b])
        np.testing.assert_allclose(auc[b], ref_auc, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ap[b], ref_ap, rtol=0, atol=1e-12)
    assert np.isnan(auc[0, 1]) and np.isnan(ap[0, 1])


def test_large_integer_weights_take_the_float64_path_exactly():
    # totals above 2**24 do not fit float32 exactly; scaling all weights leaves AUROC and
    # AP unchanged, so the scaled result must equal sklearn on the unscaled resample
    rng = np.random.default_rng(11)
    y, p = _data(rng, n=100, c=3, runs=(), decimals=2)
    w = rng.multinomial(100, np.full(100, 1 / 100), size=2)
    auc, ap = M.ranking_metrics(y, p, sample_weight=w * 2**22)
    assert (w * 2**22).sum(axis=1).min() >= 2**24
    for b in range(2):
        ref_auc, ref_ap = _resampled_reference(y, p, w[b])
        np.testing.assert_allclose(auc[b], ref_auc, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ap[b], ref_ap, rtol=0, atol=1e-12)


def test_scores_changed_in_place_are_ranked_again():
    # the weighted path reuses the last ranking only while the scores compare equal
    rng = np.random.default_rng(12)
    y, p = _data(rng, n=80, c=2, runs=())
    w = np.ones((1, 80), dtype=np.int64)
    M.ranking_metrics(y, p, sample_weight=w)
    p[:, 0] = p[::-1, 0]
    auc, ap = M.ranking_metrics(y, p, sample_weight=w)
    np.testing.assert_allclose(auc[0], _per_class(roc_auc_score, y, p), atol=1e-12)
    np.testing.assert_allclose(ap[0], _per_class(average_precision_score, y, p), atol=1e-12)


def test_per_run_integer_weights_and_broadcast_scores():
    # weights (3, N) against scores (1, N, C): each weight vector ranks the same scores
    rng = np.random.default_rng(13)
    y, p = _data(rng, n=90, c=3, runs=(1,), decimals=1)
    w = rng.multinomial(90, np.full(90, 1 / 90), size=3)
    auc, ap = M.ranking_metrics(y, p, sample_weight=w)
    assert auc.shape == ap.shape == (3, 3)
    for b in range(3):
        ref_auc, ref_ap = _resampled_reference(y, p[0], w[b])
        np.testing.assert_allclose(auc[b], ref_auc, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ap[b], ref_ap, rtol=0, atol=1e-12)


def test_weights_broadcast_over_runs():
    rng = np.random.default_rng(3)
    y, p = _data(rng, n=100, c=3, runs=(2,))
    w = rng.integers(0, 3, size=(4, 1, 100)).astype(float)
    auc = M.auroc(y, p, sample_weight=w)
    assert auc.shape == (4, 2, 3)
    for b in range(4):
        for r in range(2):
            rows = np.repeat(np.arange(100), w[b, 0].astype(int))
            ref = _per_class(roc_auc_score, y[rows], p[r][rows])
            np.testing.assert_allclose(auc[b, r], ref, atol=1e-12)


def test_real_valued_per_run_weights_equal_sklearn_sample_weight():
    # non-integer weights, one weight vector per run (the take_along_axis path);
    # reference: scikit-learn's sample_weight support
    rng = np.random.default_rng(8)
    y, p = _data(rng, n=120, c=3, runs=(2,), decimals=1)
    w = rng.random((2, 120))
    auc, ap = M.ranking_metrics(y, p, sample_weight=w)
    for r in range(2):
        for c in range(3):
            kw = {"sample_weight": w[r]}
            assert auc[r, c] == pytest.approx(roc_auc_score(y[:, c], p[r, :, c], **kw), abs=1e-12)
            assert ap[r, c] == pytest.approx(
                average_precision_score(y[:, c], p[r, :, c], **kw), abs=1e-12
            )


def test_one_class_columns_are_nan_and_macro_ignores_them():
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], dtype=np.uint8)
    p = np.array([[0.9, 0.1], [0.2, 0.3], [0.7, 0.2], [0.4, 0.8]], dtype=np.float32)
    auc, ap = M.ranking_metrics(y, p)
    assert np.isnan(auc[1]) and np.isnan(ap[1])
    assert auc[0] == 1.0 and ap[0] == 1.0  # both positives ranked first (hand check)
    assert M.macro(auc) == 1.0
    assert np.isnan(M.macro(np.array([np.nan, np.nan])))
    assert M.macro_auroc(y, p) == 1.0


@pytest.mark.parametrize("weighted", [False, True])
def test_threshold_metrics_equal_sklearn(weighted):
    rng = np.random.default_rng(4)
    y, p = _data(rng, n=200, c=4, runs=(2,), decimals=2)
    t = np.array([0.5, 0.3, 0.7, 0.55])
    w = rng.integers(1, 4, size=200).astype(float) if weighted else None
    kw = {"sample_weight": w}
    for fn, ref in [
        (M.accuracy, accuracy_score),
        (M.sensitivity, recall_score),
        (M.f1, f1_score),
        (M.specificity, lambda yt, yp, **k: recall_score(1 - yt, 1 - yp, **k)),
    ]:
        got = fn(y, p, t, sample_weight=w)
        want = [
            [ref(y[:, c], (p[r, :, c] >= t[c]).astype(int), **kw) for c in range(4)]
            for r in range(2)
        ]
        np.testing.assert_allclose(got, want, atol=1e-12, err_msg=fn.__name__)


def test_f1_without_positives_is_nan():
    y = np.array([[0], [0]], dtype=np.uint8)
    assert np.isnan(M.f1(y, np.array([[0.1], [0.2]]), 0.5)[0])


def test_top1_accuracy_and_brier():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 100)
    y = np.eye(3, dtype=np.uint8)[labels]
    logits = rng.normal(size=(100, 3)) + 1.5 * y
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert M.top1_accuracy(y, p) == pytest.approx(accuracy_score(labels, p.argmax(1)), abs=1e-12)
    wr = rng.integers(0, 3, (4, 1, 100))
    runs = np.stack([p, p[::-1]])
    want_top1 = [
        [accuracy_score(labels, r.argmax(1), sample_weight=wr[b, 0]) for r in runs]
        for b in range(4)
    ]
    np.testing.assert_allclose(M.top1_accuracy(y, runs, sample_weight=wr), want_top1, atol=1e-12)
    want = [brier_score_loss(y[:, c], p[:, c]) for c in range(3)]
    np.testing.assert_allclose(M.brier(y, p), want, atol=1e-12)
    w = rng.integers(1, 3, 100).astype(float)
    want_w = [brier_score_loss(y[:, c], p[:, c], sample_weight=w) for c in range(3)]
    np.testing.assert_allclose(M.brier(y, p, sample_weight=w), want_w, atol=1e-12)


def test_ece_equals_calibration_curve():
    # reference: ECE = Σ_b n_b/N |frac_pos_b − mean_p_b| from sklearn's calibration_curve,
    # with bin counts from the same uniform edges
    rng = np.random.default_rng(6)
    y, p = _data(rng, n=500, c=3, runs=(), decimals=2)
    got = M.ece(y, p, n_bins=10)
    for c in range(3):
        frac, mean_p = calibration_curve(y[:, c], p[:, c], n_bins=10, strategy="uniform")
        edges = np.linspace(0, 1, 11)
        ids = np.searchsorted(edges[1:-1], p[:, c], side="left")
        counts = np.bincount(ids, minlength=10)
        counts = counts[counts > 0]
        assert got[c] == pytest.approx(np.sum(counts / 500 * np.abs(frac - mean_p)), abs=1e-7)


def test_top_label_ece_hand_example():
    # two images, confidence 0.9 (right) and 0.6 (wrong), 10 bins:
    # ECE = 1/2·|1 − 0.9| + 1/2·|0 − 0.6| = 0.35
    y = np.array([[1, 0], [1, 0]], dtype=np.uint8)
    p = np.array([[0.9, 0.1], [0.4, 0.6]])
    assert M.top_label_ece(y, p, n_bins=10) == pytest.approx(0.35)


def test_bad_inputs_raise():
    y = np.zeros((4, 2), dtype=np.uint8)
    with pytest.raises(StatsInputError, match="expected shape"):
        M.auroc(y, np.zeros((4, 3)))
    with pytest.raises(StatsInputError, match="0/1"):
        M.auroc(y + 2, np.zeros((4, 2)))
    with pytest.raises(StatsInputError, match="NaN"):
        M.auroc(y, np.full((4, 2), np.nan))
