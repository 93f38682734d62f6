"""Readers: one function per on-disk format, each returning a validated ``CXRDataset``.

Every reader checks its input and raises ``DataError`` naming the file, the row (CSV rows
are counted from 1, the header excluded) and the fix: missing image files, missing
columns, label values other than 0/1, duplicate ids, empty datasets. A class without
positive images in an official split part (or in the whole dataset when there is no
official split) is a warning or an error, per ``DatasetConfig.missing_positives``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from bench.config import DatasetConfig
from bench.data.cache import to_gray_array
from bench.data.dataset import CXRDataset, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
PARTS = ("train", "val", "test")

# NIH ChestX-ray14: the 14 findings in the order of the dataset paper (Wang et al. 2017,
# also CheXNet's), then "No Finding". Names as spelt in Data_Entry_2017*.csv.
NIH_CLASSES = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
    "No Finding",
)

# Columns of the NIH-CXR-LT / MIMIC-CXR-LT label CSVs that are not classes.
CXR_LT_NON_LABEL = frozenset(
    {"id", "path", "subject_id", "study_id", "dicom_id", "split", "Unnamed: 0", "ViewPosition"}
)


class DataWarning(UserWarning):
    """Usable but suspicious data, e.g. a class with no positive image in a split part."""


def load_dataset(cfg: DatasetConfig, task: str) -> CXRDataset:
    """Read the dataset ``cfg`` describes, for ``task`` (binary / multiclass / multilabel)."""
    if cfg.kind == "synthetic":
        from bench.data.synthetic import make_synthetic

        ds = make_synthetic(cfg.synthetic.n_images, task, cfg.synthetic.seed)
    elif cfg.kind == "imagefolder":
        ds = read_imagefolder(_need_root(cfg), task)
    elif cfg.kind == "cxr_lt":
        ds = read_cxr_lt(cfg.files, _need_root(cfg), task, cfg.columns.label_columns)
    elif cfg.kind == "nih_data_entry":
        ds = read_nih_data_entry(_need_root(cfg), task, cfg.files)
    elif cfg.kind == "medmnist":
        ds = read_medmnist(_npz_path(cfg), task, cfg.columns.label_columns)
    elif cfg.kind == "csv":
        ds = read_csv_dataset(cfg, task)
    else:  # unreachable: the config validates kind
        raise DataError(f"dataset.kind {cfg.kind!r} has no reader")
    check_positives(ds, cfg.missing_positives)
    return ds


# --------------------------------------------------------------------------- formats


def read_imagefolder(root: Path, task: str) -> CXRDataset:
    """One subfolder of ``root`` per class (sorted names = class order), images anywhere below.

    Single-label only. An ImageFolder has no patient information, so the patient id is the
    image id: patient-grouped splits and leak checks are then per image, and images of one
    patient may end up in different parts without anyone noticing.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: ImageFolder root not found; set dataset.root to a folder")
    if task == "multilabel":
        raise DataError(
            f"{root}: an ImageFolder holds one class per image; use task binary or multiclass, "
            "or a CSV dataset (kind: csv) for multi-label data"
        )
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"{root}: no class subfolders found; put each class's images in root/<class>/"
        )
    if task == "binary" and len(classes) != 2:
        raise DataError(
            f"{root}: a binary task needs 2 class folders, found {len(classes)}: {classes}"
        )
    paths, targets = [], []
    for c, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if _is_image(p))
        paths += found
        targets += [c] * len(found)
    if not paths:
        raise DataError(
            f"{root}: the class folders {classes} hold no images ({', '.join(IMAGE_SUFFIXES)}); "
            "check dataset.root"
        )
    ids = [p.relative_to(root).as_posix() for p in paths]
    return CXRDataset(
        name=f"imagefolder:{root.name}",
        task=task,
        ids=np.array(ids),
        labels=_one_hot(np.array(targets), len(classes)),
        class_names=classes,
        patient_ids=np.array(ids),
        paths=paths,
        source_key=f"imagefolder:{root.resolve()}",
    )


def read_cxr_lt(
    files: dict[str, Path], root: Path, task: str, label_columns: list[str] | None = None
) -> CXRDataset:
    """NIH-CXR-LT / MIMIC-CXR-LT: one label CSV per official split part, images under ``root``.

    ``files`` maps train/val/test to CSVs. The image column is ``id`` (NIH) or ``path``
    (MIMIC); every other column not in ``CXR_LT_NON_LABEL`` is a 0/1 class column (or give
    ``label_columns``). The patient is ``subject_id`` when present, else read from the
    image name (NIH ``00000001_000.png`` → ``00000001``; MIMIC ``.../p10000032/...`` →
    ``p10000032``); when neither works the patient is the image (leak checks per image).
    """
    bad = sorted(set(files) - set(PARTS))
    if bad or not files:
        raise DataError(
            f"dataset.files {sorted(files)}: a cxr_lt dataset needs keys among {PARTS} "
            f"mapping each official split part to its label CSV{f'; unknown: {bad}' if bad else ''}"
        )
    locate = _ImageLocator(root)
    ids, patients, rows, parts, paths, labels = [], [], [], [], [], []
    classes = label_columns
    for part in (p for p in PARTS if p in files):
        csv = Path(files[part])
        df = _read_csv(csv)
        path_col = "id" if "id" in df.columns else "path"
        _require_columns(df, [path_col], csv, "the image column ('id' for NIH, 'path' for MIMIC)")
        if classes is None:
            classes = [c for c in df.columns if c not in CXR_LT_NON_LABEL]
            if not classes:
                raise DataError(f"{csv}: no class columns found among {list(df.columns)}")
        _require_columns(df, classes, csv, "the class columns")
        part_rows = _row_names(csv, len(df))
        part_ids = _str_column(df, path_col, csv, part_rows)
        if "subject_id" in df.columns:
            patients += list(_str_column(df, "subject_id", csv, part_rows))
        else:
            patients += [_patient_from_name(i) for i in part_ids]
        labels.append(_label_matrix(df, classes, csv, part_rows))
        paths += [locate(i, r) for i, r in zip(part_ids, part_rows, strict=True)]
        ids += list(part_ids)
        rows += part_rows
        parts += [part] * len(df)
    if patients == ids:
        warnings.warn(
            f"{', '.join(str(f) for f in files.values())}: no subject_id column and no patient in "
            "the image names; each image counts as its own patient, so leak checks are per image",
            DataWarning,
            stacklevel=2,
        )
    ids_arr, matrix = np.array(ids), np.concatenate(labels)
    _check_unique(ids_arr, rows)
    _check_single_label(matrix, task, rows)
    return CXRDataset(
        name=f"cxr_lt:{Path(root).name}",
        task=task,
        ids=ids_arr,
        labels=matrix,
        class_names=list(classes),
        patient_ids=np.array(patients),
        paths=paths,
        source_key=f"cxr_lt:{Path(root).resolve()}",
        official_split=np.array(parts),
        rows=rows,
    )


def read_nih_data_entry(root: Path, task: str, files: dict[str, Path] | None = None) -> CXRDataset:
    """NIH ChestX-ray14 ``Data_Entry_2017*.csv``: ``Finding Labels`` as ``A|B``; classes ``NIH_CLASSES``.

    The CSV is ``files['labels']`` or the first ``Data_Entry_2017*.csv[.gz]`` under ``root``;
    images are found anywhere below ``root`` (the download unpacks to images_001/images/…).
    ``View Position``, ``Patient Age`` and ``Patient Gender`` go to ``metadata``. When
    ``files`` also names NIH's ``test_list`` (test_list.txt), images listed there form the
    official test part and all others the official train part (no official val part).
    """
    files = files or {}
    root = Path(root)
    if task != "multilabel":
        raise DataError(f"{root}: NIH ChestX-ray14 is multi-label; set task: multilabel")
    csv = Path(files["labels"]) if "labels" in files else _find_data_entry(root)
    df = _read_csv(csv)
    need = ["Image Index", "Finding Labels", "Patient ID"]
    _require_columns(df, need, csv, "the NIH Data_Entry columns")
    rows = _row_names(csv, len(df))
    labels = np.zeros((len(df), len(NIH_CLASSES)), np.uint8)
    col = {c: j for j, c in enumerate(NIH_CLASSES)}
    for i, text in enumerate(df["Finding Labels"].fillna("").astype(str)):
        for finding in (t.strip() for t in text.split("|")):
            if finding not in col:
                raise DataError(
                    f"{rows[i]}: unknown finding {finding!r} in 'Finding Labels'; expected names "
                    f"from {list(NIH_CLASSES)} joined by '|'"
                )
            labels[i, col[finding]] = 1
    ids = df["Image Index"].astype(str).to_numpy()
    _check_unique(ids, rows)
    locate = _ImageLocator(root)
    paths = [locate(i, r) for i, r in zip(ids, rows, strict=True)]
    meta_cols = {"View Position": "view", "Patient Age": "age", "Patient Gender": "sex"}
    metadata = df[[c for c in meta_cols if c in df.columns]].rename(columns=meta_cols)
    official = None
    if "test_list" in files:
        test = set(_read_list(Path(files["test_list"])))
        official = np.where(np.isin(ids, list(test)), "test", "train")
    return CXRDataset(
        name=f"nih:{root.name}",
        task=task,
        ids=ids,
        labels=labels,
        class_names=list(NIH_CLASSES),
        patient_ids=_str_column(df, "Patient ID", csv, rows),
        paths=paths,
        source_key=f"nih_data_entry:{root.resolve()}",
        metadata=metadata.reset_index(drop=True),
        official_split=official,
        rows=rows,
    )


def read_medmnist(npz: Path, task: str, class_names: Sequence[str] | None = None) -> CXRDataset:
    """A MedMNIST ``.npz`` (``{train,val,test}_{images,labels}``), images kept in memory.

    Labels are class indices (multiclass/binary, e.g. pneumoniamnist) or a 0/1 matrix
    (multilabel, e.g. chestmnist). No sample-count checks, so any subset works. Pixels come
    from ``render``: each image converted to grayscale and resized with PIL (bilinear,
    square) by ``bench.data.cache.to_gray_array``, exactly as image files are. Patient id =
    image id (MedMNIST has no patient ids): leak checks are per image.
    """
    npz = Path(npz)
    if not npz.is_file():
        raise DataError(f"{npz}: MedMNIST file not found; set dataset.files.npz to the .npz file")
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    parts = [p for p in PARTS if f"{p}_images" in arrays]
    if not parts:
        raise DataError(
            f"{npz}: no '<part>_images' arrays; found {sorted(arrays)}; expected e.g. train_images"
        )
    images, labels, ids, official, rows = [], [], [], [], []
    for part in parts:
        if f"{part}_labels" not in arrays:
            raise DataError(
                f"{npz}: '{part}_images' has no '{part}_labels' array; found {sorted(arrays)}"
            )
        img, lab = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if img.ndim not in (3, 4) or len(img) != len(lab):
            raise DataError(
                f"{npz}: {part}_images has shape {img.shape} and {part}_labels {lab.shape}; "
                "expected (n, H, W[, 3]) images and n label rows"
            )
        images.append(img)
        labels.append(lab.reshape(len(lab), -1))
        ids += [f"{part}_{i}" for i in range(len(img))]
        official += [part] * len(img)
        rows += [f"{npz.name} {part}_labels[{i}]" for i in range(len(img))]
    lab = np.concatenate(labels)
    if task == "multilabel":
        names = list(class_names) if class_names else [f"class_{j}" for j in range(lab.shape[1])]
        if len(names) != lab.shape[1]:
            raise DataError(
                f"{npz}: labels have {lab.shape[1]} columns but {len(names)} class names were given"
            )
        bad = np.argwhere((lab != 0) & (lab != 1))
        if len(bad):
            i, j = bad[0]
            raise DataError(
                f"{rows[i]}: column {j} has value {lab[i, j]}; multi-label labels must be 0 or 1"
            )
        matrix = lab.astype(np.uint8)
    else:
        if lab.shape[1] != 1:
            raise DataError(
                f"{npz}: labels have {lab.shape[1]} columns; a {task} task needs one class index per image"
            )
        n_classes = len(class_names) if class_names else int(lab.max()) + 1
        names = list(class_names) if class_names else [f"class_{j}" for j in range(n_classes)]
        if lab.min() < 0 or lab.max() >= n_classes:
            i = int(np.flatnonzero((lab[:, 0] < 0) | (lab[:, 0] >= n_classes))[0])
            raise DataError(f"{rows[i]}: class index {lab[i, 0]} outside 0..{n_classes - 1}")
        if task == "binary" and n_classes != 2:
            raise DataError(f"{npz}: a binary task needs 2 classes, the labels have {n_classes}")
        matrix = _one_hot(lab[:, 0].astype(int), n_classes)
    offsets = np.cumsum([0] + [len(x) for x in images])
    stat = npz.stat()

    def render(indices: np.ndarray, size: int) -> np.ndarray:
        out = np.empty((len(indices), size, size), np.uint8)
        for k, i in enumerate(np.asarray(indices)):
            p = int(np.searchsorted(offsets, i, side="right")) - 1
            out[k] = to_gray_array(
                Image.fromarray(np.ascontiguousarray(images[p][i - offsets[p]])), size
            )
        return out

    return CXRDataset(
        name=f"medmnist:{npz.stem}",
        task=task,
        ids=np.array(ids),
        labels=matrix,
        class_names=names,
        patient_ids=np.array(ids),
        render=render,
        source_key=f"medmnist:{npz.resolve()}:{stat.st_mtime_ns}:{stat.st_size}",
        official_split=np.array(official),
        rows=rows,
    )


def read_csv_dataset(cfg: DatasetConfig, task: str) -> CXRDataset:
    """A generic label CSV (``files['labels']``) with paths relative to ``root`` (or the CSV's folder).

    Labels come from 0/1 ``columns.label_columns`` or from ``columns.label_column`` holding
    the class name (``A|B`` for several classes in a multi-label task; classes sorted).
    The patient is ``columns.patient_column`` when given, else the image (leak checks per
    image). A column named ``split`` (train/val/test) becomes the official split.
    """
    if "labels" not in cfg.files:
        raise DataError("dataset.files.labels: a csv dataset needs the path of its label CSV")
    csv = Path(cfg.files["labels"])
    root = Path(cfg.root) if cfg.root is not None else csv.parent
    cols = cfg.columns
    if (cols.label_columns is None) == (cols.label_column is None):
        raise DataError(
            f"{csv}: set exactly one of dataset.columns.label_columns (0/1 columns) or "
            "dataset.columns.label_column (one column holding the class name)"
        )
    df = _read_csv(csv)
    need = [cols.path_column] + (cols.label_columns or [cols.label_column])
    need += [cols.patient_column] if cols.patient_column else []
    _require_columns(df, need, csv, "the columns named in dataset.columns")
    rows = _row_names(csv, len(df))
    ids = _str_column(df, cols.path_column, csv, rows)
    if cols.label_columns is not None:
        classes = list(cols.label_columns)
        labels = _label_matrix(df, classes, csv, rows)
    else:
        names = _str_column(df, cols.label_column, csv, rows)
        split_names = [n.split("|") if task == "multilabel" else [n] for n in names]
        classes = sorted({c for ns in split_names for c in ns})
        index = {c: j for j, c in enumerate(classes)}
        labels = np.zeros((len(df), len(classes)), np.uint8)
        for i, ns in enumerate(split_names):
            labels[i, [index[c] for c in ns]] = 1
        if task == "binary" and len(classes) != 2:
            raise DataError(
                f"{csv}: a binary task needs 2 classes in '{cols.label_column}', found {classes}"
            )
    _check_unique(ids, rows)
    _check_single_label(labels, task, rows)
    official = None
    if "split" in df.columns:
        official = df["split"].astype(str).to_numpy()
        bad = np.flatnonzero(~np.isin(official, PARTS))
        if len(bad):
            raise DataError(
                f"{rows[bad[0]]}: split value {str(official[bad[0]])!r}; expected one of {PARTS}"
            )
    locate = _ImageLocator(root)
    return CXRDataset(
        name=f"csv:{csv.stem}",
        task=task,
        ids=ids,
        labels=labels,
        class_names=classes,
        patient_ids=_str_column(df, cols.patient_column, csv, rows) if cols.patient_column else ids,
        paths=[locate(i, r) for i, r in zip(ids, rows, strict=True)],
        source_key=f"csv:{root.resolve()}",
        official_split=official,
        rows=rows,
    )


# --------------------------------------------------------------------------- checks


def check_positives(ds: CXRDataset, policy: str = "warn") -> None:
    """Warn (policy 'warn') or raise (policy 'error') when a class has no positive image
    in an official split part, or in the whole dataset when it has no official split."""
    groups = (
        {p: ds.official_split == p for p in PARTS if np.any(ds.official_split == p)}
        if ds.official_split is not None
        else {"the whole dataset": np.ones(len(ds), bool)}
    )
    empty = [
        f"{ds.class_names[j]!r} in {part}"
        for part, mask in groups.items()
        for j in np.flatnonzero(ds.labels[mask].sum(0) == 0)
    ]
    if not empty:
        return
    msg = (
        f"dataset {ds.name!r}: no positive images for {', '.join(empty)}; metrics for such a "
        "class are undefined there. Fix: drop the class (columns.label_columns) or use data "
        "that has positives; dataset.missing_positives: warn allows it"
    )
    if policy == "error":
        raise DataError(msg)
    warnings.warn(msg, DataWarning, stacklevel=2)


def _check_unique(ids: np.ndarray, rows: list[str]) -> None:
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        first = str(ids[dup][0])
        where = [rows[i] for i in np.flatnonzero(ids == first)]
        raise DataError(
            f"duplicate image id {first!r} at {', '.join(where)} ({int(dup.sum())} rows share an id); "
            "every image must appear once: remove the repeated rows"
        )


def _check_single_label(labels: np.ndarray, task: str, rows: list[str]) -> None:
    if task == "multilabel":
        return
    bad = np.flatnonzero(labels.sum(1) != 1)
    if len(bad):
        raise DataError(
            f"{rows[bad[0]]}: {int(labels[bad[0]].sum())} positive classes; a {task} task needs "
            "exactly one per row. Fix: use task multilabel or correct the labels"
        )


# --------------------------------------------------------------------------- helpers


class _ImageLocator:
    """Finds image files: ``root/<name>`` first, else by file name anywhere below ``root``
    (searched once, lazily). A missing file raises ``DataError`` naming the CSV row."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._by_name: dict[str, Path] | None = None

    def __call__(self, name: str, row: str) -> Path:
        path = Path(name) if Path(name).is_absolute() else self.root / name
        if path.is_file():
            return path
        if self._by_name is None:
            self._by_name = {}
            for folder, dirs, files in os.walk(self.root):
                dirs.sort()
                for f in sorted(files):
                    self._by_name.setdefault(f, Path(folder) / f)
        found = self._by_name.get(Path(name).name)
        if found is None:
            raise DataError(
                f"{row}: image {name!r} not found under {self.root} (looked at {path} and "
                "searched all subfolders). Fix: point dataset.root at the image folder, "
                "download the missing images, or remove the row"
            )
        return found


def _need_root(cfg: DatasetConfig) -> Path:
    if cfg.root is None:
        raise DataError(f"dataset.root: a {cfg.kind} dataset needs the folder holding its images")
    return Path(cfg.root)


def _npz_path(cfg: DatasetConfig) -> Path:
    if "npz" in cfg.files:
        return Path(cfg.files["npz"])
    if cfg.root is not None and Path(cfg.root).suffix == ".npz":
        return Path(cfg.root)
    raise DataError("dataset.files.npz: a medmnist dataset needs the path of its .npz file")


def _find_data_entry(root: Path) -> Path:
    found = sorted(root.rglob("Data_Entry_2017*.csv*")) if root.is_dir() else []
    if not found:
        raise DataError(
            f"{root}: no Data_Entry_2017*.csv found; set dataset.files.labels to NIH's metadata CSV"
        )
    return found[0]


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: label file not found; check dataset.files")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(
            f"{path}: not a readable CSV ({exc}); expected a header row and one row per image"
        ) from None
    if df.empty:
        raise DataError(f"{path}: the CSV has no rows; the dataset would be empty")
    return df


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: list file not found; check dataset.files")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _require_columns(df: pd.DataFrame, cols: Sequence[str], csv: Path, what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(
            f"{csv}: missing column(s) {missing} ({what}); the file has columns {list(df.columns)}. "
            "Fix: rename the columns or set dataset.columns"
        )


def _row_names(csv: Path, n: int) -> list[str]:
    return [f"{csv.name} row {i + 1}" for i in range(n)]


def _str_column(df: pd.DataFrame, col: str, csv: Path, rows: list[str]) -> np.ndarray:
    values = df[col]
    if values.isna().any():
        i = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"{rows[i]}: empty value in column '{col}'; every row needs one")
    return values.astype(str).to_numpy()


def _label_matrix(df: pd.DataFrame, cols: Sequence[str], csv: Path, rows: list[str]) -> np.ndarray:
    raw = df[list(cols)]
    num = raw.apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = np.argwhere(~np.isin(num, (0.0, 1.0)))
    if len(bad):
        i, j = bad[0]
        raise DataError(
            f"{rows[i]}, column '{cols[j]}': value {raw.iat[i, j]!r}; labels must be 0 or 1 "
            f"({len(bad)} bad value(s) in {csv.name}). Fix: map uncertain/missing labels to 0 or 1"
        )
    return num.astype(np.uint8)


def _patient_from_name(name: str) -> str:
    stem = Path(name).name
    if m := re.match(r"^(\d+)_\d+\.\w+$", stem):  # NIH: 00000001_000.png
        return m.group(1)
    if m := re.search(r"(?:^|/)(p\d{6,})/", name):  # MIMIC: files/p10/p10000032/s.../x.jpg
        return m.group(1)
    return name


def _one_hot(targets: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(targets), n_classes), np.uint8)
    out[np.arange(len(targets)), targets] = 1
    return out


def _is_image(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )
