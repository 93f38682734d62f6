"""Per-layer pruning sensitivity (``cxrbench sensitivity``), measured on the validation split.

Each prunable layer of the first (seed, fold) baseline is pruned alone at a grid of amounts,
unstructured (L1 magnitude within the layer) and structured (whole output channels by L1
norm, masked), and the validation metric recorded. Study A measured this on the test set,
which leaks the test set into any choice made from it; cxrbench never touches test here.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.nn.utils import prune

from bench.compress.prune import prune_targets_named
from bench.config import StudyConfig
from bench.metrics import classification_metrics
from bench.runner import GroupWorker, plan, prepare
from bench.store import atomic_write
from bench.train import predict

METHODS = {
    "l1_unstructured": lambda amount: prune.L1Unstructured(amount),
    "structured": lambda amount: prune.LnStructured(amount, n=1, dim=0),
}


def layer_sensitivity(
    cfg: StudyConfig,
    amounts: Sequence[float] = (0.25, 0.5, 0.75, 0.9),
    methods: Sequence[str] = ("l1_unstructured", "structured"),
    metric: str = "auroc_macro",
    progress: bool = True,
) -> pd.DataFrame:
    """One row per (layer, method, amount): the validation metric with that layer pruned."""
    from tqdm import tqdm

    _, data = prepare(cfg)
    group = plan(cfg, len(data.splits))[0]
    worker = GroupWorker(cfg, data, group, owner=f"{socket.gethostname()}:sensitivity")
    model = worker.baseline().eval()  # the sweep's own baseline: trained once, reused
    stored = json.loads((worker.store.runs / group.baseline.run_id / "metrics.json").read_text())
    thresholds = np.asarray(stored["thresholds"], dtype=float)  # chosen on validation
    val = worker.split.val

    def score() -> float:
        p = predict(
            model, worker.pixels, val, task=data.task, batch_size=cfg.training.eval_batch_size
        )
        metrics = classification_metrics(data.labels[val], p, data.task, thresholds=thresholds)
        return float(metrics[metric])

    reference = score()
    layers = prune_targets_named(model)
    rows = []
    with tqdm(
        total=len(layers) * len(methods) * len(amounts), disable=not progress, unit="eval"
    ) as bar:
        for name, layer in layers:
            original = layer.weight.detach().clone()
            for method in methods:
                for amount in amounts:
                    mask = METHODS[method](amount).compute_mask(original, torch.ones_like(original))
                    with torch.no_grad():
                        layer.weight.copy_(original * mask)
                    rows.append(
                        {
                            "layer": name,
                            "method": method,
                            "amount": amount,
                            "metric": metric,
                            "value": score(),
                            "baseline_value": reference,
                            "params": original.numel(),
                        }
                    )
                    bar.update()
            with torch.no_grad():
                layer.weight.copy_(original)
    return pd.DataFrame(rows)


def derive_sparsities(table: pd.DataFrame, max_drop: float) -> dict[str, float]:
    """Per layer, the largest unstructured amount whose validation metric drops ≤ max_drop."""
    rows = table[table["method"] == "l1_unstructured"]
    ok = rows[rows["value"] >= rows["baseline_value"] - max_drop]
    best = ok.groupby("layer")["amount"].max()
    return {layer: float(best[layer]) for layer in rows["layer"].unique() if layer in best.index}


def write_sensitivity(table: pd.DataFrame, cfg: StudyConfig) -> str:
    """tables/sensitivity.csv in the study folder (atomic); returns its path."""
    path = cfg.study_dir / "tables" / "sensitivity.csv"
    data = table.to_csv(index=False).encode()
    atomic_write(path, lambda fh: fh.write(data))
    return str(path)


def overall_sparsity(table: pd.DataFrame, sparsities: dict[str, float]) -> float:
    """Fraction of all prunable weights removed by a per-layer assignment."""
    params = table.drop_duplicates("layer").set_index("layer")["params"]
    return (
        float(sum(params[k] * v for k, v in sparsities.items()) / params.sum())
        if len(params)
        else np.nan
    )
