"""Study B's analyses as tables: forgettability over the sparsity grid, PIEs of every
variant, and the baseline's weight magnitudes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import forgetting, pie
from analysis.metrics import average_precision
from analysis.study import Study, decisions, parse_variant

PRUNE_FAMILY = "l1_unstructured_global"


def _prune_levels(study: Study, family: str = PRUNE_FAMILY) -> tuple[list[int], list[float]]:
    """Variant indices and sparsities of one pruning family, dense (baseline) first."""
    found = [(0, 0.0)]
    for v, variant in enumerate(study.ps.variants):
        fam, sparsity = parse_variant(variant)
        if fam == family and sparsity is not None:
            found.append((v, sparsity))
    found.sort(key=lambda t: t[1])
    return [v for v, _ in found], [s for _, s in found]


def _wide_correlation(x: str, y: str, rows: pd.DataFrame, method: str) -> dict:
    """Pearson and Spearman rows of one relation side by side (the figures' schema)."""
    out = {"x": x, "y": y, "method": method}
    for name, stat in (("pearson", "r"), ("spearman", "rho")):
        row = rows[rows["method"].str.endswith(name)].iloc[0]
        out.update(
            {
                f"{name}_{stat}": row["statistic"],
                f"{name}_p": row.get("pvalue_adj", row["pvalue"]),
                f"{name}_ci_low": row.get("ci_low", np.nan),
                f"{name}_ci_high": row.get("ci_high", np.nan),
            }
        )
        out["n"] = row.get("n", row.get("n_classes"))
    return out


def forgetting_tables(study: Study, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Study B's forgettability analysis over the L1 global sparsity grid (per-seed AP)."""
    index, levels = _prune_levels(study)
    if len(levels) < 3 or study.ps.task != "multilabel":
        return {}
    ps = study.ps
    m = average_precision(ps.y, ps.probs[:, index])  # (S, L, C), predictions pooled over folds
    delta = forgetting.relative_change(m)
    curves = forgetting.forgettability_curves(delta)
    curves_df = forgetting.curves_frame(delta, levels, ps.class_names, rng=rng).rename(
        columns={"level": "sparsity", "median": "median_delta"}
    )
    summary = forgetting.forgetting_summary(curves, levels, ps.class_names)
    summary = summary.rename(columns={"change_at_max": "delta_at_max"})
    positives = study.train_positives()
    summary["n_train_pos"] = positives
    with np.errstate(divide="ignore"):
        summary["log_frequency"] = np.where(positives > 0, np.log(np.maximum(positives, 1)), np.nan)
    corr = [
        _wide_correlation(
            "log_frequency",
            outcome,
            forgetting.correlate(
                summary["log_frequency"], summary[outcome], rng=rng, n_resamples=2000
            ),
            "pearson / spearman, bootstrap CI over classes",
        )
        for outcome in ("forgotten_at", "delta_at_max")
    ]
    relations = forgetting.fcd_relations(curves, ps.y, n_permutations=999, rng=rng)
    for covariate, x in (("abs_log_freq_diff", "abs_dlogfreq"), ("iou_quarter", "iou_quarter")):
        rows = relations[relations["covariate"] == covariate]
        corr.append(_wide_correlation(x, "fcd", rows, "Mantel permutation test (BH over 4)"))
    pairs = forgetting.pair_table(curves, ps.y, ps.class_names)
    pairs = pairs.rename(columns={"abs_log_freq_diff": "abs_dlogfreq"})
    pairs["iou_study_b"] = forgetting.iou_study_b(ps.y)[np.triu_indices(len(ps.class_names), k=1)]
    return {
        "forgetting_curves": curves_df,
        "forgetting_summary": summary,
        "correlations": pd.DataFrame(corr),
        "fcd_pairs": pairs,
        "class_impact": forgetting.class_impact(m, levels, ps.class_names),
    }


def pie_masks(study: Study, v: int, q: float = 0.05) -> dict[str, np.ndarray]:
    """PIE masks of variant ``v`` against the dense population: Hooker's modal rule, and
    study B's Spearman rule (lowest ``q``) for multi-label tasks."""
    ps = study.ps
    masks = {"modal": pie.pies_modal(decisions(study, 0), decisions(study, v)).is_pie}
    if ps.task == "multilabel":
        masks["spearman"] = pie.pies_spearman(ps.probs[:, 0], ps.probs[:, v], q=q).is_pie
    return masks


def pie_tables(study: Study, q: float = 0.05) -> dict[str, pd.DataFrame]:
    """PIEs of every variant against the dense population, by both rules where they apply."""
    ps = study.ps
    prevalence, findings, counts, accuracy = [], [], [], []
    dense_mean = np.nanmean(ps.probs[:, 0], axis=0)  # the dense population, seed-averaged
    runs = [study.thresholds_per_image(s, 0) for s in range(len(ps.seeds))]
    dense_thresholds = np.mean(runs, axis=(0, 1)) if ps.task == "multilabel" else None
    for v, variant in enumerate(ps.variants[1:], start=1):
        if np.isnan(ps.probs[:, v]).any():
            continue
        for rule, is_pie in pie_masks(study, v, q).items():
            counts.append(
                {
                    "variant": variant,
                    "rule": rule,
                    "n_pies": int(is_pie.sum()),
                    "n_images": len(is_pie),
                }
            )
            if not 0 < is_pie.sum() < len(is_pie):
                continue
            acc = pie.accuracy_on_pies(ps.y, dense_mean, dense_thresholds, is_pie)
            accuracy.append(acc.assign(variant=variant, rule=rule))
            ratio = pie.prevalence_ratio(ps.y, is_pie, ps.class_names).rename(
                columns={"prev_pie": "prevalence_pie", "prev_nonpie": "prevalence_nonpie"}
            )
            prevalence.append(ratio.assign(variant=variant, rule=rule))
            if ps.task == "multilabel":
                fc = pie.findings_count_ratio(ps.y, is_pie, exclude=_no_finding(ps.class_names))
                shares = {"frac_pie": "share_pie", "frac_nonpie": "share_nonpie"}
                findings.append(
                    fc.table.rename(columns=shares).assign(
                        variant=variant, rule=rule, chi2_p=fc.pvalue
                    )
                )
    out = {
        "pie_counts": pd.DataFrame(counts),
        "pie_accuracy": pd.concat(accuracy, ignore_index=True),
    }
    if prevalence:
        out["pie_prevalence"] = pd.concat(prevalence, ignore_index=True)
    if findings:
        out["pie_findings"] = pd.concat(findings, ignore_index=True)
    return out


def _no_finding(class_names: list[str]) -> tuple[int, ...]:
    return tuple(
        i for i, c in enumerate(class_names) if c.lower().replace("_", " ") == "no finding"
    )


def weights_tables(study: Study, bins: int = 60) -> dict[str, pd.DataFrame]:
    """|w| histogram of the first baseline's Conv/Linear weights (log bins) and the global L1
    threshold that each sparsity of the grid implies (the |w| quantile)."""
    from safetensors.numpy import load_file

    cells = pd.DataFrame(study.info["cells"])
    first = cells[cells["variant_id"] == "baseline"].iloc[0]["run_id"]
    path = study.root / "runs" / first / "model.safetensors"
    if not path.is_file():
        return {}
    state = load_file(path)
    w = np.abs(
        np.concatenate(
            [v.ravel() for k, v in state.items() if k.endswith("weight") and v.ndim >= 2]
        )
    )
    w = w[w > 0]
    edges = np.geomspace(w.min(), w.max(), bins + 1)
    counts, _ = np.histogram(w, edges)
    hist = pd.DataFrame({"bin_left": edges[:-1], "bin_right": edges[1:], "count": counts})
    _, levels = _prune_levels(study)
    sparsities = [s for s in levels if s > 0] or [0.5, 0.9]
    thresholds = pd.DataFrame({"sparsity": sparsities, "threshold": np.quantile(w, sparsities)})
    return {"weights_histogram": hist, "weights_thresholds": thresholds}
