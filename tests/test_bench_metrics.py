"""bench.metrics against direct scikit-learn calls and hand-worked threshold cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from bench.metrics import apply_thresholds, choose_thresholds, classification_metrics

# one column worked by hand: sorted by p, labels are 0 (0.1), 1 (0.35), 0 (0.4), 1 (0.8), 1 (0.9)
Y_COL = np.array([0, 0, 1, 1, 1])
P_COL = np.array([0.1, 0.4, 0.35, 0.8, 0.9])


def _one_hot(k: np.ndarray, c: int) -> np.ndarray:
    return np.eye(c, dtype=np.uint8)[k]


def test_max_f1_threshold_by_hand() -> None:
    # F1 of "p >= t": t=0.9 → 0.5, t=0.8 → 0.8, t=0.4 → 2/3, t=0.35 → P=3/4, R=1, F1=6/7, t=0.1 → 0.75
    t = choose_thresholds(Y_COL[:, None], P_COL[:, None], "multilabel", "max_f1")
    np.testing.assert_allclose(t, [0.35])


def test_youden_threshold_by_hand() -> None:
    # TPR−FPR: t=0.9 → 1/3, t=0.8 → 2/3 − 0, t=0.4 → 2/3 − 1/2, t=0.35 → 1 − 1/2, t=0.1 → 0
    t = choose_thresholds(Y_COL[:, None], P_COL[:, None], "multilabel", "youden")
    np.testing.assert_allclose(t, [0.8])


def test_binary_and_multiclass_thresholds() -> None:
    y = _one_hot(Y_COL, 2)
    p = np.stack([1 - P_COL, P_COL], 1)
    t = choose_thresholds(y, p, "binary", "max_f1")
    np.testing.assert_allclose(t, [0.65, 0.35])
    np.testing.assert_array_equal(apply_thresholds(p, "binary", t)[:, 1], P_COL >= 0.35)
    assert np.isnan(choose_thresholds(y, p, "multiclass")).all()


def test_single_valued_class_gets_half() -> None:
    y = np.stack([Y_COL, np.zeros(5, dtype=int)], 1)
    p = np.stack([P_COL, P_COL], 1)
    np.testing.assert_allclose(choose_thresholds(y, p, "multilabel"), [0.35, 0.5])


def test_unknown_rule() -> None:
    with pytest.raises(ValueError, match="max_f1"):
        choose_thresholds(Y_COL[:, None], P_COL[:, None], "multilabel", "best")


def test_multilabel_against_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((60, 3)) < 0.4).astype(np.uint8)
    y[:, 2] = 0  # a class without positives in this split: NaN, left out of the means
    p = np.clip(y * 0.3 + rng.random((60, 3)) * 0.7, 0, 1)
    t = np.array([0.4, 0.6, 0.5])
    m = classification_metrics(
        y, p, "multilabel", thresholds=t, loss=0.25, class_names=["a", "b", "c"]
    )
    pred = (p >= t).astype(int)
    assert m["loss"] == 0.25
    assert m["accuracy"] == pytest.approx(1 - skm.hamming_loss(y, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    assert m["precision_macro"] == pytest.approx(
        skm.precision_score(y, pred, average="macro", zero_division=0)
    )
    assert m["recall_macro"] == pytest.approx(
        skm.recall_score(y, pred, average="macro", zero_division=0)
    )
    aurocs = [skm.roc_auc_score(y[:, c], p[:, c]) for c in range(2)]
    aps = [skm.average_precision_score(y[:, c], p[:, c]) for c in range(2)]
    assert [m["auroc__a"], m["auroc__b"]] == pytest.approx(aurocs)
    assert [m["ap__a"], m["ap__b"]] == pytest.approx(aps)
    assert np.isnan(m["ap__c"]) and np.isnan(m["auroc__c"])
    assert m["auroc_macro"] == pytest.approx(np.mean(aurocs))
    assert m["auprc_macro"] == pytest.approx(np.mean(aps))


def test_multiclass_against_sklearn() -> None:
    rng = np.random.default_rng(1)
    k = rng.integers(0, 3, 80)
    logits = rng.normal(size=(80, 3)) + 1.5 * np.eye(3)[k]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(_one_hot(k, 3), p, "multiclass")
    pred = p.argmax(1)
    assert np.isnan(m["loss"])
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(k, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(k, pred, average="macro"))
    assert m["precision_macro"] == pytest.approx(skm.precision_score(k, pred, average="macro"))
    assert m["recall_macro"] == pytest.approx(skm.recall_score(k, pred, average="macro"))
    assert m["auroc_macro"] == pytest.approx(
        skm.roc_auc_score(k, p, multi_class="ovr", average="macro")
    )
    ovr_ap = [skm.average_precision_score(k == c, p[:, c]) for c in range(3)]
    assert m["auprc_macro"] == pytest.approx(np.mean(ovr_ap))
    assert not any(key.startswith("ap__") for key in m)


def test_binary_against_sklearn() -> None:
    rng = np.random.default_rng(2)
    k = rng.integers(0, 2, 50)
    p1 = np.clip(0.3 * k + 0.7 * rng.random(50), 0, 1)
    p = np.stack([1 - p1, p1], 1)
    m = classification_metrics(_one_hot(k, 2), p, "binary", thresholds=np.array([0.6, 0.4]))
    pred = (p1 >= 0.4).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(k, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(k, pred, average="macro"))
    assert m["auroc_macro"] == pytest.approx(skm.roc_auc_score(k, p1))
    assert m["auprc_macro"] == pytest.approx(skm.average_precision_score(k, p1))


def test_split_with_one_class_does_not_crash() -> None:
    y = _one_hot(np.zeros(6, dtype=int), 2)
    p = np.tile([0.7, 0.3], (6, 1))
    m = classification_metrics(y, p, "binary")
    assert m["accuracy"] == 1.0 and np.isnan(m["auroc_macro"]) and np.isnan(m["auprc_macro"])


def test_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="must both be"):
        classification_metrics(np.zeros((3, 2)), np.zeros((3, 3)), "multilabel")
