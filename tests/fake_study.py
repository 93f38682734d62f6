"""A small, schema-conforming study folder with structured random predictions (no torch).

Used by analysis, figure and report tests. Compressed variants are the baseline's logits
plus noise that grows with sparsity, so forgettability and PIEs have something to find.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.store import Store, run_id_for

CLASSES = ["No Finding", "Effusion", "Nodule", "Cardiomegaly", "Hernia"]


def make_fake_study(
    root: Path,
    *,
    seeds: int = 3,
    folds: int = 1,
    sparsities: tuple[float, ...] = (0.5, 0.9),
    n_images: int = 240,
    task: str = "multilabel",
    study: str = "fake",
    rng: int = 0,
) -> Path:
    gen = np.random.default_rng(rng)
    classes = CLASSES if task == "multilabel" else ["Normal", "Pneumonia"]
    c = len(classes)
    prevalence = np.linspace(0.5, 0.08, c)
    if task == "multilabel":
        y = (gen.random((n_images, c)) < prevalence).astype(np.uint8)
    else:
        y = np.eye(c, dtype=np.uint8)[gen.integers(0, c, n_images)]
    ids = np.array([f"img{i:05d}" for i in range(n_images)])
    patients = np.array([f"P{i // 2:05d}" for i in range(n_images)])
    fold_of = np.arange(n_images) % folds
    signal = (2 * y.astype(float) - 1) * 1.5 + gen.normal(0, 1, (n_images, c))
    variants = ["baseline"] + [f"l1_unstructured_global[sparsity={s}]" for s in sparsities]
    store = Store(root / study)
    cells = []
    for seed in range(seeds):
        seed_noise = gen.normal(0, 0.5, (n_images, c))
        for fold in range(folds):
            test = np.flatnonzero(fold_of == fold)
            for v, variant in enumerate(variants):
                sparsity = 0.0 if v == 0 else sparsities[v - 1]
                logits = signal + seed_noise + gen.normal(0, 3 * sparsity**3, (n_images, c))
                logits -= sparsity**3 * np.arange(c)  # rarer classes forgotten first
                probs = 1 / (1 + np.exp(-logits))
                if task != "multilabel":
                    e = np.exp(logits - logits.max(1, keepdims=True))
                    probs = e / e.sum(1, keepdims=True)
                conf = {"study": study, "seed": seed, "fold": fold, "variant": variant}
                run_id = run_id_for(conf)
                cells.append({"run_id": run_id, "seed": seed, "fold": fold, "variant_id": variant})
                run = store.run(run_id)
                frame = {
                    "image_id": ids[test],
                    "patient_id": patients[test],
                    "split": "test",
                    "fold": np.int32(fold),
                    "seed": np.int32(seed),
                    "variant_id": variant,
                }
                frame.update({f"label__{k}": y[test, j] for j, k in enumerate(classes)})
                frame.update(
                    {f"prob__{k}": probs[test, j].astype(np.float32) for j, k in enumerate(classes)}
                )
                meta = {"class_names": json.dumps(classes), "task": task}
                run.json("config.json", conf)
                run.parquet("predictions.parquet", pd.DataFrame(frame), meta)
                run.json(
                    "metrics.json", {"task": task, "class_names": classes, "thresholds": [0.5] * c}
                )
                run.json(
                    "measure.json",
                    {
                        "params": 1000,
                        "nonzero_params": int(1000 * (1 - sparsity)),
                        "sparsity": sparsity,
                        "bytes_dense": 4000,
                        "bytes_sparse": int(125 + 4000 * (1 - sparsity)),
                        "bytes_int8": 1000,
                        "macs": 10_000,
                        "latency": [
                            {
                                "device": "cpu",
                                "batch_size": 1,
                                "p50_ms": 1.0,
                                "p95_ms": 1.2,
                                "threads": 1,
                                "compiled": False,
                            }
                        ],
                        "hardware": {"cpu": "fake"},
                    },
                )
                if v == 0:
                    hist = pd.DataFrame(
                        {
                            "epoch": np.repeat(np.arange(1, 4), 2),
                            "phase": ["train", "val"] * 3,
                            "loss": [0.7, 0.72, 0.5, 0.6, 0.4, 0.58],
                            "accuracy": [0.6, 0.58, 0.7, 0.66, 0.75, 0.7],
                        }
                    )
                    run.parquet("history.parquet", hist)
                run.finish()
    store.write_study(
        {
            "schema": 1,
            "study": study,
            "task": task,
            "class_names": classes,
            "dataset": {
                "name": "fake (synthetic test data)",
                "n_images": n_images,
                "synthetic": True,
            },
            "folds": folds,
            "cells": cells,
            "config": {"study": study},
        }
    )
    return store.root
