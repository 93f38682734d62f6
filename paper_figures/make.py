"""``make_all``: draw every figure whose table exists, skipping (with a logged note) the rest."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from analysis.io import load_history, read_study
from paper_figures import study_a, study_b, tradeoff
from paper_figures.catalog import SYNTHETIC_NOTE
from paper_figures.errors import FigureError, NothingToDraw
from paper_figures.tables import Tables

log = logging.getLogger(__name__)

# draw(tables, study_dir, out_base, note, classes) -> written files
Draw = Callable[..., list[Path]]


def _history(study_dir: Path) -> pd.DataFrame | None:
    if not (study_dir / "study.json").is_file():
        return None
    history = load_history(study_dir)
    return history if {"epoch", "phase"} <= set(history.columns) else None


def _training_curves(t: Tables, study_dir: Path, out: Path, note: str, _: object) -> list[Path]:
    history = _history(study_dir)
    if history is None:
        raise NothingToDraw("no history.parquet in any finished run")
    return study_a.plot_training_curves(history, out, note=note)


# name -> (tables that must exist, how to draw it); names as in catalog.FIGURES
DRAW: dict[str, tuple[tuple[str, ...], Draw]] = {
    "class_split": (
        ("class_distribution",),
        lambda t, s, o, n, c: study_a.plot_class_split(t.get("class_distribution"), o, note=n),
    ),
    "training_curves": ((), _training_curves),
    "confusion": (
        ("confusion",),
        lambda t, s, o, n, c: study_a.plot_confusion(t.get("confusion"), o, note=n),
    ),
    "sensitivity": (
        ("sensitivity",),
        lambda t, s, o, n, c: study_a.plot_sensitivity(t.get("sensitivity"), o, note=n),
    ),
    "compressed_vs_baseline": (
        ("summary",),
        lambda t, s, o, n, c: study_a.plot_compressed_vs_baseline(t.get("summary"), o, note=n),
    ),
    "study_a_accuracy": (
        ("study_a",),
        lambda t, s, o, n, c: study_a.plot_study_a_accuracy(t.get("study_a"), o, note=n),
    ),
    "metric_vs_sparsity": (
        ("metric_vs_sparsity",),
        lambda t, s, o, n, c: study_b.plot_metric_vs_sparsity(
            t.get("metric_vs_sparsity"), o, note=n
        ),
    ),
    "forgetting_curves": (
        ("forgetting_curves",),
        lambda t, s, o, n, c: study_b.plot_forgetting_curves(
            t.get("forgetting_curves"), o, summary=t.get("forgetting_summary"), classes=c, note=n
        ),
    ),
    "frequency_vs_forgetting": (
        ("forgetting_summary",),
        lambda t, s, o, n, c: study_b.plot_frequency_vs_forgetting(
            t.get("forgetting_summary"), o, correlations=t.get("correlations"), note=n
        ),
    ),
    "fcd": (
        ("fcd_pairs",),
        lambda t, s, o, n, c: study_b.plot_fcd(
            t.get("fcd_pairs"), o, correlations=t.get("correlations"), note=n
        ),
    ),
    "weights_histogram": (
        ("weights_histogram",),
        lambda t, s, o, n, c: study_b.plot_weights_histogram(
            t.get("weights_histogram"), o, thresholds=t.get("weights_thresholds"), note=n
        ),
    ),
    "pie_prevalence": (
        ("pie_prevalence",),
        lambda t, s, o, n, c: study_b.plot_pie_prevalence(t.get("pie_prevalence"), o, note=n),
    ),
    "pie_findings": (
        ("pie_findings",),
        lambda t, s, o, n, c: study_b.plot_pie_findings(t.get("pie_findings"), o, note=n),
    ),
    "tradeoff": (
        ("size_latency",),
        lambda t, s, o, n, c: tradeoff.plot_tradeoff(t.get("size_latency"), o, note=n),
    ),
}
# companion tables a figure uses when present (annotations, threshold lines)
OPTIONAL: dict[str, tuple[str, ...]] = {
    "forgetting_curves": ("forgetting_summary",),
    "frequency_vs_forgetting": ("correlations",),
    "fcd": ("correlations",),
    "weights_histogram": ("weights_thresholds",),
}


def figure_note(study_dir: Path) -> str:
    """The synthetic-data mark for figures of a SynthCXR-LT study, else ""."""
    if not (study_dir / "study.json").is_file():
        return ""
    return SYNTHETIC_NOTE if read_study(study_dir).get("dataset", {}).get("synthetic") else ""


def make_all(
    study_dir: Path | str,
    *,
    only: Iterable[str] | None = None,
    classes: list[str] | None = None,
) -> list[Path]:
    """Draw every figure that has data into ``<study_dir>/figures/<name>.{pdf,png}``.

    ``only`` restricts the figures (names as in ``catalog.FIGURES``); ``classes`` overrides the
    classes shown in the forgettability curves (default: the most frequent, the rarest and two
    in between). All tables are read and checked before anything is drawn. Returns the files
    written.
    """
    study_dir = Path(study_dir)
    names = list(DRAW) if only is None else list(only)
    unknown = sorted(set(names) - set(DRAW))
    if unknown:
        raise FigureError(f"unknown figure(s) {unknown}; choose from {list(DRAW)}")
    tables, note = Tables(study_dir), figure_note(study_dir)
    for name in names:
        for table in OPTIONAL.get(name, ()) + DRAW[name][0]:
            tables.get(table)  # read and check every input first: fail before drawing
    written: list[Path] = []
    for name in names:
        needs, draw = DRAW[name]
        absent = [tables.path(t).name for t in needs if tables.get(t) is None]
        if absent:
            log.info("figure %s skipped: %s absent or empty in %s", name, absent, tables.folder)
            continue
        try:
            written += draw(tables, study_dir, study_dir / "figures" / name, note, classes)
        except NothingToDraw as why:
            log.info("figure %s skipped: %s", name, why)
    return written
