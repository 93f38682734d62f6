"""The one dataset abstraction every reader returns and every other module consumes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

TASKS = ("binary", "multiclass", "multilabel")


class DataError(ValueError):
    """Bad input data: the message names the file, the row or key, what was expected and the fix."""


@dataclass
class CXRDataset:
    """Image ids, a 0/1 label matrix, class names, patients and where the pixels come from.

    ``labels`` is always an (N, C) uint8 matrix: one-hot rows for binary and multi-class
    tasks, any 0/1 pattern for multi-label. Pixels come either from image files
    (``paths``) or from a deterministic generator (``render``), never both; the decode-once
    cache (``bench.data.cache``) turns either into an (N, H, W) uint8 grayscale array.
    ``official_split`` holds "train"/"val"/"test" when the source ships its own split.
    """

    name: str
    task: str
    ids: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    patient_ids: np.ndarray
    paths: list[Path] | None = None
    render: Callable[[np.ndarray, int], np.ndarray] | None = None
    source_key: str = ""
    metadata: pd.DataFrame | None = None
    official_split: np.ndarray | None = None
    rows: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"dataset {self.name!r}: task {self.task!r} is not one of {TASKS}")
        n = len(self.ids)
        if n == 0:
            raise DataError(f"dataset {self.name!r} is empty: no images were found; check the path")
        self.ids = np.asarray(self.ids).astype(str)
        self.patient_ids = np.asarray(self.patient_ids).astype(str)
        self.labels = np.asarray(self.labels, dtype=np.uint8)
        if self.labels.shape != (n, len(self.class_names)):
            raise DataError(
                f"dataset {self.name!r}: labels have shape {self.labels.shape}, "
                f"expected ({n}, {len(self.class_names)})"
            )
        if len(self.patient_ids) != n:
            raise DataError(
                f"dataset {self.name!r}: {len(self.patient_ids)} patient ids for {n} images"
            )
        if (self.paths is None) == (self.render is None):
            raise DataError(f"dataset {self.name!r}: give exactly one of paths or render")
        if self.task != "multilabel" and not np.all(self.labels.sum(1) == 1):
            bad = int(np.flatnonzero(self.labels.sum(1) != 1)[0])
            raise DataError(
                f"dataset {self.name!r}: image {self.ids[bad]!r} has {int(self.labels[bad].sum())} "
                f"labels; a {self.task} task needs exactly one per image"
            )
        _, first = np.unique(self.ids, return_index=True)
        if len(first) != n:
            dup = pd.Series(self.ids).duplicated(keep=False)
            raise DataError(
                f"dataset {self.name!r}: duplicate image ids, e.g. {self.ids[dup.to_numpy()][:3].tolist()}; "
                "every image must appear once"
            )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def targets(self) -> np.ndarray:
        """Class index per image (single-label tasks) or the 0/1 matrix (multi-label)."""
        return self.labels.argmax(1) if self.task != "multilabel" else self.labels

    def where(self, index: int) -> str:
        """Human-readable origin of image ``index`` for error messages (file and CSV row)."""
        origin = str(self.paths[index]) if self.paths is not None else f"generated #{index}"
        row = f" ({self.rows[index]})" if self.rows else ""
        return f"{origin}{row}"
