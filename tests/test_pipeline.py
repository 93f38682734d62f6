"""End to end: analyze → figures → report from a real tiny sweep and from a fake study with a
full sparsity grid; every table has intervals and p-values where it should."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fake_study import make_fake_study

from bench.cli import main

EXPECTED_TABLES = {
    "summary", "per_class", "study_a", "size_latency", "metric_vs_sparsity", "forgetting_curves",
    "forgetting_summary", "correlations", "fcd_pairs", "pie_prevalence", "pie_findings",
}  # fmt: skip


def _run_all(study) -> None:
    for command in ("analyze", "figures", "report"):
        assert main([command, str(study)]) == 0, command


def test_real_sweep_gets_every_variant_a_ci_and_a_pvalue(reference):
    cfg, _ = reference
    _run_all(cfg.study_dir)
    summary = pd.read_csv(cfg.study_dir / "tables" / "summary.csv")
    compared = summary[summary["variant"] != "baseline"]
    assert set(compared["variant"]) == {"l1_unstructured_global[sparsity=0.5]", "dynamic_int8"}
    primary = summary[summary["metric"] == "auroc_macro"]
    assert np.isfinite(primary[["mean", "ci_low", "ci_high"]].to_numpy()).all()
    assert np.isfinite(
        compared[compared["metric"] == "auroc_macro"][["pvalue", "pvalue_adj"]].to_numpy()
    ).all()
    assert set(compared["test"]) == {"corrected resampled t (Nadeau-Bengio)"}  # k-fold design
    for ext in ("csv", "md", "tex"):
        text = (cfg.study_dir / "tables" / f"summary.{ext}").read_text()
        assert "baseline" in text
    assert "SYNTHETIC" in (cfg.study_dir / "tables" / "summary.md").read_text()
    assert "\\toprule" in (cfg.study_dir / "tables" / "summary.tex").read_text()
    html = (cfg.study_dir / "report.html").read_text()
    assert "Synthetic data" in html and "data:image/png;base64," in html
    variant = "l1_unstructured_global[sparsity=0.5]"
    assert main(["reader-kit", str(cfg.study_dir), "--variant", variant, "--rule", "modal"]) == 0
    form = pd.read_csv(cfg.study_dir / "reader_kit" / "reader" / "form.csv")
    key = pd.read_csv(cfg.study_dir / "reader_kit" / "key.csv")
    assert "is_pie" not in form.columns and key["is_pie"].sum() == (~key["is_pie"]).sum()
    assert len(list((cfg.study_dir / "reader_kit" / "reader" / "images").glob("*.png"))) == len(
        form
    )
    assert (cfg.study_dir / "figures" / "pie_montage.png").stat().st_size > 1000


def test_full_grid_study_writes_every_table_figure_and_report(tmp_path):
    study = make_fake_study(tmp_path, seeds=4, sparsities=(0.3, 0.5, 0.7, 0.8, 0.9))
    _run_all(study)
    tables = {p.stem for p in (study / "tables").glob("*.csv")}
    assert EXPECTED_TABLES <= tables, EXPECTED_TABLES - tables
    figures = {p.stem for p in (study / "figures").glob("*.png")}
    for name in (
        "metric_vs_sparsity",
        "forgetting_curves",
        "frequency_vs_forgetting",
        "fcd",
        "pie_prevalence",
        "pie_findings",
        "tradeoff",
        "compressed_vs_baseline",
    ):
        assert name in figures and (study / "figures" / f"{name}.pdf").stat().st_size > 1000
    correlations = pd.read_csv(study / "tables" / "correlations.csv")
    assert np.isfinite(correlations["pearson_r"]).all()
    forgetting = pd.read_csv(study / "tables" / "forgetting_summary.csv")
    assert forgetting.loc[forgetting["class"] == "Hernia", "forgotten"].item()  # rarest forgotten
