"""Patient-grouped, stratified train/val/test splits: holdout, k-fold and official.

No patient ever appears in two parts. Stratification works on patients: multi-label
data uses iterative stratification (``iterstrat``) on patient label vectors (a patient's
label is the OR of its images' labels), single-label data sklearn's
``StratifiedGroupKFold`` on the images grouped by patient. Fractions are realised by
cutting the patients into K ≤ 20 stratified folds (steps of at least 5%) and giving each
part whole folds, packed by size; with few patients, or patients holding many images, the
parts can only approximate the fractions. Everything is deterministic for ``protocol.split_seed``.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import StratifiedGroupKFold

from bench.config import ProtocolConfig
from bench.data.dataset import CXRDataset, DataError

PARTS = ("train", "val", "test")
MAX_FOLDS = 20


@dataclass(frozen=True, eq=False)
class Split:
    """Sorted image indices of the train / val / test parts of one fold (0 for holdout)."""

    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def parts(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def content_hash(self, dataset: CXRDataset) -> str:
        """16 hex digits identifying the fold and the image ids of each part."""
        h = hashlib.sha256(f"fold={self.fold}".encode())
        for part, idx in self.parts().items():
            h.update(f"\0{part}\0".encode() + "\0".join(dataset.ids[idx]).encode())
        return h.hexdigest()[:16]


def make_splits(dataset: CXRDataset, protocol: ProtocolConfig) -> list[Split]:
    """Splits for ``protocol``: one for holdout / official, ``protocol.k`` for k-fold.

    k-fold: fold k is the test part; val (``val_fraction`` of the rest) is carved from the
    other folds, also grouped and stratified. Official: ``dataset.official_split`` as given;
    when it has no val part, val is carved from its train part with ``val_fraction``.
    Every split is checked with ``check_no_leak``.
    """
    all_idx = np.arange(len(dataset))
    seed = protocol.split_seed
    if protocol.kind == "holdout":
        train, val, test = _assign(dataset, all_idx, protocol.fractions, _rs(seed, 0))
        splits = [_split(0, train, val, test)]
    elif protocol.kind == "kfold":
        folds = _grouped_folds(dataset, all_idx, protocol.k, _rs(seed, 1))
        splits = []
        for k in range(protocol.k):
            rest = all_idx[folds != k]
            fr = (1 - protocol.val_fraction, protocol.val_fraction)
            train, val = _assign(dataset, rest, fr, _rs(seed, 2, k))
            splits.append(_split(k, train, val, all_idx[folds == k]))
    elif protocol.kind == "official":
        splits = [_official(dataset, protocol)]
    else:  # unreachable: the config validates kind
        raise DataError(f"protocol.kind {protocol.kind!r} is unknown")
    for split in splits:
        check_no_leak(dataset, split)
    return splits


def check_no_leak(dataset: CXRDataset, split: Split) -> None:
    """Raise ``DataError`` if an image or a patient is in two parts of ``split``."""
    parts = split.parts()
    problems = []
    for i, a in enumerate(PARTS):
        for b in PARTS[i + 1 :]:
            images = np.intersect1d(parts[a], parts[b])
            if len(images):
                problems.append(
                    f"{len(images)} image(s) in both {a} and {b}, e.g. {dataset.ids[images[:10]].tolist()}"
                )
            shared = np.intersect1d(dataset.patient_ids[parts[a]], dataset.patient_ids[parts[b]])
            if len(shared):
                problems.append(
                    f"{len(shared)} patient(s) in both {a} and {b}, e.g. {shared[:10].tolist()}"
                )
    if problems:
        raise DataError(
            f"dataset {dataset.name!r}, fold {split.fold}: patient leak between split parts: "
            + "; ".join(problems)
            + ". Fix: use a patient-grouped protocol (holdout/kfold), or correct the official "
            "split or the patient ids so each patient sits in one part"
        )


def split_frame(split: Split, dataset: CXRDataset) -> pd.DataFrame:
    """The split as a table (image_id, patient_id, fold, part), rows in dataset order; the
    store writes it to ``results/<study>/splits/``."""
    idx = np.concatenate(list(split.parts().values()))
    part = np.repeat(PARTS, [len(v) for v in split.parts().values()])
    order = np.argsort(idx, kind="stable")
    return pd.DataFrame(
        {
            "image_id": dataset.ids[idx[order]],
            "patient_id": dataset.patient_ids[idx[order]],
            "fold": np.full(len(idx), split.fold, np.int32),
            "part": part[order],
        }
    )


# --------------------------------------------------------------------------- internals


def _split(fold: int, train: np.ndarray, val: np.ndarray, test: np.ndarray) -> Split:
    return Split(fold, np.sort(train), np.sort(val), np.sort(test))


def _rs(*entropy: int) -> int:
    """A 32-bit random_state for sklearn/iterstrat derived from the split seed and a purpose."""
    return int(np.random.SeedSequence([e % 2**63 for e in entropy]).generate_state(1)[0])


def _official(dataset: CXRDataset, protocol: ProtocolConfig) -> Split:
    if dataset.official_split is None:
        raise DataError(
            f"dataset {dataset.name!r} has no official split; use protocol.kind holdout or "
            "kfold, or a dataset that ships one (cxr_lt CSVs, MedMNIST, a csv 'split' column)"
        )
    where = {p: np.flatnonzero(dataset.official_split == p) for p in PARTS}
    for part in ("train", "test"):
        if not len(where[part]):
            raise DataError(f"dataset {dataset.name!r}: the official split has no {part} images")
    if not len(where["val"]):
        fr = (1 - protocol.val_fraction, protocol.val_fraction)
        where["train"], where["val"] = _assign(
            dataset, where["train"], fr, _rs(protocol.split_seed, 3)
        )
    return _split(0, where["train"], where["val"], where["test"])


def _assign(
    dataset: CXRDataset, idx: np.ndarray, fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """Cut ``idx`` into len(fractions) patient-disjoint, stratified parts of about those sizes.

    The patients are cut into K stratified folds and each part gets a fixed number of whole
    folds (``_fold_counts``); which folds go where is chosen by size (``_pack``), so that
    a patient with many images does not inflate a small part.
    """
    n_groups = len(np.unique(dataset.patient_ids[idx]))
    if n_groups < len(fractions):
        raise DataError(
            f"dataset {dataset.name!r}: {n_groups} patient(s) cannot fill {len(fractions)} split "
            "parts; use more data"
        )
    slots = _fold_counts(fractions, min(MAX_FOLDS, n_groups))
    folds = _grouped_folds(dataset, idx, int(slots.sum()), seed)
    sizes = np.bincount(folds, minlength=int(slots.sum()))
    part_of = _pack(sizes, slots, np.asarray(fractions, float) * len(idx))
    return [idx[part_of[folds] == p] for p in range(len(fractions))]


def _pack(sizes: np.ndarray, slots: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Part of each fold, ``slots[p]`` folds per part, part sizes close to ``targets``.

    Greedy (largest fold first into the part needing the most images per free slot), then
    swaps of two folds between parts while the summed squared relative size error falls.
    """
    part_of = np.empty(len(sizes), int)
    need, free = targets.copy(), slots.copy()
    for fold in np.argsort(-sizes, kind="stable"):
        open_parts = np.flatnonzero(free > 0)
        part = open_parts[np.argmax(need[open_parts] / free[open_parts])]
        part_of[fold], free[part], need[part] = part, free[part] - 1, need[part] - sizes[fold]

    def cost(assign: np.ndarray) -> float:
        filled = np.bincount(assign, weights=sizes, minlength=len(targets))
        return float((((filled - targets) / targets) ** 2).sum())

    best, improved = cost(part_of), True
    while improved:
        improved = False
        for a, b in itertools.combinations(range(len(sizes)), 2):
            if part_of[a] != part_of[b]:
                trial = part_of.copy()
                trial[[a, b]] = part_of[[b, a]]
                if (c := cost(trial)) < best - 1e-12:
                    best, part_of, improved = c, trial, True
    return part_of


def _fold_counts(fractions: tuple[float, ...], max_folds: int) -> np.ndarray:
    """Whole folds per part: the smallest K ≤ max_folds that realises the fractions exactly,
    else K = max_folds with largest-remainder rounding (every part gets at least one fold)."""
    fr = np.asarray(fractions, float)
    for k in range(2, max_folds + 1):
        if np.allclose(fr * k, np.round(fr * k), atol=1e-6) and np.all(np.round(fr * k) >= 1):
            return np.round(fr * k).astype(int)
    k = max(max_folds, len(fr))
    counts = np.floor(fr * k).astype(int)
    counts[np.argsort(-(fr * k - counts))[: k - counts.sum()]] += 1
    while np.any(counts < 1):
        counts[np.argmax(counts)] -= 1
        counts[np.argmin(counts)] += 1
    return counts


def _grouped_folds(dataset: CXRDataset, idx: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold number (0..n_folds-1) for each image in ``idx``; patients never straddle folds."""
    groups, inverse = np.unique(dataset.patient_ids[idx], return_inverse=True)
    if len(groups) < n_folds:
        raise DataError(
            f"dataset {dataset.name!r}: {len(groups)} patient(s) cannot fill {n_folds} folds; "
            "use fewer folds (protocol.k) or more data"
        )
    if dataset.task == "multilabel":
        fold_of_group = np.empty(len(groups), int)
        patient_labels = np.zeros((len(groups), dataset.num_classes), np.uint8)
        np.maximum.at(patient_labels, inverse, dataset.labels[idx])
        # extra columns: "no label" stratifies label-free patients (and keeps y 2-D); the
        # patient's image count in log2 bins (1, 2, 3-4, 5-8, 9+) balances images per fold
        size_bin = np.minimum(np.log2(np.bincount(inverse)).astype(int), 4)
        patient_labels = np.column_stack(
            [patient_labels, patient_labels.sum(1) == 0, np.eye(5, dtype=np.uint8)[size_bin]]
        )
        cv = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for k, (_, test) in enumerate(cv.split(np.zeros(len(groups)), patient_labels)):
            fold_of_group[test] = k
        return fold_of_group[inverse]
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.empty(len(idx), int)
    for k, (_, test) in enumerate(cv.split(np.zeros(len(idx)), dataset.targets()[idx], inverse)):
        folds[test] = k
    return folds
