"""The store schema (docs/results-schema.md) is the contract between bench and analysis:
check a real study folder against it, and the page against the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from bench.store import run_id_for

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = (ROOT / "docs" / "results-schema.md").read_text()

RUN_FILES = {
    "config.json",
    "meta.json",
    "metrics.json",
    "measure.json",
    "predictions.parquet",
    "DONE",
}
PREDICTION_TYPES = {
    "image_id": "string",
    "patient_id": "string",
    "split": "string",
    "fold": "int32",
    "seed": "int32",
    "variant_id": "string",
}
MEASURE_KEYS = {"params", "nonzero_params", "sparsity", "bytes_dense", "bytes_sparse", "bytes_int8", "bytes_stored", "macs", "dtype", "latency", "hardware", "note"}  # fmt: skip
HISTORY_COLUMNS = {"epoch", "phase", "loss", "accuracy", "precision_macro", "recall_macro", "f1_macro", "auroc_macro", "auprc_macro", "lr", "seconds", "images_per_s"}  # fmt: skip


def test_every_documented_name_is_in_the_schema_page():
    for name in [
        *RUN_FILES,
        *PREDICTION_TYPES,
        *MEASURE_KEYS,
        *HISTORY_COLUMNS,
        "label__",
        "prob__",
    ]:
        assert f"`{name}" in SCHEMA, f"{name} is written by the store but not documented"


def test_store_matches_the_schema(reference):
    cfg, _ = reference
    study = json.loads((cfg.study_dir / "study.json").read_text())
    assert {
        "study",
        "config",
        "task",
        "class_names",
        "dataset",
        "folds",
        "positives",
        "pixels",
        "cells",
    } <= set(study)
    classes = study["class_names"]
    runs = sorted((cfg.study_dir / "runs").iterdir())
    assert len(runs) == len(study["cells"]) == 12
    splits = sorted(p.name for p in (cfg.study_dir / "splits").iterdir())
    assert [s.split("-")[0] for s in splits] == ["fold0", "fold1"]
    assert all(s.endswith(".parquet") for s in splits)
    for run in runs:
        names = {p.name for p in run.iterdir()}
        assert RUN_FILES <= names, run
        config = json.loads((run / "config.json").read_text())
        assert run.name == run_id_for(config)  # run id = hash of the resolved cell config
        done = json.loads((run / "DONE").read_text())
        assert set(done["files"]) == names - {"DONE", "log.txt"}
        table = pq.read_table(run / "predictions.parquet")
        types = {f.name: str(f.type) for f in table.schema}
        for column, kind in PREDICTION_TYPES.items():
            assert types[column].removeprefix("large_") == kind, (column, types[column])
        assert [c for c in types if c.startswith("label__")] == [f"label__{c}" for c in classes]
        assert [c for c in types if c.startswith("prob__")] == [f"prob__{c}" for c in classes]
        assert all(
            types[f"label__{c}"] == "uint8" and types[f"prob__{c}"] == "float" for c in classes
        )
        meta = table.schema.metadata
        assert json.loads(meta[b"class_names"]) == classes and meta[b"task"] == b"multilabel"
        assert set(table.column("split").to_pylist()) == {"test", "val"}
        assert MEASURE_KEYS <= set(json.loads((run / "measure.json").read_text()))
        metrics = json.loads((run / "metrics.json").read_text())
        assert {"task", "class_names", "thresholds", "test", "val"} <= set(metrics)
        info = json.loads((run / "meta.json").read_text())
        assert {"git_commit", "versions", "hardware", "seeds", "seconds"} <= set(info)
        if config["variant"] == [{"name": "baseline", "kwargs": {}}]:
            history = pq.read_table(run / "history.parquet").column_names
            assert HISTORY_COLUMNS <= set(history)
            assert "model.safetensors" in names


def test_analysis_never_imports_torch():
    code = "import sys, analysis.tables, analysis.report, analysis.cli, paper_figures; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
