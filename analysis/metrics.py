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
Both only need sums at the tie groups that hold a positive (a few % of the positions);
with weights, those sums come from sparse 0/1 (groups × images) matrices built once per
sort and multiplied by blocks of weight vectors, and the last sort is reused while the
same scores come back (a bootstrap's chunks), so a bootstrap sorts once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from analysis.results import StatsInputError

#: elements (runs × classes × images) sorted at once, to bound memory (~8 arrays of this).
_CHUNK_ELEMENTS = 1_000_000
#: positive groups × weight vectors evaluated at once (~10 float64 arrays of this, in cache).
_GROUP_CHUNK = 262_144


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
    if not ((y == 0) | (y == 1)).all():
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


@dataclass(frozen=True)
class _Ranking:
    """The tie groups that hold a positive, in every row (run × class) of sorted scores.

    The K groups are numbered row after row, each row's in descending score order; row r's
    are ``offsets[r]:offsets[r + 1]``. Unweighted counts per group: ``d_pos`` positives,
    ``d_neg`` negatives tied with them, ``above`` images scored at or above the group.
    ``matrices`` (weighted use only) are three 0/1 sparse (K, N) matrices that turn image
    weights into the same per-group sums: the images first counted at the group (scored
    below the row's previous positive group and at or above this one), its positives and
    its tied negatives. Images below a row's last positive group never matter.
    """

    offsets: np.ndarray
    d_pos: np.ndarray
    d_neg: np.ndarray
    above: np.ndarray
    matrices: tuple[sparse.csr_array, sparse.csr_array, sparse.csr_array] | None


def _csr(indices: np.ndarray, counts: np.ndarray, n: int) -> sparse.csr_array:
    """0/1 float32 matrix (len(counts), n): row k holds the next ``counts[k]`` column indices."""
    indptr = np.concatenate([[0], np.cumsum(counts)])
    data = np.ones(indices.size, dtype=np.float32)
    return sparse.csr_array((data, indices, indptr), shape=(counts.size, n))


def _rank(y: np.ndarray, p: np.ndarray, weighted: bool) -> _Ranking:
    """Sort p (R, N, C) per run and class and find the positive tie groups of every row."""
    n = y.shape[0]
    order, ys, new = _sort_rows(p, y, need_order=weighted)
    n_rows = new.size // n
    ys = ys.reshape(-1)
    starts = np.flatnonzero(new)  # first sorted position of every tie group (flat)
    pos = np.flatnonzero(ys)  # sorted positions of the positives (flat)
    group = np.searchsorted(starts, pos, side="right") - 1
    first = np.flatnonzero(np.diff(group, prepend=-1))  # a positive group's first positive
    g = group[first]
    g_start = starts[g]
    g_end = np.append(starts, new.size)[g + 1] - 1
    d_pos = np.diff(np.append(first, pos.size))
    d_neg = g_end - g_start + 1 - d_pos
    row = g_start // n
    offsets = np.searchsorted(row, np.arange(n_rows + 1))
    matrices = None
    if weighted:
        flat_order = order.reshape(-1)
        new_row = np.diff(row, prepend=-1) != 0
        b_start = np.where(new_row, row * n, np.concatenate([[0], g_end[:-1] + 1]))
        last = offsets[1:][offsets[1:] > offsets[:-1]] - 1  # each non-empty row's last group
        limit = np.zeros(n_rows, dtype=np.int64)
        limit[row[last]] = g_end[last] - row[last] * n + 1
        counted = (np.arange(n) < limit[:, None]).reshape(-1)
        tied = np.flatnonzero(d_neg > 0)
        size = (g_end - g_start + 1)[tied]
        members = np.repeat(g_start[tied] - np.cumsum(size) + size, size) + np.arange(size.sum())
        tied_neg = ys[members] == 0
        matrices = (
            _csr(flat_order[counted], g_end - b_start + 1, n),
            _csr(flat_order[pos], d_pos, n),
            _csr(
                flat_order[members[tied_neg]],
                np.bincount(np.repeat(tied, size)[tied_neg], minlength=g.size),
                n,
            ),
        )
    return _Ranking(offsets, d_pos, d_neg, g_end - row * n + 1, matrices)


def _row_cumsum(x: np.ndarray, offsets: np.ndarray, integer: bool) -> np.ndarray:
    """Cumulative sums of x (K, E) along K, restarting at every row's offset."""
    if integer:  # integer values: one running sum minus the sum before each row, exactly
        cs = np.cumsum(x, axis=0)
        before = np.concatenate([np.zeros((1, x.shape[1])), cs])[offsets[:-1]]
        return cs - np.repeat(before, np.diff(offsets), axis=0)
    out = np.empty_like(x)
    for a, b in zip(offsets[:-1], offsets[1:], strict=True):
        np.cumsum(x[a:b], axis=0, out=out[a:b])
    return out


def _row_sum(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sums of x (K, E) over each row's groups: (rows, E), zero for rows without groups."""
    out = np.zeros((offsets.size - 1, x.shape[1]))
    filled = offsets[1:] > offsets[:-1]
    if filled.any():
        out[filled] = np.add.reduceat(x, offsets[:-1][filled], axis=0)
    return out


def _finish(
    r: _Ranking,
    d_pos: np.ndarray,
    d_neg: np.ndarray,
    w_above: np.ndarray,
    total: np.ndarray,
    integer: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP (E, rows) from per-group weights (K, E) and total weights (E,).

    With TP_g the positive and W_g all weight at or above group g and FP_g = W_g − TP_g:
    AP·P = Σ_g dTP_g·TP_g/W_g and (1 − AUROC)·P·N = Σ_g dTP_g·(FP_g − dFP_g/2).
    """
    tp = _row_cumsum(d_pos, r.offsets, integer)
    ap_sum = _row_sum(d_pos * tp / np.maximum(w_above, np.finfo(np.float64).tiny), r.offsets)
    loss_sum = _row_sum(d_pos * (w_above - tp - 0.5 * d_neg), r.offsets)
    n_pos = _row_sum(d_pos, r.offsets)
    n_neg = total - n_pos
    undefined = (n_pos <= 0) | (n_neg <= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(undefined, np.nan, ap_sum / n_pos)
        auc = np.where(undefined, np.nan, 1.0 - loss_sum / (n_pos * n_neg))
    return auc.T, ap.T


def _unweighted_block(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP (R, C) of p (R, N, C)."""
    r = _rank(y, p, weighted=False)

    def col(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float64)[:, None]

    total = np.array([float(y.shape[0])])
    auc, ap = _finish(r, col(r.d_pos), col(r.d_neg), col(r.above), total, integer=True)
    return auc.reshape(p.shape[0], -1), ap.reshape(p.shape[0], -1)


def _weighted_block(r: _Ranking, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP (E, rows) for weight vectors w (E, N), E groups of columns at a time.

    Integer weights summing below 2**24 go through float32 sparse products (exact counts).
    """
    integer = w.dtype.kind in "iu"
    total = w.sum(axis=-1).astype(np.float64)
    dtype = np.float32 if integer and total.max(initial=0) < 2**24 else np.float64
    matrices = [m.astype(dtype, copy=False) for m in r.matrices]
    step = max(1, _GROUP_CHUNK // max(1, r.d_pos.size))
    parts = []
    for s in range(0, len(w), step):
        x = np.ascontiguousarray(w[s : s + step].T, dtype=dtype)
        counted, d_pos, d_neg = (np.asarray(m @ x, dtype=np.float64) for m in matrices)
        w_above = _row_cumsum(counted, r.offsets, integer)
        parts.append(_finish(r, d_pos, d_neg, w_above, total[s : s + step], integer))
    return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])


#: the last ranking prepared for weights and copies of its inputs (see ``_weighted_ranking``)
_LAST: list[tuple[np.ndarray, np.ndarray, _Ranking]] = []


def _weighted_ranking(y: np.ndarray, p: np.ndarray) -> _Ranking:
    """The ranking of (y, p) with its weight matrices, sorted once per bootstrap.

    A bootstrap passes the same labels and scores chunk after chunk with new weights, so
    the last ranking is kept and reused while the inputs compare equal to its copies (a
    comparison costs far less than the sort).
    """
    if _LAST:
        y0, p0, r = _LAST[0]
        if (
            y0.shape == y.shape
            and p0.shape == p.shape
            and p0.dtype == p.dtype
            and np.array_equal(y0, y)
            and np.array_equal(p0, p)
        ):
            return r
    r = _rank(y, p.reshape(-1, *y.shape), weighted=True)
    _LAST[:] = [(y.copy(), p.copy(), r)]
    return r


def _weighted(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP (..., C) of p (..., N, C) with weights (..., N) broadcast over the runs."""
    n, c = y.shape
    p_lead, w_lead = p.shape[:-2], w.shape[:-1]
    n_extra = max(0, len(w_lead) - len(p_lead))
    if all(d == 1 for d in w_lead[n_extra:]):  # weights shared by every run: one ranking
        auc, ap = _weighted_block(_weighted_ranking(y, p), w.reshape(-1, n))
        shape = (*w_lead[:n_extra], *p_lead, c)
        return auc.reshape(shape), ap.reshape(shape)
    out_lead = np.broadcast_shapes(w_lead, p_lead)
    run_lead = out_lead[len(out_lead) - len(p_lead) :]
    runs = np.broadcast_to(p, (*run_lead, n, c)).reshape(-1, n, c)
    ws = np.broadcast_to(w, (*out_lead, n)).reshape(-1, len(runs), n)
    parts = [_weighted_block(_rank(y, runs[i : i + 1], True), ws[:, i]) for i in range(len(runs))]
    auc = np.stack([a for a, _ in parts], axis=1).reshape(*out_lead, c)
    ap = np.stack([b for _, b in parts], axis=1).reshape(*out_lead, c)
    return auc, ap


def ranking_metrics(
    y: np.ndarray, p: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class ``(auroc, average_precision)``, each (..., C), from one sort per run and class."""
    y, p = check_inputs(y, p)
    w = _check_weights(sample_weight, y.shape[0])
    if w is not None:
        return _weighted(y, p, w)
    lead = p.shape[:-2]
    flat = p.reshape(-1, *y.shape)
    step = max(1, _CHUNK_ELEMENTS // max(1, y.size))
    parts = [_unweighted_block(y, flat[i : i + step]) for i in range(0, len(flat), step)]
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
    return _wsum(correct[..., None], w)[..., 0] / w.sum(axis=-1)


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
