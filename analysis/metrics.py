"""Per-class metrics, vectorised over runs, classes and images, with optional sample weights.

Shapes: ``y`` is (N, C) 0/1 (one-hot for single-label tasks); ``p`` is (..., N, C) with any
leading run axes (seeds × variants ...); results are (..., C). ``sample_weight`` (..., N)
broadcasts against the leading axes of ``p``: the bootstrap passes multinomial resampling
counts as weights, so one resample costs no re-sort (``p`` (N, C) with weights (B, N) gives
(B, C)). A weighted metric with integer counts equals the metric on the resampled data.

AUROC and AP come from one sort per run and class (``ranking_metrics`` returns both):
AUROC is the Mann–Whitney statistic with ties counted one half; AP is scikit-learn's
``average_precision_score``: AP = Σ_n (R_n − R_{n−1}) P_n over the distinct thresholds,
tied scores forming one step. Classes without positives or without negatives give NaN.
"""

from __future__ import annotations

import numpy as np

from analysis.results import StatsInputError

#: elements (runs × classes × images) processed at once, to bound memory (~8 arrays of this).
_CHUNK_ELEMENTS = 1_000_000


def check_inputs(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels (N, C) in {0, 1} and probabilities (..., N, C), finite; return arrays."""
    y = np.asarray(y)
    p = np.asarray(p)
    if y.ndim != 2:
        raise StatsInputError(f"labels: expected shape (N, C), got {y.shape}")
    if p.ndim < 2 or p.shape[-2:] != y.shape:
        raise StatsInputError(
            f"probabilities: expected shape (..., {y.shape[0]}, {y.shape[1]}) to match the labels,"
            f" got {p.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        raise StatsInputError("labels: expected only 0/1 values; binarise the label matrix first")
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    if not np.isfinite(p).all():
        raise StatsInputError("probabilities: found NaN or infinite values; check the predictions")
    return y.astype(np.uint8, copy=False), p


def _check_weights(w: np.ndarray | None, n: int) -> np.ndarray | None:
    if w is None:
        return None
    w = np.asarray(w)
    w = w.astype(np.int64 if w.dtype.kind in "biu" else np.float64, copy=False)
    if w.ndim < 1 or w.shape[-1] != n:
        raise StatsInputError(f"sample_weight: expected shape (..., {n}), got {w.shape}")
    if (w < 0).any():
        raise StatsInputError("sample_weight: expected non-negative weights")
    return w


def _sort_rows(
    p: np.ndarray, y: np.ndarray, need_order: bool
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Sort scores p (..., N, C) by descending score per run and class.

    Returns the order (..., C, N) (None unless ``need_order``), the labels in that order
    and a mask that is True where a new tie group starts. float32 scores take a fast path:
    the order-preserving integer image of the score, the image index and the label are
    packed into one uint64 key, which NumPy sorts much faster than ``argsort`` would.
    """
    n = y.shape[0]
    if p.dtype == np.float32 and n < 2**31 and np.little_endian:
        bits = (p + np.float32(0.0)).view(np.int32)  # + 0.0 maps -0.0 to +0.0
        # a key that ascends as the score descends
        if bits.min() >= 0:
            np.subtract(np.int32(0x7FFFFFFF), bits, out=bits)
        else:  # negative scores (logits): flip the magnitude bits of non-negative ones
            bits ^= ~(bits >> 31) & np.int32(0x7FFFFFFF)
        packed = np.moveaxis(bits.view(np.uint32), -1, -2).astype(np.uint64, order="C")
        packed <<= np.uint64(32)
        packed |= (np.arange(n, dtype=np.uint64) << np.uint64(1)) | y.T.astype(np.uint64)
        packed.sort(axis=-1)
        words = packed.view(np.uint32)  # little-endian: (low, high) word pairs
        low, high = words[..., 0::2], words[..., 1::2]
        new = np.empty(packed.shape, dtype=bool)
        new[..., 0] = True
        np.not_equal(high[..., 1:], high[..., :-1], out=new[..., 1:])
        order = (low >> 1).astype(np.intp) if need_order else None
        return order, low & 1, new
    pt = np.moveaxis(p, -1, -2)
    order = np.argsort(-pt, axis=-1)
    ss = np.take_along_axis(pt, order, axis=-1)
    new = np.empty(ss.shape, dtype=bool)
    new[..., 0] = True
    np.not_equal(ss[..., 1:], ss[..., :-1], out=new[..., 1:])
    ys = np.take(np.ascontiguousarray(y.T).ravel(), order + np.arange(y.shape[1])[:, None] * n)
    return order, ys, new


def _gather_weights(w: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Weights (..., N) in the sorted order (..., C, N), broadcasting the leading axes."""
    p_lead = order.shape[:-2]
    w_lead = w.shape[:-1]
    aligned = w_lead[len(w_lead) - len(p_lead) :] if len(p_lead) else ()
    if all(d == 1 for d in aligned):  # weights shared by every run: a plain (fast) take
        out = np.take(w.reshape(*w_lead[: len(w_lead) - len(aligned)], -1), order, axis=-1)
        return out.reshape(np.broadcast_shapes(w_lead, p_lead) + order.shape[-2:])
    wt = w[..., None, :]
    nd = max(wt.ndim, order.ndim)
    wt = wt.reshape((1,) * (nd - wt.ndim) + wt.shape)
    return np.take_along_axis(wt, order.reshape((1,) * (nd - order.ndim) + order.shape), axis=-1)


def _per_row(values: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Sum ``values`` (..., G) into ``n_rows`` rows given each entry's (sorted) row index."""
    bounds = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])
    cs = np.concatenate([np.zeros((*values.shape[:-1], 1)), np.cumsum(values, axis=-1)], axis=-1)
    return cs[..., bounds[1:]] - cs[..., bounds[:-1]]


def _ranking_block(
    y: np.ndarray, p: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP for p (..., N, C), y (N, C), w None or (..., N) broadcastable.

    With positive weight pos_i, cumulative TP_i, all weight W_i and FP_i = W_i − TP_i at
    sorted position i: AP·P = Σ_i pos_i·TP_i/W_i and (1 − AUROC)·P·N = Σ_i pos_i·FP_i when
    no scores tie. Tied positions are then corrected group by group: every member of tie
    group g takes the counts at the group's end, and the tied negatives count one half:
    AP·P = Σ_g dTP_g·TP_g/W_g and (1 − AUROC)·P·N = Σ_g dTP_g·(FP_g − dFP_g/2).
    """
    n = y.shape[0]
    order, ys, new = _sort_rows(p, y, need_order=w is not None)
    tiny = np.finfo(np.float64).tiny
    if w is None:
        pos = ys
        tp = np.cumsum(ys, axis=-1, dtype=np.float64)
        cw = np.arange(1.0, n + 1.0)
    else:
        ws = _gather_weights(w, order)
        pos = ws * ys
        if w.dtype.kind in "iu" and w.sum(axis=-1).max() < 2**31:
            # integer counts: one int64 cumsum carries TP (high word) and W (low word)
            both = np.cumsum(ws + (pos << 32), axis=-1)
            tp = (both >> 32).astype(np.float64)
            cw = (both & 0xFFFFFFFF).astype(np.float64)
        else:
            tp = np.cumsum(pos, axis=-1)
            cw = np.cumsum(ws, axis=-1)
    fp = cw - tp
    n_pos = tp[..., -1]
    n_neg = fp[..., -1]
    ap_sum = (pos * (tp / np.maximum(cw, tiny))).sum(axis=-1)
    loss_sum = (pos * fp).sum(axis=-1)
    # tie groups of two or more: replace the raw contributions by the group's
    tied = ~new
    tied[..., :-1] |= ~new[..., 1:]
    if tied.any():
        lead = tp.shape[: tp.ndim - tied.ndim]
        mask = np.broadcast_to(tied, tp.shape[len(lead) :])
        idx = np.flatnonzero(mask)

        def pick(a):
            return np.broadcast_to(a, tp.shape).reshape(*lead, -1).take(idx, axis=-1)

        pos_t, tp_t, fp_t, cw_t = pick(pos), pick(tp), pick(fp), pick(cw)
        gstart = np.flatnonzero(np.broadcast_to(new, mask.shape).ravel()[idx])
        gend = np.concatenate([gstart[1:], [idx.size]]) - 1
        d_pos = np.add.reduceat(pos_t, gstart, axis=-1)
        if w is None:
            d_all = (gend - gstart + 1).astype(np.float64)
        else:
            d_all = np.add.reduceat(pick(ws), gstart, axis=-1)
        tp_end, fp_end, cw_end = tp_t[..., gend], fp_t[..., gend], cw_t[..., gend]
        d_ap = d_pos * tp_end / np.maximum(cw_end, tiny) - np.add.reduceat(
            pos_t * tp_t / np.maximum(cw_t, tiny), gstart, axis=-1
        )
        d_loss = d_pos * (fp_end - 0.5 * (d_all - d_pos)) - np.add.reduceat(
            pos_t * fp_t, gstart, axis=-1
        )
        rows = idx[gstart] // n
        n_rows = mask.size // n
        ap_sum = ap_sum + _per_row(d_ap, rows, n_rows).reshape(ap_sum.shape)
        loss_sum = loss_sum + _per_row(d_loss, rows, n_rows).reshape(loss_sum.shape)
    undefined = (n_pos <= 0) | (n_neg <= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(undefined, np.nan, ap_sum / n_pos)
        auc = np.where(undefined, np.nan, 1.0 - loss_sum / (n_pos * n_neg))
    return auc, ap


def ranking_metrics(
    y: np.ndarray, p: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class ``(auroc, average_precision)``, each (..., C), from one sort per run and class."""
    y, p = check_inputs(y, p)
    w = _check_weights(sample_weight, y.shape[0])
    if w is not None:
        return _ranking_block(y, p, w)
    lead = p.shape[:-2]
    flat = p.reshape(-1, *y.shape)
    step = max(1, _CHUNK_ELEMENTS // max(1, y.size))
    parts = [_ranking_block(y, flat[i : i + step], None) for i in range(0, len(flat), step)]
    auc = np.concatenate([a for a, _ in parts]).reshape(*lead, y.shape[1])
    ap = np.concatenate([b for _, b in parts]).reshape(*lead, y.shape[1])
    return auc, ap


def auroc(y: np.ndarray, p: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """Per-class AUROC (..., C) with ties counted one half; NaN for one-class columns."""
    return ranking_metrics(y, p, sample_weight)[0]


def average_precision(
    y: np.ndarray, p: np.ndarray, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    """Per-class average precision (..., C), equal to scikit-learn's; NaN without positives."""
    return ranking_metrics(y, p, sample_weight)[1]


def _wsum(x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Sum over the image axis of x (..., N, C) with weights (..., N) → (..., C)."""
    if w is None:
        return x.sum(axis=-2, dtype=np.float64)
    return np.matmul(w[..., None, :], x.astype(np.float64))[..., 0, :]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def confusion(
    y: np.ndarray,
    p: np.ndarray,
    thresholds: np.ndarray | float,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (weighted) counts ``tp, fp, fn, tn`` (..., C); predicted positive iff p ≥ t."""
    y, p = check_inputs(y, p)
    w = _check_weights(sample_weight, y.shape[0])
    t = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (y.shape[1],))
    pred = p >= t
    truth = y.astype(bool)
    tp = _wsum(pred & truth, w)
    fp = _wsum(pred & ~truth, w)
    fn = _wsum(~pred & truth, w)
    tn = _wsum(~pred & ~truth, w)
    return tp, fp, fn, tn


def accuracy(y, p, thresholds, sample_weight=None) -> np.ndarray:
    """Per-class accuracy (..., C) at the given thresholds: (TP + TN) / N."""
    tp, fp, fn, tn = confusion(y, p, thresholds, sample_weight)
    return _ratio(tp + tn, tp + fp + fn + tn)


def sensitivity(y, p, thresholds, sample_weight=None) -> np.ndarray:
    """Per-class sensitivity (recall) TP / (TP + FN) (..., C); NaN without positives."""
    tp, _, fn, _ = confusion(y, p, thresholds, sample_weight)
    return _ratio(tp, tp + fn)


def specificity(y, p, thresholds, sample_weight=None) -> np.ndarray:
    """Per-class specificity TN / (TN + FP) (..., C); NaN without negatives."""
    _, fp, _, tn = confusion(y, p, thresholds, sample_weight)
    return _ratio(tn, tn + fp)


def f1(y, p, thresholds, sample_weight=None) -> np.ndarray:
    """Per-class F1 = 2TP / (2TP + FP + FN) (..., C); NaN when no positives are true or predicted."""
    tp, fp, fn, _ = confusion(y, p, thresholds, sample_weight)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def top1_accuracy(y: np.ndarray, p: np.ndarray, sample_weight=None) -> np.ndarray:
    """Single-label accuracy (...,): the argmax of p equals the argmax of the one-hot y."""
    y, p = check_inputs(y, p)
    w = _check_weights(sample_weight, y.shape[0])
    correct = (np.argmax(p, axis=-1) == np.argmax(y, axis=-1)).astype(np.float64)
    if w is None:
        return correct.mean(axis=-1)
    return (w * correct).sum(axis=-1) / w.sum(axis=-1)


def brier(y: np.ndarray, p: np.ndarray, sample_weight=None) -> np.ndarray:
    """Per-class Brier score mean((p − y)²) (..., C); for single-label, sum over classes."""
    y, p = check_inputs(y, p)
    w = _check_weights(sample_weight, y.shape[0])
    sq = (p.astype(np.float64) - y) ** 2
    total = y.shape[0] if w is None else w.sum(axis=-1)[..., None]
    return _wsum(sq, w) / total


def _bin_index(c: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each value: [0, 1/B], (1/B, 2/B], ..., ((B−1)/B, 1].

    Right-closed as in Guo et al. (2017) and ``sklearn.calibration.calibration_curve``.
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], c, side="left")


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = 15, sample_weight=None) -> np.ndarray:
    """Per-class expected calibration error (..., C), equal-width bins on [0, 1].

    For class c: ECE_c = Σ_b (n_b / N) · |mean(y_c in b) − mean(p_c in b)|, the bins as in
    ``sklearn.calibration.calibration_curve(strategy="uniform")``. This is the classwise
    (per-label) ECE used for multi-label outputs; see ``top_label_ece`` for single-label.
    """
    y, p = check_inputs(y, p)
    w = _check_weights(sample_weight, y.shape[0])
    bins = _bin_index(p, n_bins)
    resid = p.astype(np.float64) - y
    out = 0.0
    for b in range(n_bins):
        out = out + np.abs(_wsum(np.where(bins == b, resid, 0.0), w))
    total = y.shape[0] if w is None else w.sum(axis=-1)[..., None]
    return out / total


def top_label_ece(y: np.ndarray, p: np.ndarray, n_bins: int = 15, sample_weight=None):
    """Single-label (top-label) ECE (...,): confidence max_c p vs. whether the argmax is right."""
    y, p = check_inputs(y, p)
    w = _check_weights(sample_weight, y.shape[0])
    conf = p.max(axis=-1).astype(np.float64)
    correct = np.argmax(p, axis=-1) == np.argmax(y, axis=-1)
    resid = (conf - correct)[..., None]
    bins = _bin_index(conf, n_bins)[..., None]
    out = 0.0
    for b in range(n_bins):
        out = out + np.abs(_wsum(np.where(bins == b, resid, 0.0), w))
    total = y.shape[0] if w is None else w.sum(axis=-1)[..., None]
    return (out / total)[..., 0]


def macro(x: np.ndarray) -> np.ndarray:
    """Mean over the class (last) axis ignoring NaN classes; NaN if every class is NaN."""
    x = np.asarray(x, dtype=np.float64)
    ok = ~np.isnan(x)
    count = ok.sum(axis=-1)
    total = np.where(ok, x, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def macro_auroc(y: np.ndarray, p: np.ndarray, sample_weight: np.ndarray | None = None):
    """Macro AUROC (...,): mean over the classes where it is defined."""
    return macro(auroc(y, p, sample_weight))


def macro_average_precision(y: np.ndarray, p: np.ndarray, sample_weight: np.ndarray | None = None):
    """Macro AP (mAP) (...,): mean over the classes with positives."""
    return macro(average_precision(y, p, sample_weight))
