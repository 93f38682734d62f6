"""The store: atomic writes, done-markers with checksums, claims, verify."""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest

from bench.store import DONE, Store, atomic_write, run_id_for


def test_run_id_is_stable_and_config_sensitive():
    a = {"study": "s", "seed": 0, "variant": [{"name": "baseline", "kwargs": {}}]}
    assert run_id_for(a) == run_id_for(json.loads(json.dumps(a)))  # same content, same id
    assert run_id_for(a) == run_id_for(dict(reversed(list(a.items()))))  # key order irrelevant
    assert run_id_for(a) != run_id_for({**a, "seed": 1})


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("old")

    def explode(fh):
        fh.write(b"partial")
        raise OSError(28, "No space left on device")  # simulated disk full

    with pytest.raises(OSError):
        atomic_write(path, explode)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind


def test_done_marker_written_last_and_verified(tmp_path):
    store = Store(tmp_path / "study")
    run = store.run("abc")
    run.json("metrics.json", {"auroc": 0.9})
    run.parquet("predictions.parquet", pd.DataFrame({"image_id": ["a"], "prob__x": [0.5]}))
    assert not store.is_done("abc")
    run.finish()
    assert store.is_done("abc")
    marker = json.loads((run.path / DONE).read_text())
    assert set(marker["files"]) == {"metrics.json", "predictions.parquet"}
    assert store.verify() == []
    (run.path / "metrics.json").write_text('{"auroc": 1.0}')
    (problem,) = store.verify()
    assert "metrics.json" in problem and "checksum mismatch" in problem
    (run.path / "predictions.parquet").unlink()
    assert any("missing" in p for p in store.verify())


def test_claims_exclusive_and_stale_claims_recovered(tmp_path):
    store = Store(tmp_path / "study")
    assert store.claim("r1", "alice")
    assert store.claim("r1", "alice")  # re-entrant for the same owner
    assert not store.claim("r1", "bob")
    assert store.state("r1") == "running"
    claim = store.runs / "r1" / "CLAIM"
    record = json.loads(claim.read_text())
    record["heartbeat"] = time.time() - 3600  # owner died an hour ago
    claim.write_text(json.dumps(record))
    assert store.state("r1") == "pending"
    assert store.claim("r1", "bob")
    store.release("r1", "alice")  # not alice's any more: untouched
    assert store.read_claim("r1")["owner"] == "bob"
    store.release("r1", "bob")
    assert not claim.exists()


def test_failed_state(tmp_path):
    store = Store(tmp_path / "study")
    store.run("r2").fail("Traceback ...\nValueError: boom")
    assert store.state("r2") == "failed"
    assert store.state("never") == "pending"
    assert os.path.exists(store.runs / "r2" / "error.txt")
