"""Read the CSV tables written by ``cxrbench analyze`` (RESULTS/tables/<name>.csv)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.io import read_table
from paper_figures.errors import FigureError

REQUIRED: dict[str, tuple[str, ...]] = {
    "class_distribution": ("class", "part", "count"),
    "confusion": ("variant", "true", "predicted", "count"),
    "sensitivity": ("layer", "method", "amount", "metric", "value", "baseline_value"),
    "summary": (
        "variant",
        "metric",
        "mean",
        "ci_low",
        "ci_high",
        "delta",
        "delta_ci_low",
        "delta_ci_high",
        "pvalue_adj",
    ),
    "study_a": ("variant", "accuracy", "ci_low", "ci_high", "correct", "n", "mcnemar_p"),
    "metric_vs_sparsity": ("family", "sparsity", "metric", "mean", "ci_low", "ci_high"),
    "forgetting_curves": ("class", "sparsity", "median_delta", "ci_low", "ci_high"),
    "forgetting_summary": (
        "class",
        "n_train_pos",
        "log_frequency",
        "forgotten_at",
        "delta_at_max",
    ),
    "correlations": ("x", "y", "n"),
    "fcd_pairs": ("class_a", "class_b", "fcd", "abs_dlogfreq", "iou"),
    "weights_histogram": ("bin_left", "bin_right", "count"),
    "weights_thresholds": ("sparsity", "threshold"),
    "pie_prevalence": ("variant", "rule", "class", "ratio"),
    "pie_findings": ("variant", "rule", "n_findings", "ratio"),
    "size_latency": ("variant", "metric", "metric_mean", "metric_ci_low", "metric_ci_high"),
}


class Tables:
    """Lazy, cached access to ``<study_dir>/tables/<name>.csv``; ``None`` when absent or empty."""

    def __init__(self, study_dir: Path | str) -> None:
        self.folder = Path(study_dir) / "tables"
        self._cache: dict[str, pd.DataFrame | None] = {}

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.csv"

    def get(self, name: str) -> pd.DataFrame | None:
        if name not in self._cache:
            self._cache[name] = self._read(name)
        return self._cache[name]

    def _read(self, name: str) -> pd.DataFrame | None:
        path = self.path(name)
        df = read_table(path)
        if df is None:
            return None
        missing = [c for c in REQUIRED.get(name, ()) if c not in df.columns]
        if missing:
            raise FigureError(
                f"{path}: missing column(s) {missing}; expected at least {list(REQUIRED[name])}. "
                "Re-create the table with `cxrbench analyze` from this version of cxrbench"
            )
        return df
