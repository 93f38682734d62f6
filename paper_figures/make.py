"""``make_all``: draw every figure whose table exists, skipping (with a logged note) the rest."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from analysis.io import load_history, read_study
from paper_figures import study_a, study_b, tradeoff
from paper_figures.catalog import SYNTHETIC_NOTE
from paper_figures.errors import FigureError, NothingToDraw
from paper_figures.tables import Tables

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Figure:
    """How one figure is drawn: ``plot(tables[table], out_base, **{kw: tables[name]}, note=)``.

    ``companions`` maps keyword → table used when present (annotations, threshold lines);
    ``classes`` passes the chosen classes through.
    """

    plot: Callable[..., list[Path]]
    table: str
    companions: dict[str, str] = field(default_factory=dict)
    classes: bool = False

    def draw(self, tables: Tables, out: Path, note: str, classes: list[str] | None) -> list[Path]:
        kwargs = {kw: tables.get(name) for kw, name in self.companions.items()}
        if self.classes:
            kwargs["classes"] = classes
        return self.plot(tables.get(self.table), out, note=note, **kwargs)


# names as in catalog.FIGURES; training curves come from the runs' history, not a table
FIGURES: dict[str, Figure] = {
    "class_split": Figure(study_a.plot_class_split, "class_distribution"),
    "confusion": Figure(study_a.plot_confusion, "confusion"),
    "sensitivity": Figure(study_a.plot_sensitivity, "sensitivity"),
    "compressed_vs_baseline": Figure(study_a.plot_compressed_vs_baseline, "summary"),
    "study_a_accuracy": Figure(study_a.plot_study_a_accuracy, "study_a"),
    "metric_vs_sparsity": Figure(study_b.plot_metric_vs_sparsity, "metric_vs_sparsity"),
    "forgetting_curves": Figure(
        study_b.plot_forgetting_curves,
        "forgetting_curves",
        {"summary": "forgetting_summary"},
        classes=True,
    ),
    "frequency_vs_forgetting": Figure(
        study_b.plot_frequency_vs_forgetting, "forgetting_summary", {"correlations": "correlations"}
    ),
    "fcd": Figure(study_b.plot_fcd, "fcd_pairs", {"correlations": "correlations"}),
    "weights_histogram": Figure(
        study_b.plot_weights_histogram, "weights_histogram", {"thresholds": "weights_thresholds"}
    ),
    "pie_prevalence": Figure(study_b.plot_pie_prevalence, "pie_prevalence"),
    "pie_findings": Figure(study_b.plot_pie_findings, "pie_findings"),
    "tradeoff": Figure(tradeoff.plot_tradeoff, "size_latency"),
}
NAMES = ["class_split", "training_curves", *[n for n in FIGURES if n != "class_split"]]


def _training_curves(study_dir: Path, out: Path, note: str) -> list[Path]:
    history = load_history(study_dir) if (study_dir / "study.json").is_file() else None
    if history is None or not {"epoch", "phase"} <= set(history.columns):
        raise NothingToDraw("no history.parquet in any finished run")
    return study_a.plot_training_curves(history, out, note=note)


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
    names = NAMES if only is None else list(only)
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise FigureError(f"unknown figure(s) {unknown}; choose from {NAMES}")
    tables, note = Tables(study_dir), figure_note(study_dir)
    for name in names:
        if name in FIGURES:  # read and check every input first: fail before drawing
            for table in (FIGURES[name].table, *FIGURES[name].companions.values()):
                tables.get(table)
    written: list[Path] = []
    for name in names:
        out = study_dir / "figures" / name
        try:
            if name == "training_curves":
                written += _training_curves(study_dir, out, note)
                continue
            figure = FIGURES[name]
            if tables.get(figure.table) is None:
                raise NothingToDraw(
                    f"{tables.path(figure.table).name} absent or empty in {tables.folder}"
                )
            written += figure.draw(tables, out, note, classes)
        except NothingToDraw as why:
            log.info("figure %s skipped: %s", name, why)
    return written
