"""The analysed study: predictions as arrays plus what the tables need around them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.io import PredictionSet, ResultsError, load_metrics, load_prediction_set, read_study

_SINGLE_STEP = re.compile(r"^(?P<family>[a-z0-9_]+)\[sparsity=(?P<s>[0-9.]+)\]$")


@dataclass
class Study:
    """A finished study loaded once: predictions as arrays, validation thresholds per run
    (seed, fold, variant), and the study record."""

    root: Path
    info: dict
    ps: PredictionSet
    thresholds: dict[tuple[int, int, str], np.ndarray]
    folds: list[int]

    @property
    def kfold(self) -> bool:
        return self.info.get("config", {}).get("protocol", {}).get("kind") == "kfold"

    def fold_mask(self, fold: int) -> np.ndarray:
        return self.ps.fold == fold

    def thresholds_per_image(self, s: int, v: int) -> np.ndarray:
        """(N, C) thresholds of the run that predicted each image (its fold's model)."""
        seed, variant = self.ps.seeds[s], self.ps.variants[v]
        out = np.full(self.ps.y.shape, 0.5)
        for fold in self.folds:
            t = self.thresholds.get((seed, fold, variant))
            if t is not None and len(t) == out.shape[1]:
                out[self.fold_mask(fold)] = t
        return out

    def train_positives(self) -> np.ndarray:
        """Positive training images per class (first fold), for log frequency."""
        positives = self.info.get("positives")
        if positives:
            return np.asarray(positives[0]["train"], dtype=float)
        return self.ps.y.sum(0).astype(float)


def load_study(study_dir: Path | str) -> Study:
    root = Path(study_dir)
    info = read_study(root)
    ps = load_prediction_set(root)
    if "baseline" not in ps.variants:
        raise ResultsError(f"{root}: no finished baseline cell; every comparison needs one")
    metrics = load_metrics(root)
    thresholds = {
        (int(r.seed), int(r.fold), r.variant_id): np.asarray(r.thresholds, dtype=float)
        for r in metrics.itertuples()
        if isinstance(r.thresholds, list)
    }
    return Study(root, info, ps, thresholds, sorted(np.unique(ps.fold).tolist()))


def correct_per_image(y: np.ndarray, p: np.ndarray, t: np.ndarray, task: str) -> np.ndarray:
    """Per image: is the prediction right? (exact match of all labels for multi-label)."""
    if task == "multilabel":
        return ((p >= t) == y.astype(bool)).all(-1)
    if task == "binary":
        return (p[..., 1] >= t[..., 1]) == y[:, 1].astype(bool)
    return p.argmax(-1) == y.argmax(-1)


def decisions(study: Study, v: int) -> np.ndarray:
    """Per seed, each image's predicted label(s) at its own run's validation thresholds."""
    ps = study.ps
    runs = []
    for s in range(len(ps.seeds)):
        p, t = ps.probs[s, v], study.thresholds_per_image(s, v)
        if ps.task == "multilabel":
            runs.append((p >= t).astype(np.uint8))
        elif ps.task == "binary":
            runs.append((p[:, 1] >= t[:, 1]).astype(np.int64))
        else:
            runs.append(p.argmax(-1))
    return np.stack(runs)


def parse_variant(variant: str) -> tuple[str, float | None]:
    """(family, sparsity) of a variant id; sparsity None unless it is a one-step grid variant."""
    if variant == "baseline":
        return "baseline", 0.0
    m = _SINGLE_STEP.match(variant)
    if m:
        return m["family"], float(m["s"])
    return variant.split("[")[0].split("+")[0], None
