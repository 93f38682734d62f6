"""`cxrbench analyze`: every table of a study, computed from its per-image predictions.

The test for a comparison follows the design of the study:

- k-fold (one or more seeds): corrected resampled t over the seed × fold differences
  (Nadeau–Bengio; Bouckaert–Frank for repeats), since training sets overlap;
- holdout or official split with several seeds: paired t over seeds (Wilcoxon alongside);
- one seed on one test set: paired bootstrap over patients (DeLong for per-class AUROC,
  exact McNemar for accuracy).

Holm corrects the summary table across variants × metrics; Benjamini–Hochberg the per-class
table across variants × classes (per metric). Every table is a tidy DataFrame; writing
them as CSV, Markdown and LaTeX is :func:`write_tables`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.ci import hierarchical_bootstrap, image_bootstrap, t_interval
from analysis.io import (
    load_measurements,
)
from analysis.metrics import (
    accuracy,
    auroc,
    average_precision,
    brier,
    ece,
    f1,
    macro,
    sensitivity,
    specificity,
)
from analysis.paired import (
    corrected_resampled_t,
    delong,
    mcnemar_exact,
    paired_bootstrap,
    paired_t,
    wilcoxon,
)
from analysis.results import Estimate, PairedTest, adjust
from analysis.study import Study, correct_per_image, load_study, parse_variant
from analysis.study_b import forgetting_tables, pie_tables, weights_tables

PRIMARY = "auroc_macro"
LOWER_IS_BETTER = ("brier", "ece")
#: long machine-readable tables: CSV only (no Markdown / LaTeX rendering)
RAW_TABLES = {"run_metrics", "fcd_pairs", "weights_histogram", "forgetting_curves"}


# --------------------------------------------------------------------------------------------
# Per-run metrics


def run_metrics(study: Study) -> pd.DataFrame:
    """Tidy per-run metrics: seed, fold, variant, class ("macro" for the mean), metric, value.

    Computed on each fold's own test images (the unit the k-fold tests need).
    """
    ps = study.ps
    rows = []
    for fold in study.folds:
        mask = study.fold_mask(fold)
        y, p = ps.y[mask], ps.probs[:, :, mask]
        ranking = {"auroc": auroc(y, p), "ap": average_precision(y, p)}  # (S, V, C)
        for s, seed in enumerate(ps.seeds):
            for v, variant in enumerate(ps.variants):
                if np.isnan(p[s, v]).any():
                    continue
                t = study.thresholds_per_image(s, v)[mask][0]
                per_class = {
                    **{k: m[s, v] for k, m in ranking.items()},
                    "f1": f1(y, p[s, v], t),
                    "sensitivity": sensitivity(y, p[s, v], t),
                    "specificity": specificity(y, p[s, v], t),
                    "brier": brier(y, p[s, v]),
                    "ece": ece(y, p[s, v]),
                }
                key = {"seed": seed, "fold": fold, "variant": variant}
                for name, values in per_class.items():
                    rows += [
                        {**key, "class": c, "metric": name, "value": float(x)}
                        for c, x in zip(ps.class_names, values, strict=True)
                    ]
                macro_values = {
                    "auroc_macro": macro(per_class["auroc"]),
                    "ap_macro": macro(per_class["ap"]),
                    "f1_macro": macro(per_class["f1"]),
                    "brier": macro(per_class["brier"]),
                    "ece": macro(per_class["ece"]),
                    "accuracy": correct_per_image(y, p[s, v], t, ps.task).mean(),
                }
                if ps.task == "multilabel":
                    macro_values["label_accuracy"] = macro(accuracy(y, p[s, v], t))
                rows += [
                    {**key, "class": "macro", "metric": m, "value": float(x)}
                    for m, x in macro_values.items()
                ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Intervals and tests that fit the design


def _fold_sizes(study: Study) -> tuple[int, int]:
    """(n_train, n_test) per fold, for the Nadeau–Bengio correction (from study.json)."""
    parts = study.info.get("positives") or []
    if parts and "n_train" in parts[0]:
        return int(np.mean([p["n_train"] for p in parts])), int(
            np.mean([p["n_test"] for p in parts])
        )
    n_test = int(np.mean([study.fold_mask(f).sum() for f in study.folds]))
    k = len(study.folds)
    return n_test * (k - 1), n_test  # no sizes recorded: k-fold without a validation part


def _mean_columns(statistic: float, result: Estimate | PairedTest, ci_method: str) -> dict:
    """A mean with its interval as table columns."""
    ci = result.confidence_interval
    return {
        "mean": statistic,
        "ci_low": ci.low,
        "ci_high": ci.high,
        "n": result.n,
        "confidence_level": result.confidence_level,
        "ci_method": ci_method,
    }


def _delta_columns(r: PairedTest) -> dict:
    """A paired comparison (variant − baseline) as table columns."""
    ci = r.confidence_interval
    return {
        "delta": r.estimate,
        "delta_ci_low": ci.low,
        "delta_ci_high": ci.high,
        "pvalue": r.pvalue,
        "test": r.method,
    }


def _mean_interval(study: Study, values: pd.DataFrame) -> dict:
    """Mean of a metric over runs with its interval (seeds, or seeds × folds)."""
    if study.kfold:
        n_train, n_test = _fold_sizes(study)
        r = corrected_resampled_t(values["value"].to_numpy(), n_train, n_test)
        return _mean_columns(r.estimate, r, "corrected resampled t over seeds x folds")
    e = t_interval(values.groupby("seed")["value"].mean().to_numpy())
    return _mean_columns(e.statistic, e, "t over seeds")


def _paired(study: Study, merged: pd.DataFrame) -> dict:
    """Δ (variant − baseline) with its interval and p, by the test that fits the design."""
    a, b = merged["value"].to_numpy(), merged["value_baseline"].to_numpy()
    if study.kfold:
        n_train, n_test = _fold_sizes(study)
        r = corrected_resampled_t(a - b, n_train, n_test)
        extra = {}
    else:
        r = paired_t(a, b)
        w = wilcoxon(a, b) if len(a) >= 2 else None
        extra = {"wilcoxon_p": w.pvalue if w is not None else np.nan}
    return {**_delta_columns(r), **extra}


#: per-class metrics with sample weights, for the single-test-set bootstraps (macro-averaged)
_WEIGHTED = {"auroc_macro": auroc, "ap_macro": average_precision, "brier": brier, "ece": ece}


def _one_run_metric(name: str) -> Callable:
    """Macro ``name`` over (y, p[, weights]) for the single-test-set bootstrap (KeyError if
    the metric has no weighted form)."""
    per_class = _WEIGHTED[name]
    return lambda y, p, sample_weight=None: macro(per_class(y, p, sample_weight=sample_weight))


def _single_run_paired(study: Study, metric: str, v: int, rng: np.random.Generator) -> dict:
    """One seed, one test set: paired bootstrap over patients (McNemar for accuracy)."""
    ps = study.ps
    pa, pb = ps.probs[0, v], ps.probs[0, 0]
    if metric == "accuracy":
        ta, tb = study.thresholds_per_image(0, v), study.thresholds_per_image(0, 0)
        r = mcnemar_exact(
            correct_per_image(ps.y, pa, ta, ps.task), correct_per_image(ps.y, pb, tb, ps.task)
        )
    else:
        if metric not in _WEIGHTED:
            return {}
        fn = _one_run_metric(metric)
        r = paired_bootstrap(ps.y, pa, pb, fn, n_resamples=1000, rng=rng, clusters=ps.patient_ids)
    return _delta_columns(r)


def _noninferiority(table: pd.DataFrame, margin: float) -> pd.DataFrame:
    """Non-inferior at ``margin`` when the whole interval of Δ stays on the safe side of it:
    Δ low > −margin for higher-is-better metrics, Δ high < +margin for Brier and ECE."""
    if "delta_ci_low" not in table:
        return table
    lower_is_better = table["metric"].isin(LOWER_IS_BETTER)
    ok = np.where(lower_is_better, table["delta_ci_high"] < margin, table["delta_ci_low"] > -margin)
    tested = table["delta_ci_low"].notna()
    return table.assign(
        ni_margin=np.where(tested, margin, np.nan),
        noninferior=pd.Series(ok, index=table.index).where(tested),
    )


def summary_table(
    study: Study, runs: pd.DataFrame, rng: np.random.Generator, margin: float = 0.01
) -> pd.DataFrame:
    """Variant × metric: mean [CI], Δ vs baseline [CI], p, Holm-adjusted p, the test used,
    and whether the variant is non-inferior at ``margin`` (decided by the interval bound)."""
    macro_rows = runs[runs["class"] == "macro"]
    base = macro_rows[macro_rows["variant"] == "baseline"]
    single = len(study.ps.seeds) == 1 and not study.kfold
    records = []
    for (variant, metric), values in macro_rows.groupby(["variant", "metric"], sort=False):
        family, sparsity = parse_variant(variant)
        rec = {"variant": variant, "metric": metric, "family": family, "sparsity": sparsity}
        rec.update(
            _mean_interval(study, values)
            if not single
            else _single_run_mean(study, metric, variant, values, rng)
        )
        if variant != "baseline":
            merged = values.merge(
                base[base["metric"] == metric][["seed", "fold", "value"]],
                on=["seed", "fold"],
                suffixes=("", "_baseline"),
            )
            if single:
                rec.update(_single_run_paired(study, metric, study.ps.variants.index(variant), rng))
            else:
                rec.update(_paired(study, merged))
        records.append(rec)
    table = pd.DataFrame(records)
    tested = table[table["variant"] != "baseline"]
    adjusted = (
        adjust(tested, "holm") if len(tested) else tested.assign(pvalue_adj=[], adj_method=[])
    )
    table = pd.concat([table[table["variant"] == "baseline"], adjusted], ignore_index=True)
    table = _noninferiority(table, margin)
    order = {v: i for i, v in enumerate(study.ps.variants)}
    return table.sort_values(
        ["variant", "metric"], key=lambda c: c.map(order) if c.name == "variant" else c
    ).reset_index(drop=True)


def _single_run_mean(study: Study, metric: str, variant: str, values: pd.DataFrame, rng) -> dict:
    """One seed on one test set: a patient-level bootstrap interval (Wilson-like for accuracy)."""
    ps = study.ps
    v = ps.variants.index(variant)
    if metric == "accuracy":
        correct = correct_per_image(ps.y, ps.probs[0, v], study.thresholds_per_image(0, v), ps.task)
        e = _accuracy_interval(correct, ps.patient_ids, rng)
    else:
        if metric not in _WEIGHTED:
            return {"mean": float(values["value"].mean()), "n": 1}
        fn = _one_run_metric(metric)
        e = image_bootstrap(ps.y, ps.probs[0, v], fn, rng=rng, clusters=ps.patient_ids)
    return _mean_columns(e.statistic, e, e.method)


def per_class_table(study: Study, runs: pd.DataFrame) -> pd.DataFrame:
    """Variant × class for AUROC and AP: mean [CI], Δ [CI], p, BH-adjusted p (per metric)."""
    rows = runs[runs["metric"].isin(["auroc", "ap"]) & (runs["class"] != "macro")]
    base = rows[rows["variant"] == "baseline"]
    single = len(study.ps.seeds) == 1 and not study.kfold
    records = []
    for (variant, cls, metric), values in rows.groupby(["variant", "class", "metric"], sort=False):
        rec = {"variant": variant, "class": cls, "metric": metric}
        values = values.dropna(subset=["value"])
        if values.empty:
            continue
        rec.update(
            _mean_interval(study, values) if len(values) > 1 else {"mean": values["value"].iloc[0]}
        )
        if variant != "baseline":
            if single and metric == "auroc":
                k = study.ps.class_names.index(cls)
                v = study.ps.variants.index(variant)
                r = delong(study.ps.y[:, k], study.ps.probs[0, v, :, k], study.ps.probs[0, 0, :, k])
                rec.update(_delta_columns(r))
            elif not single:
                merged = values.merge(
                    base[(base["class"] == cls) & (base["metric"] == metric)][
                        ["seed", "fold", "value"]
                    ],
                    on=["seed", "fold"],
                    suffixes=("", "_baseline"),
                )
                rec.update(_paired(study, merged))
        records.append(rec)
    table = pd.DataFrame(records)
    if "pvalue" not in table:
        return table
    tested = table[table["variant"] != "baseline"]
    return pd.concat(
        [table[table["variant"] == "baseline"], adjust(tested, "fdr_bh", by="metric")],
        ignore_index=True,
    )


def study_a_table(study: Study, rng: np.random.Generator) -> pd.DataFrame:
    """Study A's view, one run (the first seed): test accuracy with a patient-bootstrap CI
    and exact McNemar p against the same seed's baseline. Exact match for multi-label."""
    ps = study.ps
    base_correct = correct_per_image(
        ps.y, ps.probs[0, 0], study.thresholds_per_image(0, 0), ps.task
    )
    records = []
    for v, variant in enumerate(ps.variants):
        if np.isnan(ps.probs[0, v]).any():
            continue
        correct = correct_per_image(ps.y, ps.probs[0, v], study.thresholds_per_image(0, v), ps.task)
        e = _accuracy_interval(correct, ps.patient_ids, rng)
        test = mcnemar_exact(correct, base_correct) if v else None
        records.append(
            {
                "variant": variant,
                "seed": ps.seeds[0],
                "accuracy": float(correct.mean()),
                "ci_low": e.confidence_interval.low,
                "ci_high": e.confidence_interval.high,
                "correct": int(correct.sum()),
                "n": len(correct),
                "differs_from_baseline": int((correct != base_correct).sum()),
                "mcnemar_p": test.pvalue if test else np.nan,
            }
        )
    return pd.DataFrame(records)


def _accuracy_interval(correct: np.ndarray, patients: np.ndarray, rng: np.random.Generator):
    """Patient-level bootstrap interval of the share of correct images."""

    def share(y: np.ndarray, p: np.ndarray, sample_weight: np.ndarray | None = None):
        x = y[:, 0].astype(float)
        return (
            x.mean()
            if sample_weight is None
            else (sample_weight * x).sum(-1) / sample_weight.sum(-1)
        )

    outcome = correct[:, None].astype(np.uint8)
    return image_bootstrap(outcome, np.zeros(outcome.shape), share, rng=rng, clusters=patients)


def size_latency_table(study: Study, summary: pd.DataFrame) -> pd.DataFrame:
    """Variant × size, MACs, latency (mean over its cells) joined with the primary metric."""
    m = load_measurements(study.root)
    if m.empty:
        return m
    numeric = (
        m.drop(columns=["run_id", "seed", "fold"]).groupby("variant_id").mean(numeric_only=True)
    )
    notes = m.groupby("variant_id")["note"].first() if "note" in m else None
    table = numeric.reset_index().rename(columns={"variant_id": "variant"})
    if notes is not None:
        table["note"] = table["variant"].map(notes).fillna("")
    for bs in ("b1", "b32"):
        col = f"latency_cpu_{bs}_p50_ms"
        if col in table and (table["variant"] == "baseline").any():
            ref = table.loc[table["variant"] == "baseline", col].iloc[0]
            table[f"speedup_{bs}"] = ref / table[col]
            compiled = f"latency_cpu_{bs}_compiled_p50_ms"
            if compiled in table:
                compiled_ref = table.loc[table["variant"] == "baseline", compiled].iloc[0]
                table[f"speedup_{bs}_vs_compiled"] = compiled_ref / table[col]
    primary = summary[summary["metric"] == PRIMARY].set_index("variant")
    table["metric"] = PRIMARY
    for src, dst in (
        ("mean", "metric_mean"),
        ("ci_low", "metric_ci_low"),
        ("ci_high", "metric_ci_high"),
    ):
        table[dst] = table["variant"].map(primary[src])
    order = {v: i for i, v in enumerate(study.ps.variants)}
    return table.sort_values("variant", key=lambda c: c.map(order)).reset_index(drop=True)


def metric_vs_sparsity_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean [CI] of each macro metric against sparsity, per pruning family (baseline = 0)."""
    grid = summary.dropna(subset=["sparsity"])
    families = sorted(set(grid["family"]) - {"baseline"})
    base = grid[grid["variant"] == "baseline"]
    frames = [pd.concat([base.assign(family=f), grid[grid["family"] == f]]) for f in families]
    if not frames:
        return pd.DataFrame(columns=["family", "sparsity", "metric", "mean", "ci_low", "ci_high"])
    out = pd.concat(frames, ignore_index=True)
    return out[["family", "sparsity", "metric", "mean", "ci_low", "ci_high"]].sort_values(
        ["family", "metric", "sparsity"]
    )


# --------------------------------------------------------------------------------------------
# Descriptive tables


def class_distribution_table(study: Study) -> pd.DataFrame:
    positives = study.info.get("positives") or []
    if not positives:
        return pd.DataFrame(columns=["class", "part", "count"])
    first = positives[0]
    return pd.DataFrame(
        [
            {"class": c, "part": part, "count": int(first[part][k])}
            for part in ("train", "val", "test")
            if part in first
            for k, c in enumerate(study.info["class_names"])
        ]
    )


def confusion_table(study: Study) -> pd.DataFrame:
    """Single-label tasks: confusion counts per variant, pooled over seeds and folds."""
    ps = study.ps
    if ps.task == "multilabel":
        return pd.DataFrame()
    records = []
    truth = ps.y.argmax(1)
    for v, variant in enumerate(ps.variants):
        for s in range(len(ps.seeds)):
            p = ps.probs[s, v]
            if np.isnan(p).any():
                continue
            if ps.task == "binary":
                pred = (p[:, 1] >= study.thresholds_per_image(s, v)[:, 1]).astype(int)
            else:
                pred = p.argmax(1)
            for t, q in zip(truth, pred, strict=True):
                records.append((variant, ps.class_names[t], ps.class_names[q]))
    df = pd.DataFrame(records, columns=["variant", "true", "predicted"])
    return df.groupby(["variant", "true", "predicted"]).size().rename("count").reset_index()


def hierarchical_table(
    study: Study, rng: np.random.Generator, n_resamples: int = 300
) -> pd.DataFrame:
    """Mean macro AUROC and AP over seeds with a seeds × patients bootstrap interval."""
    ps = study.ps
    if len(ps.seeds) < 2:
        return pd.DataFrame()
    records = []
    for v, variant in enumerate(ps.variants):
        p = ps.probs[:, v]
        if np.isnan(p).any():
            continue
        for name in ("auroc_macro", "ap_macro"):
            e = hierarchical_bootstrap(
                ps.y,
                p,
                _one_run_metric(name),
                n_resamples=n_resamples,
                rng=rng,
                clusters=ps.patient_ids,
            )
            records.append({"variant": variant, "metric": name, **e.to_dict()})
    return pd.DataFrame(records)


# --------------------------------------------------------------------------------------------
# Everything, and writing it


def analyze(
    study_dir: Path | str, *, rng: int = 0, margin: float = 0.01
) -> dict[str, pd.DataFrame]:
    """Compute every table of a study (deterministic for a given ``rng``)."""
    gen = np.random.default_rng(rng)
    study = load_study(study_dir)
    runs = run_metrics(study)
    summary = summary_table(study, runs, gen, margin)
    tables = {
        "run_metrics": runs,
        "summary": summary,
        "per_class": per_class_table(study, runs),
        "study_a": study_a_table(study, gen),
        "size_latency": size_latency_table(study, summary),
        "metric_vs_sparsity": metric_vs_sparsity_table(summary),
        "hierarchical": hierarchical_table(study, gen),
        "class_distribution": class_distribution_table(study),
        "confusion": confusion_table(study),
        **forgetting_tables(study, gen),
        **pie_tables(study),
        **weights_tables(study),
    }
    return {k: v for k, v in tables.items() if v is not None and not v.empty}


def _fmt(x: object) -> object:
    if isinstance(x, float):
        if np.isnan(x):
            return ""
        return f"{x:.3g}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.4f}".rstrip("0").rstrip(".")
    return x


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable copy: 'mean [low, high]' columns and rounded numbers."""
    out = df.copy()
    for stem in ("", "delta_", "metric_"):
        mean, lo, hi = (
            (f"{stem}mean" if stem != "delta_" else "delta"),
            f"{stem}ci_low",
            f"{stem}ci_high",
        )
        if {mean, lo, hi} <= set(out.columns):
            out[mean] = [
                "" if pd.isna(m) else f"{_fmt(float(m))} [{_fmt(float(a))}, {_fmt(float(b))}]"
                for m, a, b in zip(out[mean], out[lo], out[hi], strict=True)
            ]
            out = out.drop(columns=[lo, hi])
    return out.map(_fmt)


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path, *, synthetic: bool) -> list[Path]:
    """CSV (full precision), Markdown and LaTeX (booktabs) per table, written atomically."""
    from analysis.files import write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    note = (
        "% SYNTHETIC data (SynthCXR-LT): pipeline demonstration, not a clinical result\n"
        if synthetic
        else ""
    )
    written = []
    for name, df in tables.items():
        write_text(out_dir / f"{name}.csv", df.to_csv(index=False))
        written.append(out_dir / f"{name}.csv")
        if name in RAW_TABLES:
            continue
        shown = display_frame(df)
        md_note = note.replace("% ", "> ") if note else ""
        write_text(out_dir / f"{name}.md", md_note + shown.to_markdown(index=False) + "\n")
        latex = shown.to_latex(
            index=False, escape=True, caption=name.replace("_", " "), label=f"tab:{name}"
        )
        write_text(out_dir / f"{name}.tex", note + latex)
        written += [out_dir / f"{name}.{ext}" for ext in ("md", "tex")]
    write_text(out_dir / "index.json", json.dumps(sorted(tables), indent=2))
    return written
