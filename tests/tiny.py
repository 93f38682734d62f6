"""A shrunken study config (fast_dev_run style) for sweep tests: seconds, not minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.config import StudyConfig, parse_config


def tiny_config(tmp_path: Path, **overrides: Any) -> StudyConfig:
    data: dict[str, Any] = {
        "study": "tiny",
        "output": str(tmp_path / "results"),
        "task": "multilabel",
        "dataset": {
            "kind": "synthetic",
            "synthetic": {"n_images": 160, "seed": 0},
            "image_size": 32,
            "cache_dir": str(tmp_path / "cache"),
            "decode_workers": 1,
        },
        "model": {"arch": "small_resnet"},
        "training": {"epochs": 2, "batch_size": 32, "threads": 1, "max_batches_per_epoch": 2},
        "protocol": {"kind": "kfold", "k": 2, "val_fraction": 0.2},
        "seeds": [0, 1],
        "variants": [
            {"name": "baseline"},
            {"name": "l1_unstructured_global", "kwargs": {"sparsity": 0.5}},
            {"name": "dynamic_int8"},
        ],
        "measure": {"latency": False},
        "executor": {"kind": "local", "workers": 1},
    }
    for key, value in overrides.items():
        section, _, sub = key.partition("__")
        if sub:
            data[section] = {**data[section], sub: value}
        else:
            data[key] = value
    return parse_config(data, "tiny")
