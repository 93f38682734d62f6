"""Study-level analysis at study B's size vs a per-table, per-class scikit-learn loop.

Structured random predictions (``make_predictions``): seeds × sparsities × images × classes
float32 probabilities that depend on the labels, degrade with sparsity (rare classes
faster) and share a per-image difficulty across seeds; label prevalence is long-tailed.
The suite's analysis is timed part by part: per-class AP and AUROC of every table
(``analysis.metrics.ranking_metrics``), forgettability (``analysis.forgetting``),
correlations with class frequency and FCD Mantel tests, Spearman-rule PIEs at sparsity 0.90
(``analysis.pie``), and an image bootstrap (1,000 resamples) of macro AP per sparsity level
(``analysis.ci.image_bootstrap``, seed 0's run). The reference is study B's approach:
``roc_auc_score`` / ``average_precision_score`` per table and class, on the same arrays;
by default on a random subset of tables, extrapolated linearly (``--full`` runs all).

This module is the one place under bench/ that imports ``analysis`` (lazily, in functions).
Run: ``python -m bench.perf.analysis_scale --help``.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.perf.common import (
    RESULTS_DIR,
    hardware,
    hardware_line,
    log,
    markdown_table,
    median,
    write_result,
)

TARGET_SPEEDUP = 10.0
TARGET_SECONDS = 120.0
TARGET_PEAK_GB = 4.0
TARGET_TOLERANCE = 1e-9
PIE_LEVEL = 0.90


def make_predictions(
    n_seeds: int = 30,
    n_levels: int = 20,
    n_images: int = 20_000,
    n_classes: int = 20,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (N, C) uint8, probabilities (S, L, N, C) float32 and sparsity levels (L,).

    Prevalence of class c is 0.3·(c+1)^-1.5 (long tail, ~0.3 % for the rarest of 20);
    logit = class bias + strength·(2y − 1) + image difficulty + seed noise + table noise,
    with strength falling as sparsity² and faster for rarer classes. Levels are
    0, 0.05, …, 0.95 for 20 levels (0 = the dense model).
    """
    rng = np.random.default_rng(seed)
    c = np.arange(n_classes)
    prevalence = 0.3 * (c + 1.0) ** -1.5
    y = (rng.random((n_images, n_classes)) < prevalence).astype(np.uint8)
    levels = np.round(np.linspace(0.0, 0.95, n_levels), 4) if n_levels > 1 else np.zeros(1)
    rarity = c / max(1, n_classes - 1)
    sign = (2.0 * y - 1.0).astype(np.float32)
    difficulty = rng.standard_normal((n_images, n_classes), dtype=np.float32) * np.float32(0.7)
    bias = np.float32(-1.0) - 2 * rarity.astype(np.float32)
    p = np.empty((n_seeds, n_levels, n_images, n_classes), dtype=np.float32)
    for s in range(n_seeds):
        seed_part = (
            bias
            + difficulty
            + rng.standard_normal((n_images, n_classes), np.float32) * np.float32(0.6)
        )
        for k, level in enumerate(levels):
            strength = (1.6 * (1 - level**2 * (0.3 + 0.6 * rarity))).astype(np.float32)
            logit = seed_part + strength * sign
            logit += rng.standard_normal((n_images, n_classes), np.float32) * np.float32(
                0.3 + level
            )
            np.negative(logit, out=logit)
            np.exp(logit, out=logit)
            logit += 1
            np.reciprocal(logit, out=p[s, k])
    return y, p, levels


def sklearn_loop(
    y: np.ndarray, p: np.ndarray, tables: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Study B's approach: roc_auc_score and average_precision_score per table and class.

    Returns (auroc, ap), each (len(tables), C); NaN for a class with one label value.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    n_classes = y.shape[1]
    auc = np.full((len(tables), n_classes), np.nan)
    ap = np.full((len(tables), n_classes), np.nan)
    for t, (s, k) in enumerate(tables):
        for c in range(n_classes):
            yc = y[:, c]
            if 0 < yc.sum() < len(yc):
                auc[t, c] = roc_auc_score(yc, p[s, k, :, c])
                ap[t, c] = average_precision_score(yc, p[s, k, :, c])
    return auc, ap


def suite_metrics(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AUROC and AP of every table, (S, L, C) each, vectorised."""
    from analysis.metrics import ranking_metrics

    return ranking_metrics(y, p)


def suite_rest(
    y: np.ndarray,
    p: np.ndarray,
    levels: np.ndarray,
    ap: np.ndarray,
    *,
    n_boot: int,
    boot_levels: int | None = None,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Everything after the metrics; returns (seconds per part, small result summary).

    ``boot_levels`` bootstraps only that many levels (evenly spaced) and scales the time to
    all levels (``bootstrap``; the measured time is ``bootstrap_measured``).
    """
    from analysis import forgetting, pie
    from analysis.ci import image_bootstrap
    from analysis.metrics import macro_average_precision

    rng = np.random.default_rng(seed)
    classes = [f"class{c:02d}" for c in range(y.shape[1])]
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    delta = forgetting.relative_change(ap)
    curves = forgetting.forgettability_curves(delta)
    forgetting.curves_frame(delta, levels, classes, n_resamples=2000, rng=rng)
    summary = forgetting.forgetting_summary(curves, levels, classes)
    forgetting.class_impact(ap, levels, classes)
    seconds["forgetting"] = time.perf_counter() - start

    start = time.perf_counter()
    log_freq = forgetting.log_frequency(y)
    for outcome in ("forgotten_at", "change_at_max"):
        forgetting.correlate(log_freq, summary[outcome], n_resamples=2000, rng=rng)
    forgetting.fcd_relations(curves, y, n_permutations=999, rng=rng)
    seconds["correlations"] = time.perf_counter() - start

    start = time.perf_counter()
    k90 = int(np.argmin(np.abs(levels - PIE_LEVEL)))
    pies = pie.pies_spearman(p[:, 0], p[:, k90], q=0.05)
    pie.prevalence_ratio(y, pies.is_pie, classes)
    pie.findings_count_ratio(y, pies.is_pie)
    seconds["pies"] = time.perf_counter() - start

    n_levels = len(levels)
    chosen = np.unique(np.linspace(0, n_levels - 1, min(boot_levels or n_levels, n_levels)).round())
    start = time.perf_counter()
    intervals = [
        image_bootstrap(y, p[0, int(k)], macro_average_precision, n_resamples=n_boot, rng=rng)
        for k in chosen
    ]
    seconds["bootstrap_measured"] = time.perf_counter() - start
    seconds["bootstrap"] = seconds["bootstrap_measured"] * n_levels / len(chosen)
    info = {
        "n_pies": pies.n_pies,
        "pie_level": float(levels[k90]),
        "forgotten_classes": int(summary["forgotten"].sum()),
        "bootstrap_levels": [float(levels[int(k)]) for k in chosen],
        "macro_ap_by_level_seed0": [e.to_dict() for e in intervals],
    }
    return seconds, info


def _peak_gb() -> float:
    """The process's peak resident memory so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(
    *,
    n_seeds: int = 30,
    n_levels: int = 20,
    n_images: int = 20_000,
    n_classes: int = 20,
    loop_tables: int | None = 30,
    n_boot: int = 1000,
    boot_levels: int | None = 2,
    seed: int = 0,
    out_dir: Path | None = RESULTS_DIR,
) -> dict[str, Any]:
    """Run the benchmark; ``loop_tables=None`` times the sklearn loop on every table and
    ``boot_levels=None`` bootstraps every level (else both are timed on a subset and scaled)."""
    import sklearn.metrics  # noqa: F401

    import analysis.ci  # noqa: F401  (imports are not part of the timed analysis)
    import analysis.forgetting  # noqa: F401
    import analysis.pie  # noqa: F401

    log(f"generating {n_seeds}×{n_levels}×{n_images}×{n_classes} float32 predictions")
    y, p, levels = make_predictions(n_seeds, n_levels, n_images, n_classes, seed)
    peak_after_data = _peak_gb()
    all_tables = [(s, k) for s in range(n_seeds) for k in range(n_levels)]
    n_loop = len(all_tables) if loop_tables is None else min(loop_tables, len(all_tables))
    pick = np.sort(np.random.default_rng(seed).choice(len(all_tables), n_loop, replace=False))
    tables = [all_tables[i] for i in pick]

    # A / B / A: the vectorised metrics around the loop, so load changes hit both
    metric_seconds = []
    log("suite: per-class AUROC and AP of every table")
    start = time.perf_counter()
    auc, ap = suite_metrics(y, p)
    metric_seconds.append(time.perf_counter() - start)
    log(f"  {metric_seconds[-1]:.1f} s; sklearn loop on {n_loop} of {len(all_tables)} tables")
    start = time.perf_counter()
    ref_auc, ref_ap = sklearn_loop(y, p, tables)
    loop_seconds = time.perf_counter() - start
    log(f"  loop {loop_seconds:.1f} s; suite metrics again")
    start = time.perf_counter()
    suite_metrics(y, p)
    metric_seconds.append(time.perf_counter() - start)
    loop_full = loop_seconds * len(all_tables) / n_loop

    idx = tuple(np.array(tables).T)
    diff = max(
        float(np.nanmax(np.abs(auc[idx] - ref_auc))), float(np.nanmax(np.abs(ap[idx] - ref_ap)))
    )
    same_nan = bool(np.array_equal(np.isnan(auc[idx]), np.isnan(ref_auc)))

    log("suite: forgettability, correlations, PIEs, bootstrap")
    seconds, info = suite_rest(y, p, levels, ap, n_boot=n_boot, boot_levels=boot_levels, seed=seed)
    metrics_s = median(metric_seconds)
    total = metrics_s + sum(v for k, v in seconds.items() if k != "bootstrap_measured")
    peak = _peak_gb()
    result = {
        "benchmark": "analysis_scale",
        "hardware": hardware(),
        "settings": {
            "n_seeds": n_seeds,
            "n_levels": n_levels,
            "n_images": n_images,
            "n_classes": n_classes,
            "n_tables": len(all_tables),
            "loop_tables": n_loop,
            "loop_extrapolated": n_loop < len(all_tables),
            "n_boot": n_boot,
            "bootstrap_scope": "image bootstrap of macro AP, one per sparsity level (seed 0's run)",
            "boot_levels_timed": len(info["bootstrap_levels"]),
            "boot_extrapolated": len(info["bootstrap_levels"]) < n_levels,
            "prediction_gb": p.nbytes / 2**30,
        },
        "seconds": {
            "metrics": metrics_s,
            "metrics_runs": metric_seconds,
            **seconds,
            "total": total,
            "sklearn_loop_measured": loop_seconds,
            "sklearn_loop_all_tables": loop_full,
        },
        "speedup_metrics_vs_loop": loop_full / metrics_s,
        "max_abs_diff_vs_sklearn": diff,
        "nan_pattern_equal": same_nan,
        "peak_rss_gb": peak,
        "peak_rss_gb_after_data": peak_after_data,
        "summary": info,
        "targets": {
            "speedup": TARGET_SPEEDUP,
            "total_seconds": TARGET_SECONDS,
            "peak_gb": TARGET_PEAK_GB,
            "tolerance": TARGET_TOLERANCE,
            "speedup_met": loop_full / metrics_s >= TARGET_SPEEDUP,
            "total_met": total <= TARGET_SECONDS,
            "peak_met": peak <= TARGET_PEAK_GB,
            "equal_met": diff <= TARGET_TOLERANCE and same_nan,
        },
    }
    if out_dir is not None:
        write_result("analysis_scale", result, to_markdown(result), out_dir)
    return result


def to_markdown(result: dict[str, Any]) -> str:
    s, sec, t = result["settings"], result["seconds"], result["targets"]
    parts = ["metrics", "forgetting", "correlations", "pies", "bootstrap", "total"]
    rows = [{"part": k, "seconds": sec[k]} for k in parts]
    loop = (
        f"extrapolated linearly from {s['loop_tables']} of {s['n_tables']} tables "
        f"({sec['sklearn_loop_measured']:.1f} s measured)"
        if s["loop_extrapolated"]
        else f"all {s['n_tables']} tables"
    )
    boot = (
        f" Bootstrap time extrapolated linearly from {s['boot_levels_timed']} of "
        f"{s['n_levels']} levels ({sec['bootstrap_measured']:.1f} s measured)."
        if s["boot_extrapolated"]
        else ""
    )

    def ok(flag: bool) -> str:
        return "met" if flag else "**not met**"

    return (
        "# Study-level analysis at scale\n\n"
        f"{hardware_line(result['hardware'])}\n\n"
        f"{s['n_seeds']} seeds × {s['n_levels']} sparsities × {s['n_images']:,} images × "
        f"{s['n_classes']} classes ({s['n_tables']} tables, {s['prediction_gb']:.2f} GB float32); "
        f"bootstrap: {s['bootstrap_scope']}, {s['n_boot']} resamples.{boot}\n\n"
        + markdown_table(rows, ["part", "seconds"])
        + f"\nscikit-learn loop (AUROC + AP per table and class): {sec['sklearn_loop_all_tables']:.1f} s, {loop}.\n\n"
        f"- metric part: {result['speedup_metrics_vs_loop']:.1f}× faster than the loop "
        f"(target ≥ {t['speedup']:.0f}×: {ok(t['speedup_met'])})\n"
        f"- whole analysis: {sec['total']:.1f} s (target ≤ {t['total_seconds']:.0f} s: {ok(t['total_met'])})\n"
        f"- peak RSS: {result['peak_rss_gb']:.2f} GB, of which {result['peak_rss_gb_after_data']:.2f} GB "
        f"after generating the data (target ≤ {t['peak_gb']:.0f} GB: {ok(t['peak_met'])})\n"
        f"- max |suite − sklearn| on the loop's tables: {result['max_abs_diff_vs_sklearn']:.2e} "
        f"(target ≤ {t['tolerance']:.0e}: {ok(t['equal_met'])})\n"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(
        prog="python -m bench.perf.analysis_scale", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--levels", type=int, default=20, help="sparsity levels incl. dense")
    p.add_argument("--images", type=int, default=20_000)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--loop-tables", type=int, default=30, help="tables for the sklearn loop")
    p.add_argument("--boot-levels", type=int, default=2, help="levels bootstrapped (timed)")
    p.add_argument(
        "--full", action="store_true", help="sklearn loop on every table, bootstrap every level"
    )
    p.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    a = p.parse_args(argv)
    return run(
        n_seeds=a.seeds,
        n_levels=a.levels,
        n_images=a.images,
        n_classes=a.classes,
        loop_tables=None if a.full else a.loop_tables,
        n_boot=a.boot,
        boot_levels=None if a.full else a.boot_levels,
        out_dir=a.out,
    )


if __name__ == "__main__":
    main()
