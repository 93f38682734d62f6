"""Pruning-identified exemplars (PIEs): Hooker et al.'s modal rule, study B's Spearman rule,
and the characteristics of the images they select.

The functions see only arrays, so they work for any compressed variant (pruned, quantized,
structured): predictions or probabilities of a dense population and of a compressed
population of independently trained models, indexed ``[seed, image(, class)]``.
See docs/forgetting-and-pies.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.forgetting import spearman_along
from analysis.results import adjust

FINDINGS_BINS = ("0", "1", "2", "3", "4+")


@dataclass(frozen=True)
class ModalPies:
    """Result of ``pies_modal``: per image ``is_pie``; modal decisions of each population.

    Single-label: ``modal_*`` are (N,) labels and ``disagree`` is None. Multi-label: ``modal_*``
    and ``disagree`` are (N, C) 0/1 / bool arrays (which labels' modal decisions differ).
    """

    is_pie: np.ndarray
    modal_dense: np.ndarray
    modal_sparse: np.ndarray
    disagree: np.ndarray | None


@dataclass(frozen=True)
class SpearmanPies:
    """Result of ``pies_spearman``: ``is_pie`` and per-image ``rho`` (NaN when undefined)."""

    is_pie: np.ndarray
    rho: np.ndarray
    n_pies: int
    q: float


def predicted_labels(p: np.ndarray, thresholds: Sequence[float] | None = None) -> np.ndarray:
    """Probabilities (..., N, C) -> decisions: argmax label (..., N) when ``thresholds`` is None
    (single-label), else 0/1 (..., N, C) with p >= threshold per class (multi-label)."""
    p = np.asarray(p)
    if thresholds is None:
        return np.argmax(p, axis=-1)
    return (p >= np.asarray(thresholds, dtype=float)).astype(np.uint8)


def _modal_single(pred: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred)
    if not np.issubdtype(pred.dtype, np.integer) or pred.min() < 0:
        raise ValueError("single-label predictions must be non-negative integer class labels")
    n_labels = int(pred.max()) + 1
    counts = (pred[:, :, None] == np.arange(n_labels)).sum(axis=0)  # (N, labels)
    return np.argmax(counts, axis=1)  # first maximum = smallest label on ties


def _modal_multi(pred: np.ndarray) -> np.ndarray:
    votes = np.asarray(pred, dtype=float).mean(axis=0)
    return (votes > 0.5).astype(np.uint8)  # strict majority; a tie (even seeds) -> 0


def pies_modal(pred_dense: np.ndarray, pred_sparse: np.ndarray) -> ModalPies:
    """Hooker et al.'s PIEs: images whose modal prediction differs between the two populations.

    ``pred_*`` are (seed, N) integer labels (single-label) or (seed, N, C) 0/1 decisions after
    thresholding (multi-label); the two populations may have different numbers of seeds.
    Single-label ties go to the smallest label; multi-label modal decision per label is the
    strict majority (a tie, possible with an even number of seeds, gives 0 = the smaller label).
    A multi-label image is a PIE if any label's modal decision differs.
    """
    d, s = np.asarray(pred_dense), np.asarray(pred_sparse)
    if d.ndim != s.ndim or d.shape[1:] != s.shape[1:] or d.ndim not in (2, 3):
        raise ValueError(
            f"predictions must be (seed, N) or (seed, N, C) with matching N (and C); "
            f"got {d.shape} and {s.shape}"
        )
    if d.ndim == 2:
        md, ms = _modal_single(d), _modal_single(s)
        return ModalPies(is_pie=md != ms, modal_dense=md, modal_sparse=ms, disagree=None)
    md, ms = _modal_multi(d), _modal_multi(s)
    disagree = md != ms
    return ModalPies(
        is_pie=disagree.any(axis=1), modal_dense=md, modal_sparse=ms, disagree=disagree
    )


def pies_spearman(p_dense: np.ndarray, p_sparse: np.ndarray, q: float = 0.05) -> SpearmanPies:
    """Study B's PIEs: the ``q`` fraction of images whose seed-averaged dense and compressed
    probability vectors have the lowest Spearman correlation across classes.

    ``p_*`` are (seed, N, C). Count = floor(q × number of images with a defined rho), as
    study B's ``int(0.05 * n)``; images are ordered by (rho, image index), so ties at the cut
    go to the lower index. Images with undefined rho (a constant averaged vector) are never PIEs.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q must be a fraction in [0, 1], got {q}")
    d, s = np.asarray(p_dense, dtype=float), np.asarray(p_sparse, dtype=float)
    if d.ndim != 3 or s.ndim != 3 or d.shape[1:] != s.shape[1:]:
        raise ValueError(
            f"probabilities must be (seed, N, C) with matching N and C; got {d.shape}, {s.shape}"
        )
    rho = spearman_along(d.mean(axis=0), s.mean(axis=0), axis=-1)
    valid = np.flatnonzero(np.isfinite(rho))
    n_pies = math.floor(q * len(valid))
    chosen = valid[np.lexsort((valid, rho[valid]))][:n_pies]
    is_pie = np.zeros(len(rho), dtype=bool)
    is_pie[chosen] = True
    return SpearmanPies(is_pie=is_pie, rho=rho, n_pies=n_pies, q=q)


def _check_mask(Y: np.ndarray, is_pie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    Y = np.asarray(Y)
    mask = np.asarray(is_pie, dtype=bool)
    if Y.ndim != 2 or mask.shape != (Y.shape[0],):
        raise ValueError(f"labels {Y.shape} and is_pie {mask.shape} must be (N, C) and (N,)")
    if not mask.any() or mask.all():
        raise ValueError("is_pie must mark at least one PIE and one non-PIE image")
    return Y, mask


def prevalence_ratio(
    Y: np.ndarray, is_pie: np.ndarray, class_names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per class: prevalence among PIEs / among non-PIEs, Fisher exact test, BH-adjusted p.

    Columns: class, n_pie_pos, n_nonpie_pos, prev_pie, prev_nonpie, ratio, odds_ratio,
    pvalue, pvalue_adj, adj_method (the odds ratio and p-value come from
    ``scipy.stats.fisher_exact`` on the 2×2 table [[pie pos, pie neg], [non-PIE pos, non-PIE neg]]).
    """
    Y, mask = _check_mask(Y, is_pie)
    names = list(class_names) if class_names is not None else [str(i) for i in range(Y.shape[1])]
    n_pie, n_non = int(mask.sum()), int((~mask).sum())
    pos_pie = Y[mask].sum(axis=0).astype(int)
    pos_non = Y[~mask].sum(axis=0).astype(int)
    rows = []
    for c, name in enumerate(names):
        table = [[pos_pie[c], n_pie - pos_pie[c]], [pos_non[c], n_non - pos_non[c]]]
        res = stats.fisher_exact(table)
        prev_pie, prev_non = pos_pie[c] / n_pie, pos_non[c] / n_non
        rows.append(
            {
                "class": name,
                "n_pie_pos": pos_pie[c],
                "n_nonpie_pos": pos_non[c],
                "prev_pie": prev_pie,
                "prev_nonpie": prev_non,
                "ratio": prev_pie / prev_non if prev_non > 0 else np.nan,
                "odds_ratio": float(res.statistic),
                "pvalue": float(res.pvalue),
                "method": "Fisher exact",
            }
        )
    return adjust(pd.DataFrame(rows), "fdr_bh")


@dataclass(frozen=True)
class FindingsCount:
    """Result of ``findings_count_ratio``: the per-bin table and the chi-square test."""

    table: pd.DataFrame
    statistic: float
    pvalue: float
    dof: int
    method: str


def findings_count_ratio(
    Y: np.ndarray, is_pie: np.ndarray, exclude: Sequence[int] = ()
) -> FindingsCount:
    """Number of findings per image in bins 0, 1, 2, 3, 4+: share among PIEs / among non-PIEs,
    with a chi-square test of the 2×5 table (``scipy.stats.chi2_contingency``).

    ``exclude`` lists class columns not counted as findings (e.g. the index of "No Finding").
    Bins empty in both groups are left out of the test (their expected count is zero).
    """
    Y, mask = _check_mask(Y, is_pie)
    keep = np.setdiff1d(np.arange(Y.shape[1]), np.asarray(exclude, dtype=int))
    n_findings = np.minimum(Y[:, keep].sum(axis=1), 4)
    counts = np.array(
        [np.bincount(n_findings[g], minlength=5) for g in (mask, ~mask)]
    )  # rows: PIE, non-PIE
    frac = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(frac[1] > 0, frac[0] / frac[1], np.nan)
    table = pd.DataFrame(
        {
            "n_findings": FINDINGS_BINS,
            "n_pie": counts[0],
            "n_nonpie": counts[1],
            "frac_pie": frac[0],
            "frac_nonpie": frac[1],
            "ratio": ratio,
        }
    )
    used = counts.sum(axis=0) > 0
    if used.sum() < 2:
        return FindingsCount(table, np.nan, np.nan, 0, "chi-square (fewer than two bins)")
    res = stats.chi2_contingency(counts[:, used])
    return FindingsCount(
        table, float(res.statistic), float(res.pvalue), int(res.dof), "chi-square 2×bins"
    )


def accuracy_on_pies(
    y: np.ndarray,
    p_dense_mean: np.ndarray,
    thresholds: Sequence[float] | None,
    is_pie: np.ndarray,
) -> pd.DataFrame:
    """Accuracy of the (seed-averaged) dense model on PIEs vs non-PIEs, with a Fisher test.

    ``thresholds`` None: single-label, top-1 accuracy of argmax against argmax of one-hot ``y``.
    Otherwise multi-label: ``label_accuracy`` (mean over images and labels) and ``accuracy`` =
    exact match (all labels right). The Fisher exact test compares per-image correctness
    (``accuracy``) between the two groups; its p-value is repeated on both rows.
    """
    y, mask = _check_mask(y, is_pie)
    p = np.asarray(p_dense_mean, dtype=float)
    if p.shape != y.shape:
        raise ValueError(f"probabilities {p.shape} and labels {y.shape} must have one shape")
    if thresholds is None:
        correct_labels = (predicted_labels(p) == np.argmax(y, axis=1))[:, None]
    else:
        correct_labels = predicted_labels(p, thresholds) == y
    correct = correct_labels.all(axis=1)
    table = [[int(correct[g].sum()), int((~correct[g]).sum())] for g in (mask, ~mask)]
    res = stats.fisher_exact(table)
    return pd.DataFrame(
        {
            "group": ["PIE", "non-PIE"],
            "n_images": [int(mask.sum()), int((~mask).sum())],
            "accuracy": [correct[mask].mean(), correct[~mask].mean()],
            "label_accuracy": [correct_labels[mask].mean(), correct_labels[~mask].mean()],
            "odds_ratio": float(res.statistic),
            "pvalue": float(res.pvalue),
            "method": "Fisher exact on per-image correctness",
        }
    )
