"""The CPU benchmarks (bench/perf) run at tiny sizes and write their JSON and Markdown.

Correctness only: these are not timed tests (no speed is asserted).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.perf import __main__ as perf_main
from bench.perf import analysis_scale, common, compress_latency, train_throughput


def test_interleaved_calls_in_turn_and_drops_finished():
    calls = []

    def make(name, stop_after=None):
        def fn():
            calls.append(name)
            return None if stop_after is not None and calls.count(name) > stop_after else 1.0

        return fn

    out = common.interleaved({"a": make("a"), "b": make("b", stop_after=1)}, rounds=3)
    assert calls == ["a", "b", "a", "b", "a"]  # A/B/A/B, then b dropped after returning None
    assert out == {"a": [1.0, 1.0, 1.0], "b": [1.0]}


def test_write_result_writes_json_and_markdown(tmp_path):
    path = common.write_result("x", {"a": 1}, "# x\n", tmp_path)
    assert json.loads(path.read_text()) == {"a": 1}
    assert (tmp_path / "x.md").read_text() == "# x\n"
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_train_throughput_tiny(tmp_path):
    r = train_throughput.run(
        n_images=8,
        png_size=64,
        image_size=32,
        batch_size=4,
        rounds=1,
        workers=[0],
        variants=["eager", "channels_last"],
        matmul_n=128,
        out_dir=tmp_path,
        work_dir=tmp_path,
    )
    names = [row["candidate"] for row in r["rows"]]
    assert names == ["plain (workers=0)", "suite eager", "suite channels_last"]
    assert r["reference"] == "plain (workers=0)"
    assert all(row["images_per_s"] > 0 for row in r["rows"])
    assert r["rows"][0]["speedup_vs_plain"] == pytest.approx(1.0)
    assert r["train_gflop_per_image"] == pytest.approx(3 * r["forward_gflop_per_image"])
    assert {"speedup_met", "mfu_met"} <= set(r["targets"])
    saved = json.loads((tmp_path / "train_throughput.json").read_text())
    assert saved["hardware"]["cores"] >= 1 and "cpu" in saved["hardware"]
    assert "Hardware:" in (tmp_path / "train_throughput.md").read_text()


def test_train_throughput_rejects_unknown_variant(tmp_path):
    with pytest.raises(ValueError, match="unknown variant"):
        train_throughput.run(variants=["fast"], out_dir=None, work_dir=tmp_path)


def test_compress_latency_tiny(tmp_path):
    r = compress_latency.run(
        archs=["resnet18"],
        batch_sizes=[1],
        warmup=1,
        repeats=1,
        compiled=False,
        eager=["baseline", "structured_channels(0.5)", "dynamic_int8"],
        image_sizes={"resnet18": 32},
        out_dir=tmp_path,
    )
    rows = {row["variant"]: row for row in r["rows"]}
    assert set(rows) == {"baseline", "structured_channels(0.5)", "dynamic_int8"}
    for row in rows.values():
        assert {"macs", "bytes_stored", "p50_ms", "p95_ms", "speedup_vs_eager"} <= set(row)
    assert rows["baseline"]["speedup_vs_eager"] == pytest.approx(1.0)
    assert rows["structured_channels(0.5)"]["macs"] < rows["baseline"]["macs"]
    assert np.isnan(rows["baseline"]["speedup_vs_compiled"])  # no compiled reference run
    assert (tmp_path / "compress.json").is_file() and (tmp_path / "compress.md").is_file()


def test_make_predictions_shapes_and_structure():
    y, p, levels = analysis_scale.make_predictions(3, 5, 4000, 6, seed=1)
    assert y.shape == (4000, 6) and y.dtype == np.uint8
    assert p.shape == (3, 5, 4000, 6) and p.dtype == np.float32
    assert ((p > 0) & (p < 1)).all()
    assert levels[0] == 0.0 and len(levels) == 5
    prevalence = y.mean(0)
    assert prevalence[0] > prevalence[-1]  # long tail
    # informative, and worse at the highest sparsity than dense (sklearn as the reference)
    dense = roc_auc_score(y[:, 0], p[0, 0, :, 0])
    sparse = roc_auc_score(y[:, 0], p[0, -1, :, 0])
    assert dense > 0.7 and sparse < dense


def test_sklearn_loop_matches_sklearn_directly():
    y, p, _ = analysis_scale.make_predictions(2, 2, 500, 3, seed=2)
    auc, ap = analysis_scale.sklearn_loop(y, p, [(1, 0)])
    assert auc[0, 2] == roc_auc_score(y[:, 2], p[1, 0, :, 2])
    assert ap[0, 1] == average_precision_score(y[:, 1], p[1, 0, :, 1])


def test_analysis_scale_tiny(tmp_path):
    r = analysis_scale.run(
        n_seeds=3,
        n_levels=4,
        n_images=3000,
        n_classes=5,
        loop_tables=3,
        n_boot=20,
        out_dir=tmp_path,
    )
    assert r["settings"]["loop_extrapolated"] is True
    assert r["seconds"]["sklearn_loop_all_tables"] == pytest.approx(
        r["seconds"]["sklearn_loop_measured"] * 12 / 3
    )
    assert r["max_abs_diff_vs_sklearn"] <= 1e-9 and r["nan_pattern_equal"]
    for part in ("metrics", "forgetting", "correlations", "pies", "bootstrap", "total"):
        assert r["seconds"][part] >= 0
    assert r["peak_rss_gb"] > 0
    assert (tmp_path / "analysis_scale.md").read_text().startswith("# Study-level analysis")


def test_summary_names_hardware_and_targets(tmp_path):
    r = analysis_scale.run(
        n_seeds=2, n_levels=3, n_images=2000, n_classes=4, loop_tables=2, n_boot=10, out_dir=None
    )
    text = perf_main.summary_markdown({"analysis": r})
    assert text.startswith("# CPU benchmarks") and "Hardware:" in text and "sklearn loop" in text
