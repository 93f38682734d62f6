"""A blinded reader study of PIEs: build the kit (images, form, key) and analyse returned forms.

The kit has two parts kept apart: ``reader/`` (form.csv and images named by item number
only, handed to readers) and ``key.csv`` (item -> image_id, is_pie, kept by the organiser).
Ratings: label_agreement (yes/no), image_quality (1–5, 5 = excellent) and difficulty
(1–5, 5 = very difficult), as in study B's survey.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from PIL import Image
from scipy import stats

FORM_COLUMNS = ("item", "image_file", "label_agreement", "image_quality", "difficulty", "reader")
RATINGS = ("label_agreement", "image_quality", "difficulty")
KEY_COLUMNS = ("item", "image_id", "is_pie")


class ReaderFormError(ValueError):
    """A reader form or key is malformed; the message names the file, row and column."""


@dataclass(frozen=True)
class ReaderKit:
    """Where ``make_reader_kit`` wrote the kit."""

    form_path: Path
    key_path: Path
    image_dir: Path | None
    n_items: int


def make_reader_kit(
    image_ids: Sequence[str],
    is_pie: np.ndarray,
    out_dir: str | Path,
    *,
    n_per_group: int | None = None,
    shown_labels: Sequence[str] | None = None,
    images: np.ndarray | None = None,
    rng: np.random.Generator | int | None = None,
) -> ReaderKit:
    """Draw equal numbers of PIEs and non-PIEs, shuffle them and write a blinded kit.

    ``n_per_group`` defaults to the number of PIEs (or of non-PIEs if fewer). ``shown_labels``
    (one string per image, e.g. "Effusion; Nodule") adds a ``shown_label`` column readers
    judge ``label_agreement`` against. ``images`` (N, H, W) uint8 are written as
    ``reader/images/item_NNN.png``; the file name carries the item number only.
    """
    ids = np.asarray(image_ids).astype(str)
    mask = np.asarray(is_pie, dtype=bool)
    if mask.shape != ids.shape:
        raise ValueError(f"is_pie has shape {mask.shape}; expected ({len(ids)},), one per image")
    pies, non_pies = np.flatnonzero(mask), np.flatnonzero(~mask)
    n = min(len(pies), len(non_pies)) if n_per_group is None else n_per_group
    if n < 1 or n > min(len(pies), len(non_pies)):
        raise ValueError(
            f"need n_per_group in 1..{min(len(pies), len(non_pies))} "
            f"({len(pies)} PIEs, {len(non_pies)} non-PIEs), got {n}"
        )
    if images is not None:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 3 or len(images) != len(ids):
            raise ValueError(
                f"images must be ({len(ids)}, H, W) uint8; got {images.shape} {images.dtype}"
            )
    gen = np.random.default_rng(rng)
    chosen = np.concatenate(
        [gen.choice(pies, n, replace=False), gen.choice(non_pies, n, replace=False)]
    )
    chosen = chosen[gen.permutation(len(chosen))]
    items = np.arange(1, len(chosen) + 1)
    width = max(3, len(str(len(chosen))))
    files = [f"item_{i:0{width}d}.png" for i in items]

    out = Path(out_dir)
    reader_dir = out / "reader"
    reader_dir.mkdir(parents=True, exist_ok=True)
    form = pd.DataFrame({"item": items, "image_file": files})
    if shown_labels is not None:
        form["shown_label"] = np.asarray(shown_labels).astype(str)[chosen]
    for col in (*RATINGS, "reader"):
        form[col] = ""
    form_path = reader_dir / "form.csv"
    form.to_csv(form_path, index=False)
    key_path = out / "key.csv"
    pd.DataFrame({"item": items, "image_id": ids[chosen], "is_pie": mask[chosen]}).to_csv(
        key_path, index=False
    )
    image_dir = None
    if images is not None:
        image_dir = reader_dir / "images"
        image_dir.mkdir(exist_ok=True)
        for idx, name in zip(chosen, files, strict=True):
            Image.fromarray(images[idx]).save(image_dir / name)
    return ReaderKit(
        form_path=form_path, key_path=key_path, image_dir=image_dir, n_items=len(items)
    )


def _read(obj: pd.DataFrame | str | Path, name: str) -> tuple[pd.DataFrame, str]:
    if isinstance(obj, pd.DataFrame):
        return obj.copy(), name
    path = Path(obj)
    return pd.read_csv(path, dtype=str, keep_default_na=False), str(path)


def _fail(source: str, row: int, col: str, value: object, expected: str) -> ReaderFormError:
    return ReaderFormError(
        f"{source}: data row {row + 1} (CSV line {row + 2}), column {col!r}: got {value!r}, "
        f"expected {expected}; correct the entry or leave it blank if unanswered"
    )


def _validate_form(df: pd.DataFrame, source: str, default_reader: str) -> pd.DataFrame:
    """Parse one form: ratings to numbers (blank -> NaN), reader filled, errors named."""
    missing = [c for c in ("item", *RATINGS, "reader") if c not in df.columns]
    if missing:
        raise ReaderFormError(
            f"{source}: missing column(s) {missing}; a form needs columns {list(FORM_COLUMNS)}"
        )
    out = pd.DataFrame(index=df.index)
    out["item"] = pd.to_numeric(df["item"], errors="coerce")
    for row, (raw, val) in enumerate(zip(df["item"], out["item"], strict=True)):
        if not np.isfinite(val) or val != int(val):
            raise _fail(source, row, "item", raw, "the item number printed on the form")
    out["item"] = out["item"].astype(int)
    agree = {"yes": 1.0, "no": 0.0, "": np.nan, "nan": np.nan}
    values = []
    for row, raw in enumerate(df["label_agreement"]):
        key = str(raw).strip().lower()
        if key not in agree:
            raise _fail(source, row, "label_agreement", raw, "yes or no")
        values.append(agree[key])
    out["label_agreement"] = values
    for col in ("image_quality", "difficulty"):
        values = []
        for row, raw in enumerate(df[col]):
            text = str(raw).strip()
            if text in ("", "nan"):
                values.append(np.nan)
                continue
            try:
                val = float(text)
            except ValueError:
                raise _fail(source, row, col, raw, "an integer from 1 to 5") from None
            if val not in (1, 2, 3, 4, 5):
                raise _fail(source, row, col, raw, "an integer from 1 to 5")
            values.append(val)
        out[col] = values
    readers = df["reader"].astype(str).str.strip().replace({"nan": ""})
    out["reader"] = readers.where(readers != "", default_reader)
    return out


def load_reader_forms(
    forms: pd.DataFrame | str | Path | Sequence[pd.DataFrame | str | Path],
    key: pd.DataFrame | str | Path,
) -> pd.DataFrame:
    """Validate and stack returned forms, joined with the key: item, reader, is_pie, ratings.

    A blank ``reader`` cell takes the form's file stem (or ``form_<i>`` for a DataFrame).
    Blank ratings stay NaN (unanswered); anything else outside yes/no or 1–5 raises
    ``ReaderFormError`` naming the file, row and column.
    """
    if isinstance(forms, pd.DataFrame | str | Path):
        forms = [forms]
    key_df, key_src = _read(key, "key")
    missing = [c for c in KEY_COLUMNS if c not in key_df.columns]
    if missing:
        raise ReaderFormError(f"{key_src}: missing column(s) {missing}; expected {KEY_COLUMNS}")
    key_df = key_df.assign(
        item=pd.to_numeric(key_df["item"]).astype(int),
        is_pie=key_df["is_pie"].astype(str).str.strip().str.lower().isin(["true", "1"]),
    )
    parts = []
    for i, form in enumerate(forms):
        df, source = _read(form, f"form {i}")
        default = Path(source).stem if not isinstance(form, pd.DataFrame) else f"form_{i}"
        parsed = _validate_form(df, source, default)
        unknown = sorted(set(parsed["item"]) - set(key_df["item"]))
        if unknown:
            raise ReaderFormError(f"{source}: item(s) {unknown[:5]} not in the key {key_src}")
        parts.append(parsed)
    data = pd.concat(parts, ignore_index=True)
    return data.merge(key_df[["item", "image_id", "is_pie"]], on="item", how="left")


def _mwu_row(pie: np.ndarray, non: np.ndarray) -> dict[str, float]:
    if len(pie) == 0 or len(non) == 0:
        return {"statistic": np.nan, "pvalue": np.nan}
    res = stats.mannwhitneyu(pie, non, alternative="two-sided")
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue)}


def _kruskal_row(groups: list[np.ndarray]) -> dict[str, float]:
    groups = [g for g in groups if len(g)]
    if len(groups) < 2 or np.ptp(np.concatenate(groups)) == 0:
        return {"statistic": np.nan, "pvalue": np.nan}  # scipy raises on identical values
    res = stats.kruskal(*groups)
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue)}


def analyse_reader_forms(
    forms: pd.DataFrame | str | Path | Sequence[pd.DataFrame | str | Path],
    key: pd.DataFrame | str | Path,
) -> pd.DataFrame:
    """Per rating: PIE vs non-PIE tests, pooled and per reader, and the reader as a factor.

    Rows (``analysis`` column), for each of label_agreement, image_quality, difficulty:
    - ``mann_whitney``: pooled PIE vs non-PIE ratings, two-sided Mann–Whitney U;
    - ``kruskal_pie``: Kruskal–Wallis PIE vs non-PIE (the test study B reported);
    - ``kruskal_readers``: Kruskal–Wallis across readers (do readers rate differently?);
    - ``mann_whitney_reader``: Mann–Whitney within each reader (``reader`` column set);
    - ``ols_reader_fe`` (several readers): OLS rating ~ is_pie + C(reader), standard errors
      clustered by item; ``estimate`` is the PIE − non-PIE difference on the rating scale with
      its 95% interval. Treating the 1–5 scale as interval-valued is an approximation.
    """
    data = load_reader_forms(forms, key)
    readers = sorted(data["reader"].unique())
    rows = []
    for rating in RATINGS:
        d = data.dropna(subset=[rating])
        pie, non = d.loc[d["is_pie"], rating].to_numpy(), d.loc[~d["is_pie"], rating].to_numpy()
        common = {
            "rating": rating,
            "n_pie": len(pie),
            "n_nonpie": len(non),
            "mean_pie": pie.mean() if len(pie) else np.nan,
            "mean_nonpie": non.mean() if len(non) else np.nan,
            "n_missing": int(data[rating].isna().sum()),
        }
        rows.append({**common, "analysis": "mann_whitney", "reader": "all", **_mwu_row(pie, non)})
        rows.append(
            {**common, "analysis": "kruskal_pie", "reader": "all", **_kruskal_row([pie, non])}
        )
        by_reader = [d.loc[d["reader"] == r, rating].to_numpy() for r in readers]
        rows.append(
            {**common, "analysis": "kruskal_readers", "reader": "all", **_kruskal_row(by_reader)}
        )
        for r in readers:
            dr = d[d["reader"] == r]
            p_r, n_r = dr.loc[dr["is_pie"], rating], dr.loc[~dr["is_pie"], rating]
            rows.append(
                {
                    **common,
                    "n_pie": len(p_r),
                    "n_nonpie": len(n_r),
                    "mean_pie": p_r.mean(),
                    "mean_nonpie": n_r.mean(),
                    "analysis": "mann_whitney_reader",
                    "reader": r,
                    **_mwu_row(p_r.to_numpy(), n_r.to_numpy()),
                }
            )
        if len(readers) > 1 and d["is_pie"].nunique() == 2:
            fit = smf.ols(
                f"{rating} ~ is_pie + C(reader)", data=d.assign(is_pie=d["is_pie"].astype(float))
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # few clusters: statsmodels warns, result kept
                res = fit.fit(cov_type="cluster", cov_kwds={"groups": d["item"].to_numpy()})
            low, high = res.conf_int().loc["is_pie"]
            rows.append(
                {
                    **common,
                    "analysis": "ols_reader_fe",
                    "reader": "all",
                    "statistic": float(res.tvalues["is_pie"]),
                    "pvalue": float(res.pvalues["is_pie"]),
                    "estimate": float(res.params["is_pie"]),
                    "ci_low": float(low),
                    "ci_high": float(high),
                }
            )
    out = pd.DataFrame(rows)
    for col in ("estimate", "ci_low", "ci_high"):
        if col not in out:
            out[col] = np.nan
    return out
