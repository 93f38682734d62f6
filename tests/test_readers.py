"""Readers: each format on small files written here, and each bad-input message."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.config import CsvColumns, DatasetConfig
from bench.data.cache import to_gray_array
from bench.data.dataset import DataError
from bench.data.readers import (
    NIH_CLASSES,
    DataWarning,
    load_dataset,
    read_csv_dataset,
    read_cxr_lt,
    read_imagefolder,
    read_medmnist,
    read_nih_data_entry,
)


def write_png(path: Path, value: int = 100, size: tuple[int, int] = (12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)
    return path


# --------------------------------------------------------------------------- ImageFolder


def make_imagefolder(root: Path) -> Path:
    write_png(root / "Normal" / "a.png")
    write_png(root / "Normal" / "b.png")
    Image.new("RGB", (9, 9), (10, 20, 30)).save(root / "Normal" / "c.jpg")
    write_png(root / "Pneumonia" / "sub" / "d.png")
    Image.fromarray(np.full((8, 8), 4000, np.uint16)).save(root / "Pneumonia" / "e.png")
    (root / "Pneumonia" / "notes.txt").write_text("not an image")
    return root


def test_imagefolder_reads_classes_labels_and_patients(tmp_path):
    root = make_imagefolder(tmp_path / "data")
    ds = read_imagefolder(root, "binary")
    assert ds.class_names == ["Normal", "Pneumonia"]
    assert list(ds.ids) == [
        "Normal/a.png",
        "Normal/b.png",
        "Normal/c.jpg",
        "Pneumonia/e.png",
        "Pneumonia/sub/d.png",
    ]
    assert ds.labels.tolist() == [[1, 0]] * 3 + [[0, 1]] * 2
    assert list(ds.patient_ids) == list(ds.ids)  # no patient info: one patient per image
    assert all(p.is_file() for p in ds.paths)
    assert ds.official_split is None and ds.source_key


def test_imagefolder_via_load_dataset(tmp_path):
    root = make_imagefolder(tmp_path / "data")
    ds = load_dataset(DatasetConfig(kind="imagefolder", root=root), "multiclass")
    assert len(ds) == 5 and ds.task == "multiclass"


def test_imagefolder_empty_and_wrong_task(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class subfolders"):
        read_imagefolder(tmp_path / "empty", "binary")
    (tmp_path / "hollow" / "A").mkdir(parents=True)
    (tmp_path / "hollow" / "B").mkdir()
    with pytest.raises(DataError, match="hold no images"):
        read_imagefolder(tmp_path / "hollow", "binary")
    root = make_imagefolder(tmp_path / "data")
    with pytest.raises(DataError, match="one class per image"):
        read_imagefolder(root, "multilabel")
    with pytest.raises(DataError, match="not found"):
        read_imagefolder(tmp_path / "nowhere", "binary")


def test_imagefolder_binary_needs_two_classes(tmp_path):
    root = make_imagefolder(tmp_path / "data")
    write_png(root / "Third" / "x.png")
    with pytest.raises(DataError, match="binary task needs 2 class folders"):
        read_imagefolder(root, "binary")


def test_imagefolder_class_without_images_warns(tmp_path):
    root = make_imagefolder(tmp_path / "data")
    (root / "Empty").mkdir()
    with pytest.warns(DataWarning, match="'Empty' in the whole dataset"):
        load_dataset(DatasetConfig(kind="imagefolder", root=root), "multiclass")
    with pytest.raises(DataError, match="no positive images for 'Empty'"):
        load_dataset(
            DatasetConfig(kind="imagefolder", root=root, missing_positives="error"), "multiclass"
        )


# --------------------------------------------------------------------------- CXR-LT


NIH_LT_CLASSES = ["Atelectasis", "Hernia", "No Finding"]


def make_cxr_lt(tmp_path: Path, subject: bool = True) -> tuple[dict[str, Path], Path]:
    """Three tiny NIH-CXR-LT style CSVs; images under root/images/ (found by search)."""
    root = tmp_path / "nih"
    tables = {
        "train": [
            ("00000001_000.png", 1, 0, 0, 1),
            ("00000001_001.png", 0, 1, 0, 1),
            ("00000002_000.png", 0, 0, 1, 2),
        ],
        "val": [("00000003_000.png", 1, 1, 0, 3), ("00000004_000.png", 0, 0, 1, 4)],
        "test": [("00000005_000.png", 1, 0, 0, 5), ("00000005_001.png", 0, 1, 1, 5)],
    }
    files = {}
    for part, rows in tables.items():
        df = pd.DataFrame(rows, columns=["id", *NIH_LT_CLASSES, "subject_id"])
        if not subject:
            df = df.drop(columns="subject_id")
        files[part] = tmp_path / f"labels_{part}.csv"
        df.to_csv(files[part], index=False)
        for name in df["id"]:
            write_png(root / "images" / name)
    return files, root


def test_cxr_lt_reads_official_split_patients_and_classes(tmp_path):
    files, root = make_cxr_lt(tmp_path)
    ds = read_cxr_lt(files, root, "multilabel")
    assert ds.class_names == NIH_LT_CLASSES
    assert list(ds.official_split) == ["train"] * 3 + ["val"] * 2 + ["test"] * 2
    assert list(ds.patient_ids) == ["1", "1", "2", "3", "4", "5", "5"]
    assert ds.labels[3].tolist() == [1, 1, 0] and ds.labels[6].tolist() == [0, 1, 1]
    assert ds.rows[4] == "labels_val.csv row 2"
    assert ds.paths[0] == root / "images" / "00000001_000.png"


def test_cxr_lt_patient_from_nih_name_without_subject_column(tmp_path):
    files, root = make_cxr_lt(tmp_path, subject=False)
    ds = read_cxr_lt(files, root, "multilabel")
    assert list(ds.patient_ids[:3]) == ["00000001", "00000001", "00000002"]


def test_cxr_lt_mimic_path_column_and_patient_from_folder(tmp_path):
    root = tmp_path / "mimic"
    rows = [
        ("files/p10/p10000032/s1/a.jpg", 1, 0),
        ("files/p10/p10000032/s2/b.jpg", 0, 1),
        ("files/p11/p11000011/s3/c.jpg", 1, 1),
    ]
    df = pd.DataFrame(rows, columns=["path", "Support Devices", "No Finding"])
    df.to_csv(tmp_path / "train.csv", index=False)
    for p in df["path"]:
        write_png(root / p)
    ds = read_cxr_lt({"train": tmp_path / "train.csv"}, root, "multilabel")
    assert list(ds.patient_ids) == ["p10000032", "p10000032", "p11000011"]
    assert ds.class_names == ["Support Devices", "No Finding"]


def test_cxr_lt_missing_image_names_csv_row(tmp_path):
    files, root = make_cxr_lt(tmp_path)
    (root / "images" / "00000004_000.png").unlink()
    with pytest.raises(
        DataError, match=r"labels_val\.csv row 2: image '00000004_000\.png' not found"
    ):
        read_cxr_lt(files, root, "multilabel")


def test_cxr_lt_missing_column_names_csv_and_its_columns(tmp_path):
    files, root = make_cxr_lt(tmp_path)
    with pytest.raises(
        DataError,
        match=r"labels_train\.csv: missing column\(s\) \['Mass'\].*has columns \['id', 'Atelectasis'",
    ):
        read_cxr_lt(files, root, "multilabel", label_columns=["Atelectasis", "Mass"])


def test_cxr_lt_label_value_two(tmp_path):
    files, root = make_cxr_lt(tmp_path)
    df = pd.read_csv(files["test"])
    df.loc[1, "Hernia"] = 2
    df.to_csv(files["test"], index=False)
    with pytest.raises(
        DataError,
        match=r"labels_test\.csv row 2, column 'Hernia': value '2'; labels must be 0 or 1",
    ):
        read_cxr_lt(files, root, "multilabel")


def test_cxr_lt_duplicate_ids_name_both_rows(tmp_path):
    files, root = make_cxr_lt(tmp_path)
    df = pd.read_csv(files["test"], dtype=str)
    df.loc[1, "id"] = "00000001_000.png"
    df.to_csv(files["test"], index=False)
    with pytest.raises(
        DataError,
        match=r"duplicate image id '00000001_000\.png' at labels_train\.csv row 1, labels_test\.csv row 2",
    ):
        read_cxr_lt(files, root, "multilabel")


def test_cxr_lt_class_without_positives_in_official_part(tmp_path):
    files, root = make_cxr_lt(tmp_path)
    cfg = DatasetConfig(kind="cxr_lt", root=root, files=files)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the complete fixture has positives everywhere
        load_dataset(cfg, "multilabel")
    df = pd.read_csv(files["val"])
    df["Hernia"] = 0
    df.to_csv(files["val"], index=False)
    with pytest.warns(DataWarning, match="no positive images for 'Hernia' in val"):
        load_dataset(cfg, "multilabel")
    with pytest.raises(DataError, match="'Hernia' in val"):
        load_dataset(cfg.model_copy(update={"missing_positives": "error"}), "multilabel")


def test_cxr_lt_bad_file_keys_and_missing_csv(tmp_path):
    files, root = make_cxr_lt(tmp_path)
    with pytest.raises(DataError, match="unknown: \\['holdout'\\]"):
        read_cxr_lt({**files, "holdout": files["val"]}, root, "multilabel")
    with pytest.raises(DataError, match="label file not found"):
        read_cxr_lt({"train": tmp_path / "nope.csv"}, root, "multilabel")


# --------------------------------------------------------------------------- NIH Data_Entry


def make_data_entry(tmp_path: Path) -> Path:
    root = tmp_path / "nih14"
    rows = [
        ("00000001_000.png", "Cardiomegaly|Effusion", 0, 1, 58, "M", "PA"),
        ("00000001_001.png", "No Finding", 1, 1, 58, "M", "PA"),
        ("00000002_000.png", "Hernia", 0, 2, 81, "F", "AP"),
        ("00000003_000.png", "Pleural_Thickening|Mass|Nodule", 0, 3, 30, "F", "PA"),
    ]
    cols = [
        "Image Index",
        "Finding Labels",
        "Follow-up #",
        "Patient ID",
        "Patient Age",
        "Patient Gender",
        "View Position",
    ]
    root.mkdir()
    pd.DataFrame(rows, columns=cols).to_csv(root / "Data_Entry_2017_v2020.csv", index=False)
    for i, (name, *_) in enumerate(rows):
        write_png(root / f"images_00{i % 2 + 1}" / "images" / name)
    return root


def test_nih_data_entry_labels_metadata_and_search(tmp_path):
    root = make_data_entry(tmp_path)
    with pytest.warns(DataWarning, match="'Atelectasis' in the whole dataset"):
        ds = load_dataset(DatasetConfig(kind="nih_data_entry", root=root), "multilabel")
    assert ds.class_names == list(NIH_CLASSES) and len(NIH_CLASSES) == 15
    on = lambda i: sorted(ds.class_names[j] for j in np.flatnonzero(ds.labels[i]))  # noqa: E731
    assert on(0) == ["Cardiomegaly", "Effusion"]
    assert on(1) == ["No Finding"]
    assert on(3) == ["Mass", "Nodule", "Pleural_Thickening"]
    assert list(ds.patient_ids) == ["1", "1", "2", "3"]
    assert ds.metadata["view"].tolist() == ["PA", "PA", "AP", "PA"]
    assert ds.metadata["sex"].tolist() == ["M", "M", "F", "F"]
    assert ds.paths[2] == root / "images_001" / "images" / "00000002_000.png"
    assert ds.official_split is None


def test_nih_data_entry_official_test_list(tmp_path):
    root = make_data_entry(tmp_path)
    (root / "test_list.txt").write_text("00000002_000.png\n")
    ds = read_nih_data_entry(root, "multilabel", {"test_list": root / "test_list.txt"})
    assert list(ds.official_split) == ["train", "train", "test", "train"]


def test_nih_data_entry_unknown_finding(tmp_path):
    root = make_data_entry(tmp_path)
    csv = root / "Data_Entry_2017_v2020.csv"
    df = pd.read_csv(csv)
    df.loc[2, "Finding Labels"] = "Hernia|Covid"
    df.to_csv(csv, index=False)
    with pytest.raises(
        DataError, match=r"Data_Entry_2017_v2020\.csv row 3: unknown finding 'Covid'"
    ):
        read_nih_data_entry(root, "multilabel")


def test_nih_data_entry_missing_csv(tmp_path):
    with pytest.raises(DataError, match="no Data_Entry_2017"):
        read_nih_data_entry(tmp_path, "multilabel")


# --------------------------------------------------------------------------- MedMNIST


def make_npz(path: Path, labels: dict[str, np.ndarray], rgb: bool = False) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for part, lab in labels.items():
        shape = (len(lab), 28, 28, 3) if rgb else (len(lab), 28, 28)
        arrays[f"{part}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{part}_labels"] = lab
    np.savez(path, **arrays)
    return path


def test_medmnist_multiclass_render_and_official_split(tmp_path):
    lab = {
        "train": np.array([[0], [1], [2], [1]]),
        "val": np.array([[2], [0]]),
        "test": np.array([[1], [0], [2]]),
    }
    npz = make_npz(tmp_path / "organmnist.npz", lab)
    with pytest.warns(DataWarning, match="'class_1' in val"):
        ds = load_dataset(DatasetConfig(kind="medmnist", files={"npz": npz}), "multiclass")
    assert len(ds) == 9 and ds.class_names == ["class_0", "class_1", "class_2"]
    assert ds.labels.argmax(1).tolist() == [0, 1, 2, 1, 2, 0, 1, 0, 2]
    assert list(ds.official_split) == ["train"] * 4 + ["val"] * 2 + ["test"] * 3
    assert ds.patient_ids[5] == ds.ids[5] == "val_1"
    with np.load(npz) as z:
        original = z["val_images"][1]
    # same size: bilinear resize to 28 px is the identity
    np.testing.assert_array_equal(ds.render(np.array([5]), 28)[0], original)
    expected = np.asarray(Image.fromarray(original).resize((16, 16), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(ds.render(np.array([8, 5]), 16)[1], expected)


def test_medmnist_multilabel_rgb_and_names(tmp_path):
    lab = {"train": np.array([[1, 0], [0, 1], [1, 1]]), "test": np.array([[1, 0], [0, 1]])}
    npz = make_npz(tmp_path / "chest.npz", lab, rgb=True)
    ds = read_medmnist(npz, "multilabel", ["Atelectasis", "Effusion"])
    assert ds.labels.tolist() == lab["train"].tolist() + lab["test"].tolist()
    assert ds.render(np.arange(5), 8).shape == (5, 8, 8)
    with np.load(npz) as z:
        gray = np.asarray(Image.fromarray(z["train_images"][2]).convert("L"))
    np.testing.assert_array_equal(ds.render(np.array([2]), 28)[0], gray)


def test_medmnist_bad_inputs(tmp_path):
    npz = make_npz(tmp_path / "bad.npz", {"train": np.array([[1, 0], [2, 1]])})
    with pytest.raises(DataError, match=r"bad\.npz train_labels\[1\]: column 0 has value 2"):
        read_medmnist(npz, "multilabel")
    npz = make_npz(tmp_path / "three.npz", {"train": np.array([[0], [1], [2]])})
    with pytest.raises(DataError, match="binary task needs 2 classes"):
        read_medmnist(npz, "binary")
    with pytest.raises(DataError, match="not found"):
        read_medmnist(tmp_path / "missing.npz", "binary")


# --------------------------------------------------------------------------- generic CSV


def make_generic(tmp_path: Path) -> Path:
    df = pd.DataFrame(
        {
            "file": ["a.png", "b.png", "c.png", "d.png"],
            "diagnosis": ["normal", "covid", "normal", "covid"],
            "finding_x": [1, 0, 0, 1],
            "finding_y": [0, 0, 1, 1],
            "pid": ["007", "007", "009", "010"],
            "split": ["train", "train", "val", "test"],
        }
    )
    df.to_csv(tmp_path / "labels.csv", index=False)
    for f in df["file"]:
        write_png(tmp_path / "img" / f)
    return tmp_path / "labels.csv"


def test_generic_csv_label_column_and_patients(tmp_path):
    csv = make_generic(tmp_path)
    cols = CsvColumns(path_column="file", label_column="diagnosis", patient_column="pid")
    ds = read_csv_dataset(
        DatasetConfig(kind="csv", root=tmp_path / "img", files={"labels": csv}, columns=cols),
        "binary",
    )
    assert ds.class_names == ["covid", "normal"]
    assert ds.labels.argmax(1).tolist() == [1, 0, 1, 0]
    assert list(ds.patient_ids) == ["007", "007", "009", "010"]  # leading zeros kept
    assert list(ds.official_split) == ["train", "train", "val", "test"]


def test_generic_csv_label_columns_multilabel(tmp_path):
    csv = make_generic(tmp_path)
    cols = CsvColumns(path_column="file", label_columns=["finding_x", "finding_y"])
    cfg = DatasetConfig(kind="csv", root=tmp_path / "img", files={"labels": csv}, columns=cols)
    with pytest.warns(DataWarning, match="'finding_x' in val"):
        ds = load_dataset(cfg, "multilabel")
    assert ds.labels.tolist() == [[1, 0], [0, 0], [0, 1], [1, 1]]
    assert list(ds.patient_ids) == list(ds.ids)


def test_generic_csv_errors(tmp_path):
    csv = make_generic(tmp_path)
    root = tmp_path / "img"
    both = CsvColumns(path_column="file", label_columns=["finding_x"], label_column="diagnosis")
    with pytest.raises(DataError, match="exactly one of"):
        read_csv_dataset(
            DatasetConfig(kind="csv", root=root, files={"labels": csv}, columns=both), "binary"
        )
    cols = CsvColumns(path_column="image", label_column="diagnosis")
    with pytest.raises(DataError, match=r"missing column\(s\) \['image'\].*\['file', 'diagnosis'"):
        read_csv_dataset(
            DatasetConfig(kind="csv", root=root, files={"labels": csv}, columns=cols), "binary"
        )
    cols = CsvColumns(path_column="file", label_columns=["finding_x", "finding_y"])
    with pytest.raises(
        DataError, match=r"labels\.csv row 2: 0 positive classes; a multiclass task"
    ):
        read_csv_dataset(
            DatasetConfig(kind="csv", root=root, files={"labels": csv}, columns=cols), "multiclass"
        )
    (root / "c.png").unlink()
    cols = CsvColumns(path_column="file", label_column="diagnosis")
    with pytest.raises(DataError, match=r"labels\.csv row 3: image 'c\.png' not found"):
        read_csv_dataset(
            DatasetConfig(kind="csv", root=root, files={"labels": csv}, columns=cols), "binary"
        )


def test_generic_csv_empty_file(tmp_path):
    (tmp_path / "labels.csv").write_text("file,diagnosis\n")
    cols = CsvColumns(path_column="file", label_column="diagnosis")
    with pytest.raises(DataError, match="no rows"):
        read_csv_dataset(
            DatasetConfig(kind="csv", files={"labels": tmp_path / "labels.csv"}, columns=cols),
            "binary",
        )


def test_synthetic_dispatch():
    synthetic = pytest.importorskip("bench.data.synthetic")
    cfg = DatasetConfig(kind="synthetic")
    ds = load_dataset(
        cfg.model_copy(update={"synthetic": cfg.synthetic.model_copy(update={"n_images": 40})}),
        "binary",
    )
    ref = synthetic.make_synthetic(40, "binary", 0)
    assert len(ds) == 40 and list(ds.ids) == list(ref.ids)


def test_to_gray_array_matches_pil_for_8bit():
    img = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 3)
    np.testing.assert_array_equal(to_gray_array(img, 8), np.asarray(img))
