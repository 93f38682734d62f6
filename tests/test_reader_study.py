"""Tests of analysis.reader_study: blinding of the kit, validation and tests against scipy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from analysis import reader_study as rs

IDS = [f"patient{i:02d}_img.png" for i in range(20)]
IS_PIE = np.array([True] * 6 + [False] * 14)


def _kit(tmp_path: Path, **kw: object) -> rs.ReaderKit:
    return rs.make_reader_kit(IDS, IS_PIE, tmp_path / "kit", rng=0, **kw)


def test_kit_is_blinded_balanced_and_shuffled(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(20, 8, 8), dtype=np.uint8)
    kit = _kit(tmp_path, images=images, shown_labels=[f"label{i}" for i in range(20)])
    form = pd.read_csv(kit.form_path)
    key = pd.read_csv(kit.key_path)
    assert kit.n_items == 12 and len(form) == 12
    assert key["is_pie"].sum() == 6 and (~key["is_pie"]).sum() == 6  # equal numbers
    assert {"is_pie", "image_id"}.isdisjoint(form.columns)
    assert set(rs.FORM_COLUMNS) <= set(form.columns)
    text = kit.form_path.read_text()
    assert not any(i in text for i in IDS)  # no image id leaks into the form
    assert kit.key_path.parent != kit.form_path.parent  # key is kept apart
    assert key["is_pie"].tolist() != sorted(key["is_pie"].tolist(), reverse=True)  # shuffled
    assert sorted(p.name for p in kit.image_dir.iterdir()) == sorted(form["image_file"])
    for item, image_id in zip(key["item"], key["image_id"], strict=True):
        name = form.loc[form["item"] == item, "image_file"].iloc[0]
        shown = form.loc[form["item"] == item, "shown_label"].iloc[0]
        src = IDS.index(image_id)
        np.testing.assert_array_equal(np.asarray(Image.open(kit.image_dir / name)), images[src])
        assert shown == f"label{src}"


def test_kit_is_reproducible_and_checks_inputs(tmp_path: Path) -> None:
    a = pd.read_csv(_kit(tmp_path).key_path)
    b = pd.read_csv(rs.make_reader_kit(IDS, IS_PIE, tmp_path / "other", rng=0).key_path)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(ValueError, match="n_per_group"):
        rs.make_reader_kit(IDS, IS_PIE, tmp_path / "x", n_per_group=7)
    with pytest.raises(ValueError, match="uint8"):
        rs.make_reader_kit(IDS, IS_PIE, tmp_path / "y", images=np.zeros((20, 4, 4)))


def _filled_forms(kit: rs.ReaderKit, readers: list[str]) -> list[pd.DataFrame]:
    rng = np.random.default_rng(1)
    key = pd.read_csv(kit.key_path)
    pie_items = set(key.loc[key["is_pie"], "item"])
    forms = []
    for r in readers:
        f = pd.read_csv(kit.form_path)
        shift = np.array([1 if i in pie_items else 0 for i in f["item"]])
        f["reader"] = r
        f["label_agreement"] = np.where(rng.random(len(f)) < 0.5 + 0.3 * shift, "no", "yes")
        f["image_quality"] = np.clip(rng.integers(2, 6, len(f)) - shift, 1, 5)
        f["difficulty"] = np.clip(rng.integers(1, 5, len(f)) + shift, 1, 5)
        forms.append(f)
    return forms


def test_analysis_matches_scipy(tmp_path: Path) -> None:
    kit = _kit(tmp_path)
    forms = _filled_forms(kit, ["r1", "r2", "r3"])
    paths = []
    for i, f in enumerate(forms):
        paths.append(tmp_path / f"reader{i}.csv")
        f.to_csv(paths[-1], index=False)
    out = rs.analyse_reader_forms(paths, kit.key_path)
    key = pd.read_csv(kit.key_path).set_index("item")["is_pie"]
    both = pd.concat(forms, ignore_index=True)
    both["is_pie"] = both["item"].map(key)
    q = out[out["rating"] == "image_quality"].set_index(["analysis", "reader"])
    pie_v = both.loc[both["is_pie"], "image_quality"].to_numpy()
    non_v = both.loc[~both["is_pie"], "image_quality"].to_numpy()
    ref = stats.mannwhitneyu(pie_v, non_v, alternative="two-sided")
    assert q.loc[("mann_whitney", "all"), "statistic"] == pytest.approx(ref.statistic)
    assert q.loc[("mann_whitney", "all"), "pvalue"] == pytest.approx(ref.pvalue)
    ref = stats.kruskal(pie_v, non_v)
    assert q.loc[("kruskal_pie", "all"), "pvalue"] == pytest.approx(ref.pvalue)
    ref = stats.kruskal(*[f["image_quality"].to_numpy() for f in forms])
    assert q.loc[("kruskal_readers", "all"), "pvalue"] == pytest.approx(ref.pvalue)
    f2 = forms[1].assign(is_pie=forms[1]["item"].map(key))
    ref = stats.mannwhitneyu(
        f2.loc[f2["is_pie"], "image_quality"], f2.loc[~f2["is_pie"], "image_quality"]
    )
    assert q.loc[("mann_whitney_reader", "r2"), "pvalue"] == pytest.approx(ref.pvalue)
    # balanced design (every reader rates every item): the reader fixed effects cancel and
    # the OLS PIE coefficient is the plain difference of means
    est = q.loc[("ols_reader_fe", "all"), "estimate"]
    assert est == pytest.approx(pie_v.mean() - non_v.mean())
    assert (
        q.loc[("ols_reader_fe", "all"), "ci_low"] < est < q.loc[("ols_reader_fe", "all"), "ci_high"]
    )
    agree = out[(out["rating"] == "label_agreement") & (out["analysis"] == "mann_whitney")]
    assert agree["mean_pie"].iloc[0] == pytest.approx(
        (both.loc[both["is_pie"], "label_agreement"] == "yes").mean()
    )


def test_blank_reader_takes_file_stem_and_blank_rating_is_missing(tmp_path: Path) -> None:
    kit = _kit(tmp_path)
    form = _filled_forms(kit, [""])[0]
    form.loc[0, "difficulty"] = None
    path = tmp_path / "dr_who.csv"
    form.to_csv(path, index=False)
    data = rs.load_reader_forms(path, kit.key_path)
    assert set(data["reader"]) == {"dr_who"}
    assert data["difficulty"].isna().sum() == 1
    out = rs.analyse_reader_forms(path, kit.key_path)
    assert (out.loc[out["rating"] == "difficulty", "n_missing"] == 1).all()
    assert "ols_reader_fe" not in set(out["analysis"])  # one reader: no reader factor


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("image_quality", "6", "an integer from 1 to 5"),
        ("difficulty", "easy", "an integer from 1 to 5"),
        ("label_agreement", "maybe", "yes or no"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, column: str, value: str, expected: str) -> None:
    kit = _kit(tmp_path)
    form = _filled_forms(kit, ["r1"])[0].astype(str)
    form.loc[2, column] = value
    path = tmp_path / "bad_form.csv"
    form.to_csv(path, index=False)
    with pytest.raises(rs.ReaderFormError) as err:
        rs.analyse_reader_forms(path, kit.key_path)
    msg = str(err.value)
    assert "bad_form.csv" in msg and "data row 3" in msg and column in msg and expected in msg


def test_missing_column_and_unknown_item(tmp_path: Path) -> None:
    kit = _kit(tmp_path)
    form = _filled_forms(kit, ["r1"])[0]
    path = tmp_path / "short.csv"
    form.drop(columns="difficulty").to_csv(path, index=False)
    with pytest.raises(rs.ReaderFormError, match=r"short\.csv.*difficulty"):
        rs.analyse_reader_forms(path, kit.key_path)
    form.loc[0, "item"] = 99
    with pytest.raises(rs.ReaderFormError, match="not in the key"):
        rs.analyse_reader_forms([form], kit.key_path)
