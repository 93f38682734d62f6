"""Confidence intervals: across seeds / folds, over test images (and patients), and both.

- ``t_interval`` / ``bootstrap_interval``: one value per seed (or fold) → interval for the
  mean over seeds; the question "how much does the result move if I retrain?".
- ``image_bootstrap``: one model, its test predictions → interval for a metric over test
  images (or patients with ``clusters=``); the question "how much does the result move
  with another test set of this size?".
- ``hierarchical_bootstrap``: several seeds on one test set → interval for the mean over
  seeds that counts both sources of variation.

Resamples are drawn as index arrays (``rng.integers``, as ``scipy.stats.bootstrap`` does)
and turned into multinomial counts used as sample weights, passed to the metric in chunks
of (b, 1, ..., N) weights (b ≈ 2M / N, the same for every leading run axis of ``p``).
A metric is any callable ``metric(y, p, sample_weight=None)`` that broadcasts such
weights against the leading axes of ``p`` without materialising (b, *p.shape) arrays (all
metrics in ``analysis.metrics`` do; their AUROC and AP sort the scores once per bootstrap,
not once per resample). Every stochastic function takes ``rng=`` (a ``np.random.Generator``
or a seed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats
from scipy.special import ndtr, ndtri

from analysis.metrics import check_inputs
from analysis.results import ConfidenceInterval, Estimate, StatsInputError

Metric = Callable[..., np.ndarray]
METHODS = ("percentile", "bca")
#: image weights (resamples × images) passed per metric call: 2M int64, 16 MB.
_CHUNK_ELEMENTS = 2_000_000


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A Generator from a Generator or a seed (None gives fresh OS entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise StatsInputError(f"method {method!r} is not one of {METHODS}")


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    return values[~np.isnan(values)]


def t_interval(values: np.ndarray, confidence: float = 0.95) -> Estimate:
    """Mean over seeds (or folds) with the Student-t interval mean ± t·s/√n (NaNs dropped).

    Assumes the values are independent draws (separate seeds on a fixed test set); for
    k-fold values use ``analysis.paired.corrected_resampled_t`` instead.
    """
    x = _finite(values)
    n = x.size
    mean = float(x.mean()) if n else np.nan
    if n < 2:
        return Estimate(mean, ConfidenceInterval(np.nan, np.nan), confidence, n, "t interval")
    se = float(x.std(ddof=1) / np.sqrt(n))
    if se == 0.0:
        low, high = mean, mean
    else:
        low, high = stats.t.interval(confidence, df=n - 1, loc=mean, scale=se)
    return Estimate(
        mean, ConfidenceInterval(float(low), float(high)), confidence, n, "t interval", se
    )


def bootstrap_interval(
    values: np.ndarray,
    statistic: Callable[..., float] = np.mean,
    *,
    n_resamples: int = 9999,
    confidence: float = 0.95,
    method: str = "percentile",
    rng: np.random.Generator | int | None = None,
) -> Estimate:
    """Bootstrap interval of ``statistic`` over per-seed values (``scipy.stats.bootstrap``).

    With few seeds (< ~10) bootstrap intervals are too narrow; prefer ``t_interval``.
    ``statistic`` must accept ``axis=`` (as np.mean / np.median do).
    """
    _check_method(method)
    x = _finite(values)
    point = float(statistic(x, axis=-1)) if x.size else np.nan
    name = f"bootstrap {method} ({n_resamples} resamples)"
    if x.size < 2 or np.all(x == x[0]):
        ci = ConfidenceInterval(point, point) if x.size else ConfidenceInterval(np.nan, np.nan)
        return Estimate(point, ci, confidence, x.size, name, 0.0 if x.size else np.nan)
    res = stats.bootstrap(
        (x,),
        statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="BCa" if method == "bca" else "percentile",
        rng=as_rng(rng),
    )
    ci = ConfidenceInterval(float(res.confidence_interval.low), float(res.confidence_interval.high))
    return Estimate(point, ci, confidence, x.size, name, float(res.standard_error))


def _units(n_images: int, clusters: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Resampling unit of each image (its patient for a cluster bootstrap) and unit count."""
    if clusters is None:
        return np.arange(n_images), n_images
    clusters = np.asarray(clusters)
    if clusters.shape != (n_images,):
        raise StatsInputError(
            f"clusters: expected one id per image, shape ({n_images},), got {clusters.shape}"
        )
    _, unit = np.unique(clusters, return_inverse=True)
    return unit.ravel(), int(unit.max()) + 1


def _chunk(n_images: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, n_images))


def _weights_from_draws(draws: np.ndarray, unit: np.ndarray | None, n_units: int) -> np.ndarray:
    """Image weights (b, N) = how often each image's unit (``None``: itself) was drawn."""
    b = draws.shape[0]
    flat = (draws + np.arange(b)[:, None] * n_units).ravel()
    counts = np.bincount(flat, minlength=b * n_units).reshape(b, n_units)
    return counts if unit is None else counts[:, unit]


def resample_distribution(
    y: np.ndarray,
    p: np.ndarray,
    metric: Metric,
    *,
    n_resamples: int = 1000,
    rng: np.random.Generator | int | None = None,
    clusters: np.ndarray | None = None,
) -> np.ndarray:
    """Metric on ``n_resamples`` bootstrap resamples of images (or clusters): (B, *metric shape).

    The resampled units are drawn with ``rng.integers(0, n_units, (B, n_units))`` (the draws
    of ``scipy.stats.bootstrap``); the same resample is applied to every leading run axis of
    ``p`` (seeds, or the two models of a paired comparison).
    """
    y, p = check_inputs(y, p)
    gen = as_rng(rng)
    unit, n_units = _units(y.shape[0], clusters)
    lead_ones = (1,) * (p.ndim - 2)
    out = []
    step = _chunk(y.shape[0])
    for start in range(0, n_resamples, step):
        b = min(step, n_resamples - start)
        draws = gen.integers(0, n_units, (b, n_units))
        w = _weights_from_draws(draws, None if clusters is None else unit, n_units)
        out.append(np.asarray(metric(y, p, sample_weight=w.reshape(b, *lead_ones, -1))))
    return np.concatenate(out, axis=0)


def jackknife_distribution(
    y: np.ndarray,
    p: np.ndarray,
    metric: Metric,
    *,
    clusters: np.ndarray | None = None,
    max_blocks: int = 200,
    rng: np.random.Generator | int | None = None,
) -> np.ndarray:
    """Delete-one-unit jackknife of the metric (G, *metric shape), units = images or clusters.

    With more than ``max_blocks`` units, the units are split at random into ``max_blocks``
    groups and one group is left out at a time (delete-a-group jackknife): the acceleration
    it estimates is consistent, at far lower cost than N metric evaluations.
    """
    y, p = check_inputs(y, p)
    unit, n_units = _units(y.shape[0], clusters)
    if n_units > max_blocks:
        block_of_unit = as_rng(rng).permutation(n_units) % max_blocks
        unit = block_of_unit[unit]
        n_units = max_blocks
    lead_ones = (1,) * (p.ndim - 2)
    out = []
    step = _chunk(y.shape[0])
    for start in range(0, n_units, step):
        left_out = np.arange(start, min(start + step, n_units))
        w = (unit[None, :] != left_out[:, None]).astype(np.int64)
        out.append(np.asarray(metric(y, p, sample_weight=w.reshape(len(w), *lead_ones, -1))))
    return np.concatenate(out, axis=0)


def _quantiles(dist: np.ndarray, q_low: np.ndarray, q_high: np.ndarray):
    """Per-element linear-interpolation quantiles of ``dist`` (B, ...) ignoring NaN resamples."""
    flat = dist.reshape(dist.shape[0], -1)
    ql = np.broadcast_to(q_low, dist.shape[1:]).ravel()
    qh = np.broadcast_to(q_high, dist.shape[1:]).ravel()
    low = np.full(flat.shape[1], np.nan)
    high = np.full(flat.shape[1], np.nan)
    for j in range(flat.shape[1]):
        col = flat[:, j][~np.isnan(flat[:, j])]
        if col.size and np.isfinite(ql[j]) and np.isfinite(qh[j]):
            low[j], high[j] = np.quantile(col, [ql[j], qh[j]])
    shape = dist.shape[1:]
    return (low.reshape(shape), high.reshape(shape)) if shape else (low[0], high[0])


def _bca_levels(theta_hat, dist, jack, alpha):
    """BCa quantile levels (Efron & Tibshirani 1993, eq. 14.10), as scipy.stats.bootstrap."""
    ok = ~np.isnan(dist)
    b = ok.sum(axis=0)
    below = ((dist < theta_hat) & ok).sum(axis=0) + ((dist <= theta_hat) & ok).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z0 = ndtri(below / (2.0 * b))
        d = np.nanmean(jack, axis=0) - jack
        a = np.nansum(d**3, axis=0) / (6.0 * np.nansum(d**2, axis=0) ** 1.5)
        z = ndtri(alpha)
        lo = ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
        hi = ndtr(z0 + (z0 - z) / (1 - a * (z0 - z)))
    return lo, hi


def interval_from_distribution(
    theta_hat: np.ndarray,
    dist: np.ndarray,
    *,
    confidence: float = 0.95,
    method: str = "percentile",
    jackknife: np.ndarray | None = None,
) -> ConfidenceInterval:
    """Percentile or BCa interval from a bootstrap distribution (B, ...) (and a jackknife)."""
    _check_method(method)
    alpha = (1.0 - confidence) / 2.0
    if method == "bca":
        if jackknife is None:
            raise StatsInputError("BCa needs the jackknife distribution of the statistic")
        q_low, q_high = _bca_levels(np.asarray(theta_hat), dist, jackknife, alpha)
    else:
        q_low, q_high = np.asarray(alpha), np.asarray(1.0 - alpha)
    low, high = _quantiles(dist, q_low, q_high)
    return ConfidenceInterval(low, high)


def _scalar_or_array(x: np.ndarray):
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


def image_bootstrap(
    y: np.ndarray,
    p: np.ndarray,
    metric: Metric,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    method: str = "percentile",
    rng: np.random.Generator | int | None = None,
    clusters: np.ndarray | None = None,
    jackknife_blocks: int = 200,
) -> Estimate:
    """Bootstrap interval of ``metric(y, p)`` for one model over its test images.

    ``clusters`` (one patient id per image) resamples patients with all their images:
    use it whenever a patient has several test images. ``method="bca"`` adds a jackknife
    over units (grouped into ``jackknife_blocks`` blocks when there are more units).
    Resamples in which the metric is undefined (e.g. no positive drawn) are dropped.
    ``n`` is the number of resampling units (images or patients).
    """
    _check_method(method)
    y, p = check_inputs(y, p)
    gen = as_rng(rng)
    theta_hat = np.asarray(metric(y, p), dtype=np.float64)
    dist = resample_distribution(y, p, metric, n_resamples=n_resamples, rng=gen, clusters=clusters)
    jack = None
    if method == "bca":
        jack = jackknife_distribution(
            y, p, metric, clusters=clusters, max_blocks=jackknife_blocks, rng=gen
        )
    ci = interval_from_distribution(
        theta_hat, dist, confidence=confidence, method=method, jackknife=jack
    )
    n_units = _units(y.shape[0], clusters)[1]
    unit = "image" if clusters is None else "cluster"
    with np.errstate(invalid="ignore"):
        se = np.nanstd(dist, axis=0, ddof=1)
    return Estimate(
        _scalar_or_array(theta_hat),
        ConfidenceInterval(_scalar_or_array(ci.low), _scalar_or_array(ci.high)),
        confidence,
        n_units,
        f"{unit} bootstrap {method} ({n_resamples} resamples)",
        _scalar_or_array(se),
    )


def hierarchical_bootstrap(
    y: np.ndarray,
    p_runs: np.ndarray,
    metric: Metric,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = None,
    clusters: np.ndarray | None = None,
) -> Estimate:
    """Percentile interval for the mean over seeds of ``metric``, resampling seeds and images.

    ``p_runs`` is (S, N, C), one row per seed on the same test images. Each draw resamples
    the images (or patients) once, applies that resample to every seed, resamples the S
    seeds with replacement and averages the metric over the drawn seeds. It counts the
    training (seed) and the test-set (image) variation; with crossed seeds × images it is
    somewhat conservative. ``n`` is the number of seeds.
    """
    y, p_runs = check_inputs(y, p_runs)
    if p_runs.ndim != 3:
        raise StatsInputError(f"p_runs: expected shape (S, N, C), got {p_runs.shape}")
    gen = as_rng(rng)
    n_seeds = p_runs.shape[0]
    per_seed = np.asarray(metric(y, p_runs), dtype=np.float64)  # (S, ...)
    theta_hat = np.nanmean(per_seed, axis=0)
    by_seed = resample_distribution(
        y, p_runs, metric, n_resamples=n_resamples, rng=gen, clusters=clusters
    )  # (B, S, ...)
    draws = gen.integers(0, n_seeds, (n_resamples, n_seeds))
    counts = np.stack([np.bincount(d, minlength=n_seeds) for d in draws]).astype(np.float64)
    counts = counts.reshape(counts.shape + (1,) * (by_seed.ndim - 2))
    ok = ~np.isnan(by_seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = (np.where(ok, by_seed, 0.0) * counts).sum(axis=1) / (ok * counts).sum(axis=1)
        se = np.nanstd(dist, axis=0, ddof=1)
    ci = interval_from_distribution(theta_hat, dist, confidence=confidence)
    return Estimate(
        _scalar_or_array(theta_hat),
        ConfidenceInterval(_scalar_or_array(ci.low), _scalar_or_array(ci.high)),
        confidence,
        n_seeds,
        f"hierarchical bootstrap percentile (seeds × "
        f"{'images' if clusters is None else 'clusters'}, {n_resamples} resamples)",
        _scalar_or_array(se),
    )
