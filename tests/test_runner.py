"""Sweeps: pairing, resume, executors giving identical predictions, config changes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from conftest import sorted_predictions as _predictions
from tiny import tiny_config

from bench.runner import run_study, study_status


def test_sweep_is_complete_and_paired(reference):
    cfg, preds = reference
    # 2 seeds x 2 folds x 3 variants; every test image once per (seed, variant)
    assert preds.groupby(["seed", "variant_id"]).size().nunique() == 1
    assert set(preds["variant_id"]) == {
        "baseline",
        "l1_unstructured_global[sparsity=0.5]",
        "dynamic_int8",
    }
    n_images = cfg.dataset.synthetic.n_images
    per = preds[(preds.seed == 0) & (preds.variant_id == "baseline")]
    assert sorted(per["image_id"]) == sorted(set(per["image_id"])) and len(per) == n_images
    table, _ = study_status(cfg.study_dir)
    assert (table["state"] == "done").all() and len(table) == 12


def test_resume_equals_uninterrupted(reference, tmp_path):
    _, expected = reference
    cfg = tiny_config(tmp_path)
    first = run_study(cfg, max_groups=1, progress=False)
    assert first.counts().get("done") == 3 and first.counts().get("pending") == 9
    table, _ = study_status(cfg.study_dir)
    assert (table["state"] == "pending").sum() == 9
    mtimes = {p: p.stat().st_mtime_ns for p in cfg.study_dir.glob("runs/*/DONE")}
    second = run_study(cfg, progress=False)
    assert second.counts() == {"done": 12}
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # done cells not re-run
    pd.testing.assert_frame_equal(_predictions(cfg.study_dir), expected)


def test_dask_local_cluster_gives_identical_predictions(reference, tmp_path):
    _, expected = reference
    cfg = tiny_config(tmp_path, executor={"kind": "dask", "workers": 2, "retries": 0})
    summary = run_study(cfg, progress=False)
    assert summary.failed == [], summary.errors
    pd.testing.assert_frame_equal(_predictions(cfg.study_dir), expected)


def test_slurm_executor_in_local_mode(reference, tmp_path):
    _, expected = reference
    cfg = tiny_config(
        tmp_path, seeds=[0], executor={"kind": "slurm", "slurm": {"cluster": "local"}}
    )
    summary = run_study(cfg, progress=False)
    assert summary.failed == [], summary.errors
    pd.testing.assert_frame_equal(
        _predictions(cfg.study_dir), expected[expected.seed == 0].reset_index(drop=True)
    )


def test_changed_config_gets_new_run_ids_and_keeps_old(reference, tmp_path):
    cfg = tiny_config(tmp_path, seeds=[0], variants=[{"name": "baseline"}])
    run_study(cfg, progress=False)
    old = {p.parent.name for p in cfg.study_dir.glob("runs/*/DONE")}
    changed = tiny_config(
        tmp_path,
        seeds=[0],
        variants=[{"name": "baseline"}],
        training={"epochs": 1, "batch_size": 32, "threads": 1, "max_batches_per_epoch": 2},
    )
    run_study(changed, progress=False)
    new = {p.parent.name for p in cfg.study_dir.glob("runs/*/DONE")}
    assert old < new and len(new) == 2 * len(old)


def test_failed_cell_keeps_traceback_and_sweep_goes_on(tmp_path, monkeypatch):
    from bench.compress._registry import _VARIANTS

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure in a variant")

    info = _VARIANTS["dynamic_int8"]
    monkeypatch.setitem(
        _VARIANTS, "dynamic_int8", type(info)(info.name, info.family, broken, info.hyper)
    )
    cfg = tiny_config(tmp_path, seeds=[0])
    summary = run_study(cfg, progress=False)
    assert len(summary.failed) == 2  # dynamic_int8 in both folds
    errors = list(cfg.study_dir.glob("runs/*/error.txt"))
    assert len(errors) == 2 and "simulated failure" in errors[0].read_text()
    assert summary.counts()["done"] == 4
    meta = json.loads(next(cfg.study_dir.glob("runs/*/meta.json")).read_text())
    assert meta["versions"]["torch"] and "hardware" in meta and "seeds" in meta
    assert np.isfinite(meta["seconds"])
