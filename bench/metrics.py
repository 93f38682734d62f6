"""Per-epoch and per-split classification metrics (scikit-learn) and validation thresholds.

Labels ``y`` are (n, C) 0/1 matrices (one-hot for single-label tasks), probabilities ``p``
(n, C). AUROC/AP of a class whose labels take a single value in the split are NaN and left
out of the macro mean. For binary tasks AUROC and AUPRC are those of the positive class
(column 1); for multi-class and multi-label tasks they are one-vs-rest per class, averaged.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

THRESHOLD_RULES = ("max_f1", "youden")


def _check(y: np.ndarray, p: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    if y.ndim != 2 or y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} must both be (n, C)")
    if task not in ("binary", "multiclass", "multilabel"):
        raise ValueError(f"unknown task {task!r}")
    if task == "binary" and y.shape[1] != 2:
        raise ValueError(f"binary tasks have 2 columns (one-hot, softmax), got {y.shape[1]}")
    return y.astype(np.int64), p


def per_class_scores(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest (AUROC, AP) per column; NaN where the column holds a single label value."""
    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    auroc = np.full(y.shape[1], np.nan)
    ap = np.full(y.shape[1], np.nan)
    for c in range(y.shape[1]):
        if np.unique(y[:, c]).size == 2:
            auroc[c] = roc_auc_score(y[:, c], p[:, c])
            ap[c] = average_precision_score(y[:, c], p[:, c])
    return auroc, ap


def _nanmean(x: np.ndarray) -> float:
    return float(np.mean(x[~np.isnan(x)])) if np.any(~np.isnan(x)) else float("nan")


def choose_thresholds(y: np.ndarray, p: np.ndarray, task: str, rule: str = "max_f1") -> np.ndarray:
    """Per-class decision thresholds chosen on validation data (never on test).

    multilabel: one threshold per class by ``rule`` ("max_f1": maximises F1 of the class;
    "youden": maximises TPR − FPR); 0.5 for a class with a single label value.
    binary: class 1 is predicted iff p[:, 1] >= t with t chosen by ``rule`` on p[:, 1];
    returned as [1 − t, t]. multiclass: argmax, so all thresholds are NaN.
    A sample is positive for a class when ``p >= threshold`` (see :func:`apply_thresholds`).
    """
    y, p = _check(y, p, task)
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"training.threshold: {rule!r} is not one of {list(THRESHOLD_RULES)}")
    if task == "multiclass":
        return np.full(y.shape[1], np.nan)
    if task == "binary":
        t = _threshold(y[:, 1], p[:, 1], rule)
        return np.array([1 - t, t])
    return np.array([_threshold(y[:, c], p[:, c], rule) for c in range(y.shape[1])])


def _threshold(y: np.ndarray, p: np.ndarray, rule: str) -> float:
    if np.unique(y).size < 2:
        return 0.5
    if rule == "max_f1":
        precision, recall, thr = precision_recall_curve(y, p)
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
        return float(thr[int(np.argmax(f1))])
    fpr, tpr, thr = roc_curve(y, p)
    return float(min(thr[int(np.argmax(tpr - fpr))], 1.0))  # the first roc threshold is inf


def apply_thresholds(p: np.ndarray, task: str, thresholds: np.ndarray | None = None) -> np.ndarray:
    """(n, C) uint8 predictions: argmax for single-label tasks (binary: p1 >= t when given),
    ``p >= thresholds`` for multi-label (0.5 when none are given)."""
    p = np.asarray(p)
    n, c = p.shape
    if task == "multilabel":
        t = np.full(c, 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        return (p >= t).astype(np.uint8)
    if task == "binary" and thresholds is not None and not np.isnan(thresholds[1]):
        k = (p[:, 1] >= thresholds[1]).astype(np.int64)
    else:
        k = np.argmax(p, axis=1)
    out = np.zeros((n, c), dtype=np.uint8)
    out[np.arange(n), k] = 1
    return out


def classification_metrics(
    y: np.ndarray,
    p: np.ndarray,
    task: str,
    *,
    thresholds: np.ndarray | None = None,
    loss: float | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """loss, accuracy, macro precision/recall/F1/AUROC/AUPRC, and per-class ``ap__<class>`` /
    ``auroc__<class>`` for multi-label tasks.

    Accuracy for multi-label is the mean per-label accuracy at the thresholds.
    """
    y, p = _check(y, p, task)
    n_classes = y.shape[1]
    pred = apply_thresholds(p, task, thresholds)
    if task == "multilabel":
        accuracy = float(np.mean(pred == y))
        y_sk, pred_sk, labels = y, pred, None
    else:
        y_sk, pred_sk = y.argmax(1), pred.argmax(1)
        accuracy = float(np.mean(y_sk == pred_sk))
        labels = list(range(n_classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels absent from a split: zero_division handles them
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_sk, pred_sk, labels=labels, average="macro", zero_division=0
        )
    auroc, ap = per_class_scores(y, p)
    out = {
        "loss": float("nan") if loss is None else float(loss),
        "accuracy": accuracy,
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
        "auroc_macro": float(auroc[1]) if task == "binary" else _nanmean(auroc),
        "auprc_macro": float(ap[1]) if task == "binary" else _nanmean(ap),
    }
    if task == "multilabel":
        names = [str(c) for c in range(n_classes)] if class_names is None else list(class_names)
        if len(names) != n_classes:
            raise ValueError(f"{len(names)} class names for {n_classes} classes")
        out.update({f"ap__{name}": float(v) for name, v in zip(names, ap, strict=True)})
        out.update({f"auroc__{name}": float(v) for name, v in zip(names, auroc, strict=True)})
    return out
