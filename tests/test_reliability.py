"""Faults: kill -9 at several moments, a Dask worker dying, two sweeps on one folder,
a diverging cell, a full disk — none of them loses or corrupts finished results."""

from __future__ import annotations

import errno
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml
from conftest import sorted_predictions
from tiny import tiny_config

from bench.compress._registry import _VARIANTS, VariantInfo
from bench.runner import run_study
from bench.store import Store

ROOT = Path(__file__).resolve().parents[1]


def _config_file(tmp_path: Path, **overrides) -> tuple[Path, object]:
    cfg = tiny_config(tmp_path, **overrides)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path, cfg


def _run_cli(config: Path, env_extra: dict | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **popen,
    )


def _done_cells(cfg) -> set[str]:
    return {p.parent.name for p in cfg.study_dir.glob("runs/*/DONE")}


def _assert_no_partial_done(cfg) -> None:
    """Every done-marker lists files that exist and match (nothing half-written is done)."""
    assert Store(cfg.study_dir).verify() == []


def test_kill_9_at_write_points_and_random_moments_then_resume(reference, tmp_path):
    _, expected = reference
    config, cfg = _config_file(tmp_path, seeds=[0])
    # Kill -9 just before an artefact's rename (training checkpoint, prediction writing, the
    # done-marker that follows metric writing), once each, then at a random moment.
    faults = ["model.safetensors", "predictions.parquet", "DONE"]
    for i, name in enumerate(faults):
        marker = tmp_path / f"fault{i}"
        proc = _run_cli(config, {"CXRBENCH_FAULT": f"{name}:before_rename:once={marker}"})
        proc.wait(timeout=120)
        assert proc.returncode == -9, proc.stderr.read().decode()[-2000:]
        assert marker.exists()
        _assert_no_partial_done(cfg)
    proc = _run_cli(config)
    time.sleep(random.Random(0).uniform(2.0, 6.0))  # and once at a random moment
    proc.kill()
    proc.wait(timeout=60)
    _assert_no_partial_done(cfg)
    final = _run_cli(config)
    assert final.wait(timeout=300) == 0, final.stderr.read().decode()[-2000:]
    assert len(_done_cells(cfg)) == 6
    _assert_no_partial_done(cfg)
    assert not list(cfg.study_dir.glob("runs/*/.*.tmp"))  # leftovers of killed attempts cleaned
    got = sorted_predictions(cfg.study_dir)
    pd.testing.assert_frame_equal(got, expected[expected.seed == 0].reset_index(drop=True))


def test_dask_worker_killed_mid_cell_is_retried(reference, tmp_path, monkeypatch):
    _, expected = reference
    marker = tmp_path / "worker-killed"
    # The first worker that gets to writing predictions dies with SIGKILL (env is inherited
    # by the LocalCluster's worker processes); Dask reschedules the group elsewhere.
    monkeypatch.setenv("CXRBENCH_FAULT", f"predictions.parquet:before_rename:once={marker}")
    cfg = tiny_config(tmp_path, seeds=[0], executor={"kind": "dask", "workers": 2, "retries": 2})
    summary = run_study(cfg, progress=False)
    assert marker.exists(), "the fault never fired"
    assert summary.failed == [], summary.errors
    got = sorted_predictions(cfg.study_dir)
    pd.testing.assert_frame_equal(got, expected[expected.seed == 0].reset_index(drop=True))


def test_two_sweeps_on_one_folder_never_write_a_cell_twice(reference, tmp_path):
    _, expected = reference
    config, cfg = _config_file(tmp_path, seeds=[0, 1])
    procs = [_run_cli(config) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    # The sweep that found cells claimed by the other skipped them; run once more to be sure
    # everything is done, then check that each cell was started exactly once.
    assert _run_cli(config).wait(timeout=300) == 0
    assert len(_done_cells(cfg)) == 12
    for log in cfg.study_dir.glob("runs/*/log.txt"):
        starts = [line for line in log.read_text().splitlines() if " start " in line]
        assert len(starts) == 1, (log, starts)
    pd.testing.assert_frame_equal(sorted_predictions(cfg.study_dir), expected)


def test_diverging_cell_fails_clearly_and_the_sweep_goes_on(tmp_path, monkeypatch):
    def nan_then_finetune(model, *, seed, context):
        for param in model.parameters():
            param.data.fill_(float("nan"))
        return context.finetune(model, 1)

    monkeypatch.setitem(
        _VARIANTS, "nan_finetune", VariantInfo("nan_finetune", "test", nan_then_finetune, {})
    )
    cfg = tiny_config(
        tmp_path, seeds=[0], variants=[{"name": "baseline"}, {"name": "nan_finetune"}]
    )
    summary = run_study(cfg, progress=False)
    assert len(summary.failed) == 2 and summary.counts()["done"] == 2
    for run_id in summary.failed:
        error = (cfg.study_dir / "runs" / run_id / "error.txt").read_text()
        assert "TrainingDiverged" in error and "lower" in error.lower()
        assert not (cfg.study_dir / "runs" / run_id / "DONE").exists()


def test_disk_full_fails_the_cell_cleanly(tmp_path, monkeypatch):
    real = pq.write_table

    def full_disk(table, where, *args, **kwargs):
        if "predictions.parquet" in str(getattr(where, "name", where)):
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        return real(table, where, *args, **kwargs)

    cfg = tiny_config(tmp_path, seeds=[0])
    monkeypatch.setattr(pq, "write_table", full_disk)
    summary = run_study(cfg, progress=False)
    assert summary.counts() == {"failed": 6}  # baseline failed, so its variants too
    assert not list(cfg.study_dir.glob("runs/*/DONE"))
    assert not list(cfg.study_dir.glob("runs/*/.*.tmp"))
    assert "No space left" in next(cfg.study_dir.glob("runs/*/error.txt")).read_text()
    monkeypatch.setattr(pq, "write_table", real)
    assert run_study(cfg, progress=False).counts() == {"done": 6}


def test_verify_names_a_tampered_artefact(reference, capsys):
    from bench.cli import main

    cfg, _ = reference
    assert main(["verify", str(cfg.study_dir)]) == 0
    metrics = next(cfg.study_dir.glob("runs/*/metrics.json"))
    original = metrics.read_bytes()
    try:
        data = json.loads(original)
        data["tampered"] = True
        metrics.write_text(json.dumps(data))
        assert main(["verify", str(cfg.study_dir)]) == 1
        assert str(metrics) in capsys.readouterr().out
    finally:
        metrics.write_bytes(original)
