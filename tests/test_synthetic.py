"""SynthCXR-LT (synthetic data): determinism, labels sampled from the real NIH metadata,
whole patients, persistent anatomy, the balanced binary task, and learnable findings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from bench.data import synthetic
from bench.data.dataset import DataError
from bench.data.synthetic import NIH_CLASSES, make_synthetic


@pytest.fixture(scope="module")
def nih() -> pd.DataFrame:
    """The NIH metadata parsed here with pandas alone, independently of the generator."""
    df = pd.read_csv(synthetic.nih_metadata_path())
    found = df["Finding Labels"].str.split("|").explode()
    counts = pd.crosstab(found.index, found).rename(
        columns={"Pleural_Thickening": "Pleural Thickening"}
    )
    return df.join(counts[NIH_CLASSES]).set_index("Image Index")


@pytest.fixture(scope="module")
def ds5000():
    return make_synthetic(5000, "multilabel", seed=0)


def test_names_classes_and_keys(ds5000):
    assert NIH_CLASSES[0] == "No Finding" and NIH_CLASSES[-1] == "Hernia" and len(NIH_CLASSES) == 15
    assert ds5000.name == "synthcxr-lt" and ds5000.class_names == NIH_CLASSES
    assert ds5000.task == "multilabel" and len(ds5000) == 5000
    assert list(ds5000.metadata.columns[:4]) == ["view", "age", "sex", "strength"]
    assert set(ds5000.metadata["view"]) == {"PA", "AP"}
    assert ds5000.metadata["strength"].between(0, 1).all()
    strength = ds5000.metadata["strength"].to_numpy()
    np.testing.assert_array_equal(strength == 0, ds5000.labels[:, 0] == 1)  # 0: No Finding
    assert strength[strength > 0].std() > 0.1  # varies per image
    binary = make_synthetic(300, "binary", seed=4)
    assert binary.name == "synthcxr-binary" and binary.class_names == ["Normal", "Pneumonia"]
    keys = {
        make_synthetic(n, t, s).source_key
        for n, t, s in [
            (300, "binary", 4),
            (301, "binary", 4),
            (300, "multilabel", 4),
            (300, "binary", 5),
        ]
    }
    assert len(keys) == 4 and all(f"v{synthetic.GENERATOR_VERSION}" in k for k in keys)


def test_same_seed_same_data_other_seed_differs():
    a, b, c = (make_synthetic(300, seed=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.ids, b.ids)
    idx = np.arange(300)
    np.testing.assert_array_equal(a.render(idx, 32), b.render(idx, 32))
    assert not np.array_equal(a.metadata["nih_image"], c.metadata["nih_image"])
    assert not np.array_equal(a.render(idx, 32), c.render(idx, 32))


def test_subset_render_equals_full_render_rows():
    ds = make_synthetic(300, seed=3)
    full = ds.render(np.arange(300), 64)  # 64 px: several chunks
    subset = np.array([299, 0, 17, 64, 65, 150])
    np.testing.assert_array_equal(ds.render(subset, 64), full[subset])
    assert full.dtype == np.uint8 and full.shape == (300, 64, 64)
    assert full.std() > 30  # a picture, not a constant


def test_same_picture_at_any_size():
    ds = make_synthetic(50, seed=1)
    idx = np.arange(12)
    big = ds.render(idx, 128).astype(float).reshape(12, 32, 4, 32, 4).mean((2, 4))
    small = ds.render(idx, 32).astype(float)
    for b, s in zip(big, small, strict=True):
        assert np.corrcoef(b.ravel(), s.ravel())[0, 1] > 0.9
    assert ds.render(idx[:2], 256).shape == (2, 256, 256)
    with pytest.raises(ValueError, match="size"):
        ds.render(idx, 4)
    with pytest.raises(ValueError, match="indices"):
        ds.render(np.array([50]), 32)


def test_labels_are_the_real_nih_label_sets(ds5000, nih):
    rows = nih.loc[ds5000.metadata["nih_image"]]
    np.testing.assert_array_equal(ds5000.labels, rows[NIH_CLASSES].to_numpy())
    np.testing.assert_array_equal(ds5000.metadata["view"], rows["View Position"])
    np.testing.assert_array_equal(ds5000.metadata["age"], rows["Patient Age"])
    np.testing.assert_array_equal(ds5000.metadata["sex"], rows["Patient Gender"])


def test_prevalence_follows_nih_metadata(ds5000, nih):
    """Per class, |sample prevalence - NIH prevalence| <= 4 standard errors.

    Whole patients are sampled, so the standard error is the cluster (ratio-estimator)
    one, sum over patients of (positives_i - p_hat * images_i)^2 / n^2, floored at the
    binomial one sqrt(p(1-p)/n); a 4-SE tolerance fails a correct sampler with
    probability ~1e-4 per class, while a swapped or mis-parsed column (e.g. Infiltration
    17.7% vs Effusion 11.9%) lands far outside it.
    """
    p_nih = nih[NIH_CLASSES].mean().to_numpy()
    y = pd.DataFrame(ds5000.labels, columns=NIH_CLASSES)
    p_hat = y.mean().to_numpy()
    n = len(y)
    per_patient = y.groupby(ds5000.patient_ids).sum()
    images = y.groupby(ds5000.patient_ids).size().to_numpy()[:, None]
    se_cluster = np.sqrt(((per_patient.to_numpy() - p_hat * images) ** 2).sum(0)) / n
    se = np.maximum(se_cluster, np.sqrt(p_nih * (1 - p_nih) / n))
    assert np.all(np.abs(p_hat - p_nih) <= 4 * se), pd.DataFrame(
        {"nih": p_nih, "hat": p_hat, "se": se}
    )
    # the long tail survives: Infiltration common, Hernia rare
    assert p_hat[NIH_CLASSES.index("Infiltration")] > 0.12
    assert p_hat[NIH_CLASSES.index("Hernia")] < 0.01


@pytest.mark.parametrize("task", ["multilabel", "binary"])
def test_patients_kept_whole(task, nih):
    ds = make_synthetic(1000, task, seed=2)
    real = nih.loc[ds.metadata["nih_image"], "Patient ID"].to_numpy()
    pairs = pd.DataFrame({"synthetic": ds.patient_ids, "real": real}).drop_duplicates()
    assert pairs["synthetic"].is_unique and pairs["real"].is_unique  # one-to-one
    eligible = nih if task == "multilabel" else nih[(nih["No Finding"] == 1) | _positive(nih)]
    expected = eligible.groupby("Patient ID").size().loc[pairs["real"]].to_numpy()
    got = pd.Series(ds.patient_ids).value_counts().loc[pairs["synthetic"]].to_numpy()
    np.testing.assert_array_equal(got, expected)
    assert all(p.startswith("P") for p in ds.patient_ids)


def _positive(df: pd.DataFrame) -> pd.Series:
    return (df["Pneumonia"] + df["Consolidation"] + df["Infiltration"]) > 0


def test_binary_task_is_balanced_like_study_a(nih):
    ds = make_synthetic(378, "binary", seed=0)
    assert ds.labels.sum(0).tolist() == [200, 178]  # study A: 200 Normal, 178 Pneumonia
    rows = nih.loc[ds.metadata["nih_image"]]
    np.testing.assert_array_equal(ds.labels[:, 1], _positive(rows).to_numpy())
    np.testing.assert_array_equal(ds.labels[:, 0], rows["No Finding"].to_numpy())
    big = make_synthetic(20000, "binary", seed=1)
    assert big.labels[:, 1].sum() == round(20000 * 178 / 378)


def test_anatomy_persists_within_patients():
    """Normal PA images of one patient correlate more than those of different patients."""
    ds = make_synthetic(3000, seed=5)
    normal_pa = np.flatnonzero((ds.labels[:, 0] == 1) & (ds.metadata["view"].to_numpy() == "PA"))
    pid = ds.patient_ids[normal_pa]
    first = {}
    same, other = [], []
    for i, p in zip(normal_pa, pid, strict=True):
        if p in first and len(same) < 40:
            same.append((first[p], i))
        first.setdefault(p, i)
    firsts = list(first.values())
    other = list(zip(firsts[:-1], firsts[1:], strict=True))[:40]
    assert len(same) == 40
    idx = np.unique(np.array(same + other))
    pix = dict(zip(idx, ds.render(idx, 32).reshape(len(idx), -1).astype(float), strict=True))

    def corr(pairs):
        return np.mean([np.corrcoef(pix[a], pix[b])[0, 1] for a, b in pairs])

    assert corr(same) > corr(other) + 0.05  # seen: ~0.96 vs ~0.80


def test_bad_input_raises_clear_errors(monkeypatch, tmp_path):
    with pytest.raises(DataError, match="task 'multiclass'"):
        make_synthetic(100, "multiclass")
    with pytest.raises(DataError, match="n_images"):
        make_synthetic(0)
    with pytest.raises(DataError, match="fewer images"):
        make_synthetic(200_000)
    missing = tmp_path / "Data_Entry_2017_v2020.csv.gz"
    monkeypatch.setattr(synthetic, "nih_metadata_path", lambda: missing)
    with pytest.raises(DataError, match="torchxrayvision.*missing|missing.*torchxrayvision"):
        make_synthetic(100)


def _heldout_auroc(ds, columns: list[int]) -> list[float]:
    """Logistic regression on 32-px pixels, fitted on half the patients, AUROC on the rest."""
    pixels = ds.render(np.arange(len(ds)), 32).reshape(len(ds), -1) / 255.0
    patients = np.unique(ds.patient_ids)
    test = np.isin(ds.patient_ids, np.random.default_rng(0).permutation(patients)[::2])
    aurocs = []
    for k in columns:
        y = ds.labels[:, k]
        clf = LogisticRegression(C=0.01, max_iter=500, class_weight="balanced")
        clf.fit(pixels[~test], y[~test])
        aurocs.append(roc_auc_score(y[test], clf.decision_function(pixels[test])))
    return aurocs


def test_a_linear_classifier_learns_common_findings():
    """Seen (seeds 0-3, 11): cardiomegaly 0.85-0.94, effusion 0.96-0.97, binary 0.85-0.94."""
    ds = make_synthetic(2500, seed=11)
    columns = [NIH_CLASSES.index("Cardiomegaly"), NIH_CLASSES.index("Effusion")]
    cardiomegaly, effusion = _heldout_auroc(ds, columns)
    (pneumonia,) = _heldout_auroc(make_synthetic(2000, "binary", seed=11), [1])
    assert cardiomegaly > 0.75 and effusion > 0.75 and pneumonia > 0.75, (
        cardiomegaly,
        effusion,
        pneumonia,
    )
