"""paper_figures: every figure is drawn from hand-made tables; absent tables are skipped."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_study import CLASSES, make_fake_study

from paper_figures import make_all
from paper_figures.catalog import FIGURES, SYNTHETIC_NOTE
from paper_figures.errors import FigureError
from paper_figures.make import NAMES, figure_note
from paper_figures.study_b import choose_classes
from paper_figures.tradeoff import pareto_front

SPARSITIES = [0.0, 0.5, 0.7, 0.9, 0.95]
VARIANTS = [
    "baseline",
    "l1_unstructured_global[sparsity=0.5]",
    "l1_unstructured_global[sparsity=0.9]",
]
N_TRAIN = [900, 400, 150, 60, 12]  # one per class in CLASSES; Hernia is the rarest


def write_tables(study_dir: Path) -> Path:
    """Small tables in the schemas `cxrbench analyze` writes; Hernia is never forgotten."""
    out = study_dir / "tables"
    out.mkdir(parents=True, exist_ok=True)

    def csv(name: str, rows: list[dict] | pd.DataFrame) -> None:
        pd.DataFrame(rows).to_csv(out / f"{name}.csv", index=False)

    csv(
        "class_distribution",
        [
            {"class": c, "part": p, "count": int(n * f)}
            for c, n in zip(CLASSES, N_TRAIN, strict=True)
            for p, f in (("train", 1.0), ("val", 0.2), ("test", 0.2))
        ],
    )
    csv(
        "confusion",
        [
            {"variant": v, "true": t, "predicted": p, "count": n}
            for v in VARIANTS[:2]
            for (t, p), n in {
                ("Normal", "Normal"): 26,
                ("Normal", "Pneumonia"): 4,
                ("Pneumonia", "Normal"): 2,
                ("Pneumonia", "Pneumonia"): 24,
            }.items()
        ],
    )
    csv(
        "sensitivity",
        [
            {
                "layer": f"layer{i}.conv",
                "method": m,
                "amount": a,
                "metric": "accuracy",
                "value": 0.9 - a * i / 20,
                "baseline_value": 0.9,
            }
            for m in ("l1_unstructured", "structured")
            for i in range(4)
            for a in (0.2, 0.5, 0.8)
        ],
    )
    csv(
        "summary",
        [
            {
                "variant": v,
                "metric": m,
                "mean": 0.8 - 0.05 * k,
                "ci_low": 0.75 - 0.05 * k,
                "ci_high": 0.85 - 0.05 * k,
                "delta": np.nan if k == 0 else -0.05 * k,
                "delta_ci_low": np.nan if k == 0 else -0.05 * k - 0.02,
                "delta_ci_high": np.nan if k == 0 else -0.05 * k + 0.02,
                "pvalue": np.nan if k == 0 else 0.01 / k,
                "pvalue_adj": np.nan if k == 0 else 0.02 / k,
                "test": "" if k == 0 else "paired t over seeds",
                "n": 3,
                "sparsity": [np.nan, 0.5, 0.9][k],
                "family": "l1_unstructured_global",
            }
            for k, v in enumerate(VARIANTS)
            for m in ("auroc_macro", "ap_macro")
        ],
    )
    csv(
        "study_a",
        [
            {
                "variant": v,
                "accuracy": a / 56,
                "ci_low": a / 56 - 0.06,
                "ci_high": min(1, a / 56 + 0.04),
                "correct": a,
                "n": 56,
                "mcnemar_p": np.nan if v == "baseline" else 1.0,
            }
            for v, a in zip(VARIANTS, (53, 54, 53), strict=True)
        ],
    )
    csv(
        "metric_vs_sparsity",
        [
            {
                "family": f,
                "sparsity": s,
                "metric": m,
                "mean": 0.8 - d * s**3,
                "ci_low": 0.78 - d * s**3,
                "ci_high": 0.82 - d * s**3,
            }
            for f, d in (("l1_unstructured_global", 0.3), ("random_unstructured_global", 0.6))
            for s in SPARSITIES
            for m in ("ap_macro", "auroc_macro")
        ],
    )
    forgotten = {"No Finding": 0.95, "Effusion": 0.9, "Nodule": 0.7, "Cardiomegaly": 0.7}
    csv(
        "forgetting_curves",
        [
            {
                "class": c,
                "sparsity": s,
                "median_delta": -(s**3) * (1.2 - 0.2 * j),
                "ci_low": -(s**3) * (1.3 - 0.2 * j),
                "ci_high": -(s**3) * (1.1 - 0.2 * j),
            }
            for j, c in enumerate(CLASSES)
            for s in SPARSITIES
        ],
    )
    csv(
        "forgetting_summary",
        [
            {
                "class": c,
                "n_train_pos": n,
                "log_frequency": np.log(n),
                "forgotten_at": forgotten.get(c, np.nan),
                "delta_at_max": -0.1 - 0.1 * j,
            }
            for j, (c, n) in enumerate(zip(CLASSES, N_TRAIN, strict=True))
        ],
    )
    corr = {
        "pearson_r": 0.64,
        "pearson_p": 0.003,
        "pearson_ci_low": 0.3,
        "pearson_ci_high": 0.85,
        "spearman_rho": 0.61,
        "spearman_p": 0.005,
        "spearman_ci_low": 0.2,
        "spearman_ci_high": 0.83,
    }
    csv(
        "correlations",
        [
            {"x": "log_frequency", "y": "forgotten_at", "n": 4, **corr, "method": "bootstrap"},
            {"x": "log_frequency", "y": "delta_at_max", "n": 5, **corr, "method": "bootstrap"},
            {
                "x": "abs_dlogfreq",
                "y": "fcd",
                "n": 10,
                "pearson_r": 0.71,
                "pearson_p": 0.01,
                "method": "mantel-pearson",
            },
            {
                "x": "iou_quarter",
                "y": "fcd",
                "n": 10,
                "pearson_r": -0.43,
                "pearson_p": 0.04,
                "method": "mantel-pearson",
            },
        ],
    )
    pairs = [(a, b) for i, a in enumerate(CLASSES) for b in CLASSES[i + 1 :]]
    csv(
        "fcd_pairs",
        [
            {
                "class_a": a,
                "class_b": b,
                "fcd": 0.1 * k,
                "abs_dlogfreq": 0.3 * k,
                "iou": 0.5 / (k + 1),
                "iou_study_b": 0.4 / (k + 1),
            }
            for k, (a, b) in enumerate(pairs)
        ],
    )
    edges = np.logspace(-6, 0, 31)
    csv(
        "weights_histogram",
        {
            "bin_left": edges[:-1],
            "bin_right": edges[1:],
            "count": (1000 * np.exp(-((np.arange(30) - 18) ** 2) / 30)).astype(int),
        },
    )
    csv("weights_thresholds", {"sparsity": [0.5, 0.9], "threshold": [0.003, 0.02]})
    csv(
        "pie_prevalence",
        [
            {
                "variant": VARIANTS[2],
                "rule": r,
                "class": c,
                "prevalence_pie": 0.1 * (j + 1),
                "prevalence_nonpie": 0.1,
                "ratio": [j + 1, 0.5, np.nan][j % 3] if r == "modal" else j + 1,
                "pvalue": 0.01,
                "pvalue_adj": 0.04 if j else 0.3,
            }
            for r in ("spearman", "modal")
            for j, c in enumerate(CLASSES)
        ],
    )
    csv(
        "pie_findings",
        [
            {
                "variant": VARIANTS[2],
                "rule": r,
                "n_findings": k,
                "share_pie": 0.2,
                "share_nonpie": 0.2 / (i + 0.5),
                "ratio": i + 0.5,
            }
            for r in ("spearman", "modal")
            for i, k in enumerate(["0", "1", "2", "3", "4+"])
        ],
    )
    csv(
        "size_latency",
        [
            {
                "variant": v,
                "params": 1000,
                "nonzero_params": int(1000 * (1 - s)),
                "sparsity": s,
                "bytes_dense": 4000,
                "bytes_sparse": 125 + 4000 * (1 - s),
                "bytes_int8": 1000,
                "bytes_stored": 125 + 4000 * (1 - s),
                "macs": 10_000,
                "latency_cpu_b1_p50_ms": 1.0,
                "latency_cpu_b1_p95_ms": 1.2,
                "latency_cpu_b32_p50_ms": 30.0 - 5 * k,
                "latency_cpu_b32_p95_ms": 35.0,
                "speedup_b32": 30.0 / (30.0 - 5 * k),
                "metric": "ap_macro",
                "metric_mean": m,
                "metric_ci_low": m - 0.02,
                "metric_ci_high": m + 0.02,
                "note": "unstructured sparsity: no run-time saving without sparse kernels",
            }
            for k, (v, s, m) in enumerate(
                zip(VARIANTS, (0.0, 0.5, 0.9), (0.8, 0.82, 0.6), strict=True)
            )
        ],
    )
    return out


def _study(root: Path) -> Path:
    study_dir = make_fake_study(root, n_images=40, seeds=2)
    write_tables(study_dir)
    return study_dir


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Every figure drawn once (the slow part), shared by the checks below."""
    study_dir = _study(tmp_path_factory.mktemp("figures"))
    return study_dir, make_all(study_dir)


def test_make_all_draws_every_figure(drawn: tuple[Path, list[Path]]) -> None:
    study, written = drawn
    for info in FIGURES:
        for ext in ("pdf", "png"):
            path = study / "figures" / f"{info.name}.{ext}"
            assert path in written, f"{path.name} not drawn"
            assert path.stat().st_size > 5000, f"{path.name} is (nearly) empty"
    assert len(written) == 2 * len(FIGURES)
    assert not list((study / "figures").glob(".*")), "temporary files left behind"


def test_figures_are_marked_synthetic(drawn: tuple[Path, list[Path]]) -> None:
    study, _ = drawn
    pdf = (study / "figures" / "tradeoff.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"CreationDate" not in pdf
    assert figure_note(study) == SYNTHETIC_NOTE


def test_catalog_and_drawers_agree() -> None:
    assert [f.name for f in FIGURES] == NAMES


def test_missing_tables_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    study = _study(tmp_path)
    for name in ("correlations", "summary", "pie_findings", "weights_thresholds"):
        (study / "tables" / f"{name}.csv").unlink()
    (study / "tables" / "pie_prevalence.csv").write_text("")  # an empty file counts as absent
    only = [
        "compressed_vs_baseline",
        "pie_findings",
        "pie_prevalence",
        "frequency_vs_forgetting",
        "fcd",
        "weights_histogram",
    ]
    with caplog.at_level(logging.INFO, logger="paper_figures.make"):
        written = {p.name for p in make_all(study, only=only)}
    # optional companions absent: the figure is still drawn, without annotation or lines
    assert written == {f"{n}.{e}" for n in only[3:] for e in ("pdf", "png")}
    for name in ("summary.csv", "pie_findings.csv", "pie_prevalence.csv"):
        assert name in caplog.text


def test_nothing_but_history(tmp_path: Path) -> None:
    """A study with no tables yet: only the training curves (from history.parquet)."""
    study_dir = make_fake_study(tmp_path, n_images=40, seeds=2)
    written = make_all(study_dir)
    assert sorted(p.name for p in written) == ["training_curves.pdf", "training_curves.png"]


def test_empty_folder_draws_nothing(tmp_path: Path) -> None:
    assert make_all(tmp_path) == []


def test_missing_column_names_file_and_fix(tmp_path: Path) -> None:
    study = _study(tmp_path)
    path = study / "tables" / "forgetting_curves.csv"
    pd.read_csv(path).drop(columns="median_delta").to_csv(path, index=False)
    with pytest.raises(
        FigureError, match=r"forgetting_curves\.csv.*median_delta.*cxrbench analyze"
    ):
        make_all(study)


def test_pareto_front_by_hand() -> None:
    # cost, value: (1, .5) cheapest; (2, .8) better; (3, .7) dominated by (2, .8);
    # (4, .9) best; (4, .85) dominated by (4, .9); NaN never on the front.
    cost = np.array([1, 2, 3, 4, 4, np.nan])
    value = np.array([0.5, 0.8, 0.7, 0.9, 0.85, 0.99])
    assert pareto_front(cost, value).tolist() == [True, True, False, True, False, False]
    # an exact tie: neither dominates the other
    assert pareto_front(np.array([1.0, 1.0]), np.array([0.5, 0.5])).tolist() == [True, True]


def test_unknown_figure_name(tmp_path: Path) -> None:
    with pytest.raises(FigureError, match="unknown figure"):
        make_all(tmp_path, only=["nope"])


def test_choose_classes_spans_frequency(drawn: tuple[Path, list[Path]]) -> None:
    summary = pd.read_csv(drawn[0] / "tables" / "forgetting_summary.csv")
    # by training count: No Finding 900 > Effusion 400 > Nodule 150 > Cardiomegaly 60 > Hernia 12;
    # positions 0, 1.33, 2.67, 4 rounded -> 0, 1, 3, 4
    assert choose_classes(summary, CLASSES) == ["No Finding", "Effusion", "Cardiomegaly", "Hernia"]
    assert choose_classes(None, CLASSES, k=2) == CLASSES[:2]


def test_no_torch_or_bench_imported() -> None:
    code = (
        "import sys, paper_figures, analysis.report; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'bench')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_unknown_class_for_curves(drawn: tuple[Path, list[Path]]) -> None:
    with pytest.raises(FigureError, match=r"unknown class.*Nope"):
        make_all(drawn[0], only=["forgetting_curves"], classes=["Hernia", "Nope"])
