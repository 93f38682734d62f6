"""Dataset summaries for ``cxrbench data describe``: class counts per split part and a bar chart."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.data.dataset import CXRDataset
from bench.data.splits import Split


def describe(dataset: CXRDataset, splits: Sequence[Split] = ()) -> pd.DataFrame:
    """One row per (fold, part, class): positives, images, prevalence, patients in the part
    and patients with the class. The whole dataset is part ``all`` with fold -1."""
    groups = [(-1, "all", np.arange(len(dataset)))]
    groups += [(s.fold, part, idx) for s in splits for part, idx in s.parts().items()]
    rows = []
    for fold, part, idx in groups:
        labels = dataset.labels[idx]
        patients = dataset.patient_ids[idx]
        for j, name in enumerate(dataset.class_names):
            positive = labels[:, j] == 1
            rows.append(
                {
                    "fold": fold,
                    "part": part,
                    "class": name,
                    "positives": int(positive.sum()),
                    "images": len(idx),
                    "prevalence": float(positive.mean()) if len(idx) else float("nan"),
                    "patients": len(np.unique(patients)),
                    "positive_patients": len(np.unique(patients[positive])),
                }
            )
    return pd.DataFrame(rows)


def plot_class_distribution(dataset: CXRDataset, path: Path) -> Figure:
    """Bar chart of positive images per class (log scale when long-tailed), saved as PNG;
    returns the figure. The title says "synthetic data" for the SynthCXR dataset."""
    counts = dataset.labels.sum(0).astype(int)
    order = np.argsort(counts)
    fig = Figure(figsize=(7, 0.3 * dataset.num_classes + 1.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.barh([dataset.class_names[j] for j in order], counts[order], color="#4c72b0")
    if counts.min() > 0 and counts.max() / counts.min() > 20:
        ax.set_xscale("log")
    for y, j in enumerate(order):
        ax.annotate(f" {counts[j]}", (max(counts[j], 1), y), va="center", fontsize=8)
    ax.set_xlabel("positive images")
    kind = "synthetic data, " if dataset.name.startswith("synthcxr") else ""
    n_patients = len(np.unique(dataset.patient_ids))
    ax.set_title(f"{dataset.name} ({kind}{len(dataset)} images, {n_patients} patients)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.png")
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return fig
