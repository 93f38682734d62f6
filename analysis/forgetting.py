"""Forgettability of classes under compression (study B) and Hooker et al.'s per-class impact.

Inputs are plain arrays so any variant (pruned, quantized, structured) can be analysed:
a metric table ``m[seed, level, class]`` (level = compression level index, level 0 the dense
model, e.g. per-class AP) and label matrices ``Y`` of shape (N, C). Every number that a
figure shows is computed here, with its interval or test; nothing is typed in.
See docs/forgetting-and-pies.md for the definitions and where they differ from study B's code.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from scipy.spatial.distance import pdist, squareform

from analysis.results import adjust

# ---------------------------------------------------------------------------------------------
# metric tables


def metric_array(
    df: pd.DataFrame,
    *,
    value: str = "value",
    seed: str = "seed",
    level: str = "sparsity",
    cls: str = "class",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tidy (seed, level, class, value) rows -> ``(m[seed, level, class], seeds, levels, classes)``.

    Seeds and levels are sorted (level 0 = the smallest, normally the dense model); classes keep
    their first-appearance order. Missing cells become NaN; a duplicated key raises ValueError.
    """
    missing = [c for c in (value, seed, level, cls) if c not in df.columns]
    if missing:
        raise ValueError(
            f"metric table: missing column(s) {missing}; expected columns "
            f"{[seed, level, cls, value]} (pass value=/seed=/level=/cls= to rename)"
        )
    dup = df.duplicated([seed, level, cls])
    if dup.any():
        row = df.loc[dup].iloc[0]
        raise ValueError(
            f"metric table: key ({seed}={row[seed]!r}, {level}={row[level]!r}, {cls}={row[cls]!r}) "
            "appears more than once; filter to one variant family and one metric first"
        )
    seeds = np.sort(df[seed].unique())
    levels = np.sort(df[level].unique())
    classes = pd.unique(df[cls])
    idx = pd.MultiIndex.from_product([seeds, levels, classes], names=[seed, level, cls])
    cube = df.set_index([seed, level, cls])[value].reindex(idx).to_numpy(dtype=float)
    return cube.reshape(len(seeds), len(levels), len(classes)), seeds, levels, np.asarray(classes)


def relative_change(m: np.ndarray, dense_index: int = 0) -> np.ndarray:
    """Δ = (m_k − m_dense) / m_dense per seed, level and class; shape of ``m`` (seed, level, class).

    A dense metric of 0 or NaN gives NaN for that seed and class (study B added 1e-12 to the
    denominator instead, which turns 0 into ±1e12).
    """
    m = np.asarray(m, dtype=float)
    if m.ndim != 3:
        raise ValueError(f"metric table has shape {m.shape}; expected (seed, level, class)")
    dense = m[:, dense_index : dense_index + 1, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (m - dense) / dense
    return np.where(dense == 0, np.nan, delta)


def _nanmedian(x: np.ndarray, axis: int | tuple[int, ...]) -> np.ndarray:
    if not np.isnan(x).any():
        return np.median(x, axis=axis)  # same result, several times faster
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, as intended
        return np.nanmedian(x, axis=axis)


def forgettability_curves(delta: np.ndarray) -> np.ndarray:
    """Median Δ over seeds (NaN seeds skipped): the forgettability curves, shape (level, class)."""
    return _nanmedian(np.asarray(delta, dtype=float), axis=0)


def curve_intervals(
    delta: np.ndarray,
    *,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the median Δ over resampled seeds; (low, high), (level, class).

    With a single seed there is nothing to resample: both bounds are NaN.
    """
    delta = np.asarray(delta, dtype=float)
    if delta.shape[0] < 2:
        nan = np.full(delta.shape[1:], np.nan)
        return nan, nan.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.bootstrap(
            (delta,),
            _nanmedian,
            axis=0,
            vectorized=True,
            method="percentile",
            n_resamples=n_resamples,
            confidence_level=confidence_level,
            batch=200,
            rng=np.random.default_rng(rng),
        )
    return res.confidence_interval.low, res.confidence_interval.high


def curves_frame(
    delta: np.ndarray,
    levels: Sequence[float],
    classes: Sequence[str],
    *,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    rng: np.random.Generator | int | None = None,
) -> pd.DataFrame:
    """Tidy curves for tables and figures: level, class, median, ci_low, ci_high, n_seeds."""
    med = forgettability_curves(delta)
    low, high = curve_intervals(
        delta, confidence_level=confidence_level, n_resamples=n_resamples, rng=rng
    )
    n = np.isfinite(delta).sum(axis=0)
    lv, cl = np.meshgrid(np.asarray(levels), np.asarray(classes), indexing="ij")
    return pd.DataFrame(
        {
            "level": lv.ravel(),
            "class": cl.ravel(),
            "median": med.ravel(),
            "ci_low": low.ravel(),
            "ci_high": high.ravel(),
            "confidence_level": confidence_level,
            "n_seeds": n.ravel(),
        }
    )


def forgotten_at(
    curves: np.ndarray, levels: Sequence[float], threshold: float = -0.20
) -> np.ndarray:
    """Per class, the first level whose median Δ is below ``threshold``; NaN if it never crosses.

    Study B's code indexes ``np.where(...)[0][0]`` and crashes on a class that never crosses;
    here such a class gets NaN (see ``forgetting_summary`` for the explicit flag).
    """
    curves = np.asarray(curves, dtype=float)
    levels = np.asarray(levels, dtype=float)
    if curves.shape[0] != len(levels):
        raise ValueError(f"curves have {curves.shape[0]} levels but {len(levels)} levels given")
    order = np.argsort(levels, kind="stable")
    below = curves[order] < threshold  # NaN compares False: never counts as forgotten
    first = np.argmax(below, axis=0)
    return np.where(below.any(axis=0), levels[order][first], np.nan)


def change_at_max(curves: np.ndarray, levels: Sequence[float] | None = None) -> np.ndarray:
    """Median Δ at the largest level (the last row when ``levels`` is None), shape (class,)."""
    curves = np.asarray(curves, dtype=float)
    row = -1 if levels is None else int(np.argmax(np.asarray(levels, dtype=float)))
    return curves[row]


def forgetting_summary(
    curves: np.ndarray,
    levels: Sequence[float],
    classes: Sequence[str],
    threshold: float = -0.20,
) -> pd.DataFrame:
    """One row per class: forgotten_at (NaN if never), forgotten (bool), change_at_max."""
    at = forgotten_at(curves, levels, threshold)
    return pd.DataFrame(
        {
            "class": list(classes),
            "forgotten_at": at,
            "forgotten": np.isfinite(at),
            "change_at_max": change_at_max(curves, levels),
            "threshold": threshold,
        }
    )


# ---------------------------------------------------------------------------------------------
# Hooker et al.: per-class impact relative to the overall change


def class_impact(
    m: np.ndarray,
    levels: Sequence[float],
    classes: Sequence[str],
    *,
    dense_index: int = 0,
) -> pd.DataFrame:
    """Welch t-test per class and level of the class metric shifted by the model's overall metric.

    For seed s, level k, class c: z[s,k,c] = m[s,k,c] − mean_c' m[s,k,c'] (class metric minus the
    model's macro mean). The test compares z[:,k,c] (compressed population) with z[:,0,c]
    (dense population) by ``scipy.stats.ttest_ind(equal_var=False)``; its mean difference,
    ``impact`` = (class change) − (overall change), is what Hooker et al. call the change
    "relative to the overall change". p-values are BH-adjusted over classes within each level.
    """
    m = np.asarray(m, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        overall = np.nanmean(m, axis=2)
    z = m - overall[:, :, None]
    rows = []
    for k, level in enumerate(levels):
        if k == dense_index:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # zero variance -> NaN, reported
            res = stats.ttest_ind(
                z[:, k, :], z[:, dense_index, :], axis=0, equal_var=False, nan_policy="omit"
            )
            class_change = np.nanmean(m[:, k, :], axis=0) - np.nanmean(m[:, dense_index, :], axis=0)
            overall_change = np.nanmean(overall[:, k]) - np.nanmean(overall[:, dense_index])
        pvalue = np.asarray(res.pvalue, dtype=float)
        rows.append(
            pd.DataFrame(
                {
                    "level": level,
                    "class": list(classes),
                    "class_change": class_change,
                    "overall_change": overall_change,
                    "impact": class_change - overall_change,
                    "statistic": np.asarray(res.statistic, dtype=float),
                    "pvalue": pvalue,
                    "n_compressed": np.isfinite(z[:, k, :]).sum(axis=0),
                    "n_dense": np.isfinite(z[:, dense_index, :]).sum(axis=0),
                    "method": "Welch t-test on class metric minus overall metric",
                }
            )
        )
    return adjust(pd.concat(rows, ignore_index=True), "fdr_bh", by="level")


# ---------------------------------------------------------------------------------------------
# class frequency and correlations


def log_frequency(train_labels: np.ndarray) -> np.ndarray:
    """Natural log of the number of positive training images per class; NaN for a zero count."""
    counts = np.asarray(train_labels).sum(axis=0).astype(float)
    with np.errstate(divide="ignore"):
        return np.where(counts > 0, np.log(counts), np.nan)


def pearson_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson r along ``axis`` (vectorised over the other axes); constant rows give NaN."""
    xc = x - x.mean(axis=axis, keepdims=True)
    yc = y - y.mean(axis=axis, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (xc * yc).sum(axis=axis) / np.sqrt((xc**2).sum(axis=axis) * (yc**2).sum(axis=axis))


def spearman_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman ρ along ``axis``: Pearson r of average ranks; constant rows give NaN."""
    return pearson_along(stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis), axis=axis)


def correlate(
    x: Sequence[float],
    y: Sequence[float],
    *,
    confidence_level: float = 0.95,
    n_resamples: int = 9999,
    rng: np.random.Generator | int | None = None,
) -> pd.DataFrame:
    """Pearson r and Spearman ρ with scipy p-values and percentile bootstrap intervals.

    Pairs where either value is NaN (e.g. a class never forgotten) are excluded and counted in
    ``n_excluded``. The bootstrap resamples pairs (classes) with replacement; resamples whose
    statistic is undefined (constant values) are dropped from the percentile computation.
    Returns two rows (method = "pearson", "spearman").
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D and of equal length; got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    xs, ys = x[ok], y[ok]
    n = int(ok.sum())
    gen = np.random.default_rng(rng)
    idx = gen.integers(0, n, size=(n_resamples, n)) if n > 0 else np.zeros((0, 0), int)
    alpha = (1 - confidence_level) / 2
    rows = []
    for name, test, vec in (
        ("pearson", stats.pearsonr, pearson_along),
        ("spearman", stats.spearmanr, spearman_along),
    ):
        stat = pvalue = low = high = np.nan
        if n >= 3 and np.ptp(xs) > 0 and np.ptp(ys) > 0:
            res = test(xs, ys)
            stat, pvalue = float(res.statistic), float(res.pvalue)
            boot = vec(xs[idx], ys[idx], axis=-1)
            boot = boot[np.isfinite(boot)]
            if boot.size:
                low, high = np.quantile(boot, [alpha, 1 - alpha])
        rows.append(
            {
                "method": name,
                "statistic": stat,
                "pvalue": pvalue,
                "ci_low": low,
                "ci_high": high,
                "confidence_level": confidence_level,
                "n": n,
                "n_excluded": int((~ok).sum()),
            }
        )
    return pd.DataFrame(rows)


def frequency_regression(
    outcome: Sequence[float], log_freq: Sequence[float], *, confidence_level: float = 0.95
) -> dict[str, float | int | str]:
    """OLS of a per-class outcome (e.g. forgotten_at, change_at_max) on log frequency.

    Returns slope, its interval and p-value, intercept, R² and n; NaN pairs are excluded
    (``n_excluded``), as in ``correlate``.
    """
    y = np.asarray(outcome, dtype=float)
    x = np.asarray(log_freq, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    out: dict[str, float | int | str] = {
        "method": "OLS outcome ~ log_frequency",
        "slope": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "pvalue": np.nan,
        "intercept": np.nan,
        "r_squared": np.nan,
        "confidence_level": confidence_level,
        "n": int(ok.sum()),
        "n_excluded": int((~ok).sum()),
    }
    if ok.sum() < 3 or np.ptp(x[ok]) == 0:
        return out
    res = sm.OLS(y[ok], sm.add_constant(x[ok])).fit()
    low, high = res.conf_int(alpha=1 - confidence_level)[1]
    out.update(
        slope=float(res.params[1]),
        ci_low=float(low),
        ci_high=float(high),
        pvalue=float(res.pvalues[1]),
        intercept=float(res.params[0]),
        r_squared=float(res.rsquared),
    )
    return out


# ---------------------------------------------------------------------------------------------
# co-occurrence


def cooccurrence(Y: np.ndarray) -> np.ndarray:
    """C = YᵀY: C[a, b] = images holding both a and b; the diagonal holds |a|."""
    Y = np.asarray(Y, dtype=np.int64)
    return Y.T @ Y


def iou_textbook(Y: np.ndarray) -> np.ndarray:
    """IoU(a, b) = |a ∩ b| / |a ∪ b| = C[a,b] / (C[a,a] + C[b,b] − C[a,b]); 0/0 gives NaN."""
    c = cooccurrence(Y).astype(float)
    d = np.diag(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        return c / (d[:, None] + d[None, :] - c)


def label_load(Y: np.ndarray) -> np.ndarray:
    """Column sums of C: for class a, the total number of labels on the images holding a.

    This is what study B's code calls a class's frequency in its FCD analysis.
    """
    return cooccurrence(Y).sum(axis=0).astype(float)


def iou_study_b(Y: np.ndarray) -> np.ndarray:
    """Study B's "IoU": C[a,b] / (s_a + s_b − C[a,b]) with s = column sums of C (``label_load``).

    Reproduces VITA-Group/PruneCXR ``main_analysis.py``; s_a counts every label on every image
    holding a, not |a|, so it is smaller than the textbook IoU whenever images carry several
    labels. Only off-diagonal entries were used by study B.
    """
    c = cooccurrence(Y).astype(float)
    s = c.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return c / (s[:, None] + s[None, :] - c)


# ---------------------------------------------------------------------------------------------
# forgettability curve dissimilarity and Mantel tests


def fcd(curves: np.ndarray) -> np.ndarray:
    """Forgettability curve dissimilarity: Euclidean distance between class curves, (C, C)."""
    curves = np.asarray(curves, dtype=float)
    return squareform(pdist(curves.T, metric="euclidean"))


def mantel(
    a: np.ndarray,
    b: np.ndarray,
    *,
    method: str = "pearson",
    n_permutations: int = 9999,
    alternative: str = "two-sided",
    rng: np.random.Generator | int | None = None,
) -> dict[str, float | int | str]:
    """Mantel test: correlation of the upper triangles of two symmetric (C, C) class-pair matrices.

    Class pairs share classes, so they are not independent observations: the null distribution
    permutes the class labels of ``b`` (rows and columns jointly) via
    ``scipy.stats.permutation_test(permutation_type="pairings")``. With
    ``n_permutations >= C!`` all permutations are enumerated (exact p = count / C!); otherwise
    p = (count + 1) / (n_permutations + 1). Two-sided p is twice the smaller one-sided p.
    Classes with a NaN off-diagonal entry in either matrix are dropped (``n_dropped``).
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"need two square matrices of one shape; got {a.shape} and {b.shape}")
    off = ~np.eye(a.shape[0], dtype=bool)
    bad = (~np.isfinite(a) & off).any(axis=0) | (~np.isfinite(b) & off).any(axis=0)
    keep = np.flatnonzero(~bad)
    a, b = a[np.ix_(keep, keep)], b[np.ix_(keep, keep)]
    n = len(keep)
    iu = np.triu_indices(n, k=1)
    result: dict[str, float | int | str] = {
        "method": f"mantel-{method}",
        "statistic": np.nan,
        "pvalue": np.nan,
        "n_classes": n,
        "n_pairs": len(iu[0]),
        "n_dropped": int(bad.sum()),
        "n_permutations": n_permutations,
        "alternative": alternative,
        "exact": n_permutations >= math.factorial(n),
    }
    if n < 3:
        return result
    av, bmat = a[iu], b
    if method == "spearman":  # ranks of the pair values do not change under class permutation
        av = stats.rankdata(av)
        bmat = np.zeros_like(b)
        bmat[iu] = stats.rankdata(b[iu])
        bmat = bmat + bmat.T

    def statistic(perm: np.ndarray, axis: int = -1) -> np.ndarray:
        perm = np.asarray(perm)
        pb = bmat[perm[..., :, None], perm[..., None, :]][..., iu[0], iu[1]]
        return pearson_along(np.broadcast_to(av, pb.shape), pb, axis=-1)

    if np.ptp(av) == 0 or np.ptp(bmat[iu]) == 0:
        return result
    res = stats.permutation_test(
        (np.arange(n),),
        statistic,
        permutation_type="pairings",
        vectorized=True,
        n_resamples=n_permutations,
        alternative=alternative,
        batch=500,
        rng=np.random.default_rng(rng),
    )
    result["statistic"] = float(res.statistic)
    result["pvalue"] = float(res.pvalue)
    result["n_permutations"] = len(res.null_distribution)
    return result


def pair_table(curves: np.ndarray, Y: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """One row per class pair (a < b): fcd, |Δ log frequency| (from ``Y``), textbook IoU, IoU^(1/4).

    For figures; tests on these pairs must use ``mantel`` (pairs share classes).
    """
    d = fcd(curves)
    lf = log_frequency(Y)
    iou = iou_textbook(Y)
    ia, ib = np.triu_indices(len(classes), k=1)
    names = np.asarray(classes)
    return pd.DataFrame(
        {
            "class_a": names[ia],
            "class_b": names[ib],
            "fcd": d[ia, ib],
            "abs_log_freq_diff": np.abs(lf[ia] - lf[ib]),
            "iou": iou[ia, ib],
            "iou_quarter": iou[ia, ib] ** 0.25,
        }
    )


def fcd_relations(
    curves: np.ndarray,
    Y: np.ndarray,
    *,
    iou: str = "textbook",
    n_permutations: int = 9999,
    rng: np.random.Generator | int | None = None,
) -> pd.DataFrame:
    """Mantel tests of FCD against |Δ log frequency| and against IoU^(1/4), Pearson and Spearman.

    ``Y`` is the label matrix the frequencies and IoU come from (training labels by default in
    the paper's text; study B's figure used the test set). ``iou="study_b"`` reproduces their
    IoU. p-values are BH-adjusted over the four tests.
    """
    if iou not in ("textbook", "study_b"):
        raise ValueError(f"iou must be 'textbook' or 'study_b', got {iou!r}")
    d = fcd(curves)
    lf = log_frequency(Y)
    covariates = {
        "abs_log_freq_diff": np.abs(lf[:, None] - lf[None, :]),
        "iou_quarter": (iou_textbook(Y) if iou == "textbook" else iou_study_b(Y)) ** 0.25,
    }
    gen = np.random.default_rng(rng)
    rows = [
        {"covariate": name, **mantel(d, cov, method=method, n_permutations=n_permutations, rng=gen)}
        for name, cov in covariates.items()
        for method in ("pearson", "spearman")
    ]
    return adjust(pd.DataFrame(rows), "fdr_bh")
