"""analysis.ci against scipy.stats (t, bootstrap) and scikit-learn, plus a coverage check."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from analysis import ci
from analysis import metrics as M


def _data(seed=0, n=80, c=3):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype(np.uint8)
    y[:2] = [[1] * c, [0] * c]
    p = np.round(np.clip(0.35 * y + 0.65 * rng.random((n, c)), 0, 1), 2).astype(np.float32)
    return y, p


def test_t_interval_matches_scipy():
    x = np.array([0.81, 0.79, 0.84, 0.80, np.nan, 0.83])
    est = ci.t_interval(x, 0.9)
    ok = x[~np.isnan(x)]
    # reference: scipy.stats.t.interval with the sample mean and standard error
    low, high = stats.t.interval(0.9, df=4, loc=ok.mean(), scale=stats.sem(ok))
    assert est.n == 5 and est.statistic == pytest.approx(ok.mean())
    assert (est.confidence_interval.low, est.confidence_interval.high) == pytest.approx((low, high))
    assert np.isnan(ci.t_interval([0.5]).confidence_interval.low)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_interval_matches_scipy(method):
    x = np.random.default_rng(1).normal(size=12)
    est = ci.bootstrap_interval(x, np.median, n_resamples=999, method=method, rng=3)
    ref = stats.bootstrap((x,), np.median, n_resamples=999, method=method, rng=3)
    assert est.confidence_interval.low == pytest.approx(ref.confidence_interval.low)
    assert est.confidence_interval.high == pytest.approx(ref.confidence_interval.high)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_image_bootstrap_equals_scipy_bootstrap_with_sklearn_metric(method):
    # reference: scipy.stats.bootstrap over image indices (same rng seed → same resamples),
    # statistic computed with scikit-learn's average_precision_score per resample;
    # BCa uses scipy's full delete-one jackknife (80 images ≤ jackknife_blocks)
    y, p = _data()

    def sk_macro_ap(idx, axis=-1):
        idx = np.atleast_2d(idx)
        return np.array(
            [np.mean([average_precision_score(y[r, c], p[r, c]) for c in range(3)]) for r in idx]
        )

    est = ci.image_bootstrap(
        y, p, M.macro_average_precision, n_resamples=200, method=method, rng=11
    )
    ref = stats.bootstrap(
        (np.arange(80),), sk_macro_ap, n_resamples=200, method=method, rng=11, vectorized=True
    )
    assert est.statistic == pytest.approx(sk_macro_ap(np.arange(80))[0], abs=1e-12)
    assert est.confidence_interval.low == pytest.approx(
        np.ravel(ref.confidence_interval.low)[0], abs=1e-10
    )
    assert est.confidence_interval.high == pytest.approx(
        np.ravel(ref.confidence_interval.high)[0], abs=1e-10
    )
    assert est.standard_error == pytest.approx(np.ravel(ref.standard_error)[0], abs=1e-10)
    assert est.n == 80


def test_resample_and_jackknife_distributions_do_not_depend_on_the_chunk_size(monkeypatch):
    # reference: all resamples drawn at once with rng.integers(0, N, (B, N)) (scipy's
    # draws) and delete-one rows, sklearn AUROC per row set; the suite passes 7 per call
    y, p = _data(n=70, c=2)
    monkeypatch.setattr(ci, "_CHUNK_ELEMENTS", 7 * 70)
    dist = ci.resample_distribution(y, p, M.auroc, n_resamples=30, rng=3)
    draws = np.random.default_rng(3).integers(0, 70, (30, 70))
    ref = [[roc_auc_score(y[d, c], p[d, c]) for c in range(2)] for d in draws]
    np.testing.assert_allclose(dist, ref, rtol=0, atol=1e-12)
    jack = ci.jackknife_distribution(y, p, M.auroc)
    rows = [np.delete(np.arange(70), i) for i in range(70)]
    ref = [[roc_auc_score(y[r, c], p[r, c]) for c in range(2)] for r in rows]
    np.testing.assert_allclose(jack, ref, rtol=0, atol=1e-12)


def test_image_bootstrap_per_class_shapes_and_reproducible():
    y, p = _data()
    a = ci.image_bootstrap(y, p, M.auroc, n_resamples=100, rng=1)
    b = ci.image_bootstrap(y, p, M.auroc, n_resamples=100, rng=np.random.default_rng(1))
    assert a.statistic.shape == (3,)
    np.testing.assert_array_equal(a.confidence_interval.low, b.confidence_interval.low)
    assert np.all(a.confidence_interval.low <= a.statistic)
    assert np.all(a.statistic <= a.confidence_interval.high)


def test_cluster_bootstrap_resamples_whole_patients():
    # reference: explicit patient resampling (draw patient ids with the same rng calls,
    # take all their images) and scikit-learn's roc_auc_score on the concatenated rows
    y, p = _data(n=60, c=1)
    patients = np.repeat(np.arange(20), 3)
    est = ci.image_bootstrap(y, p, M.auroc, n_resamples=50, rng=5, clusters=patients)
    draws = np.random.default_rng(5).integers(0, 20, (50, 20))
    ref = []
    for d in draws:
        rows = np.concatenate([np.flatnonzero(patients == k) for k in d])
        ref.append(
            roc_auc_score(y[rows, 0], p[rows, 0]) if 0 < y[rows, 0].sum() < rows.size else np.nan
        )
    want = np.nanquantile(ref, [0.025, 0.975])
    assert est.n == 20
    np.testing.assert_allclose(
        [est.confidence_interval.low[0], est.confidence_interval.high[0]], want, atol=1e-12
    )


def test_grouped_jackknife_is_close_to_full_jackknife():
    y, p = _data(n=200, c=2)
    full = ci.image_bootstrap(y, p, M.macro_auroc, n_resamples=300, method="bca", rng=2)
    grouped = ci.image_bootstrap(
        y, p, M.macro_auroc, n_resamples=300, method="bca", rng=2, jackknife_blocks=50
    )
    # same resamples, only the acceleration differs: the bounds move by a small fraction
    width = full.confidence_interval.high - full.confidence_interval.low
    assert abs(full.confidence_interval.low - grouped.confidence_interval.low) < 0.1 * width
    assert abs(full.confidence_interval.high - grouped.confidence_interval.high) < 0.1 * width


def test_hierarchical_bootstrap_matches_explicit_two_stage_resampling():
    # reference: explicit loops — resample images, then seeds, average sklearn AUROC
    y, _ = _data(n=50, c=1)
    rng = np.random.default_rng(4)
    p_runs = np.clip(0.3 * y[None] + rng.random((4, 50, 1)), 0, 1)
    est = ci.hierarchical_bootstrap(y, p_runs, M.auroc, n_resamples=40, rng=9)
    gen = np.random.default_rng(9)
    images = gen.integers(0, 50, (40, 50))
    seeds = gen.integers(0, 4, (40, 4))
    dist = [
        np.mean([roc_auc_score(y[img, 0], p_runs[s][img, 0]) for s in sd])
        for img, sd in zip(images, seeds, strict=True)
    ]
    np.testing.assert_allclose(
        [est.confidence_interval.low[0], est.confidence_interval.high[0]],
        np.quantile(dist, [0.025, 0.975]),
        atol=1e-12,
    )
    want = np.mean([roc_auc_score(y[:, 0], r[:, 0]) for r in p_runs])
    assert est.statistic[0] == pytest.approx(want) and est.n == 4


@pytest.mark.slow
def test_coverage_t_interval_and_image_bootstrap():
    # nominal 95 % intervals should cover the known truth 93–97 % of the time
    rng = np.random.default_rng(2024)
    # t interval over 5 "seeds" drawn from N(0.8, 0.02²)
    cover_t = np.mean(
        [
            (lambda e: e.confidence_interval.low <= 0.8 <= e.confidence_interval.high)(
                ci.t_interval(rng.normal(0.8, 0.02, 5))
            )
            for _ in range(2000)
        ]
    )
    # image bootstrap of AUROC, binormal scores: true AUROC = Φ(μ / √2)
    mu, n, hits = 1.0, 400, []
    truth = stats.norm.cdf(mu / np.sqrt(2))
    for _ in range(1000):
        y = (rng.random((n, 1)) < 0.4).astype(np.uint8)
        s = (rng.normal(size=(n, 1)) + mu * y).astype(np.float32)
        e = ci.image_bootstrap(y, s, M.auroc, n_resamples=400, rng=rng)
        hits.append(e.confidence_interval.low[0] <= truth <= e.confidence_interval.high[0])
    cover_boot = np.mean(hits)
    assert 0.93 <= cover_t <= 0.97, cover_t
    assert 0.93 <= cover_boot <= 0.97, cover_boot
