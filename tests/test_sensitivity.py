"""Per-layer sensitivity: validation split only, table shape, derived per-layer sparsities."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tiny import tiny_config

import bench.sensitivity as sensitivity
from bench.config import parse_config
from bench.runner import prepare


def test_sensitivity_uses_validation_only_and_derives_sparsities(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, seeds=[0])
    seen = []
    real = sensitivity.predict

    def spy(model, pixels, index, **kw):
        seen.append(np.asarray(index))
        return real(model, pixels, index, **kw)

    monkeypatch.setattr(sensitivity, "predict", spy)
    table = sensitivity.layer_sensitivity(cfg, amounts=(0.5, 0.9), progress=False)
    _, data = prepare(cfg)
    val = set(data.splits[0].val.tolist())
    assert seen and all(set(idx.tolist()) <= val for idx in seen)  # never the test split
    layers = table["layer"].unique()
    assert len(table) == len(layers) * 2 * 2 and {"l1_unstructured", "structured"} == set(
        table["method"]
    )
    assert table["baseline_value"].nunique() == 1
    # derived: the largest amount whose drop is within the tolerance, per layer (by hand)
    fake = pd.DataFrame(
        {
            "layer": ["a", "a", "b", "b"],
            "method": "l1_unstructured",
            "amount": [0.5, 0.9, 0.5, 0.9],
            "value": [0.80, 0.70, 0.84, 0.83],
            "baseline_value": 0.84,
            "params": [100, 100, 300, 300],
        }
    )
    derived = sensitivity.derive_sparsities(fake, max_drop=0.05)
    assert derived == {"a": 0.5, "b": 0.9}
    assert sensitivity.overall_sparsity(fake, derived) == (100 * 0.5 + 300 * 0.9) / 400
    # the derived assignment is a valid variant for a sweep config
    real_layers = {layer: 0.5 for layer in layers[:3]}
    parse_config(
        {
            "study": "x",
            "variants": [
                {"name": "l1_unstructured_per_layer", "kwargs": {"sparsities": real_layers}}
            ],
        }
    )
    assert (cfg.study_dir / "runs").is_dir()  # the baseline it used is the sweep's own cell
