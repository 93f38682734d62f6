"""Read a study folder (docs/results-schema.md) into tidy tables and dense arrays.

The only reader of ``results/``; never imports torch. Only cells with a done-marker are
read, so a half-written or failed cell is never part of an analysis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

LABEL, PROB = "label__", "prob__"


class ResultsError(ValueError):
    """A results folder that cannot be analysed; the message names the file and the fix."""


@dataclass
class PredictionSet:
    """Predictions of one split as arrays, paired by seed, variant and image.

    probs[s, v, i, c] is the probability of class c for image i from the model of seed s and
    variant v (NaN where that cell is missing). For k-fold studies each image's prediction
    comes from the fold whose test part holds it (``fold[i]``).
    """

    task: str
    class_names: list[str]
    image_ids: np.ndarray
    patient_ids: np.ndarray
    fold: np.ndarray
    y: np.ndarray
    seeds: list[int]
    variants: list[str]
    probs: np.ndarray

    def variant(self, variant_id: str) -> np.ndarray:
        """(S, N, C) probabilities of one variant."""
        return self.probs[:, self.variants.index(variant_id)]


def read_table(path: Path) -> pd.DataFrame | None:
    """A table written by ``cxrbench analyze``; None when absent or empty."""
    if not path.is_file():
        return None
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ResultsError(
            f"{path}: not a readable CSV ({err}); re-create it with `cxrbench analyze`"
        ) from None
    return df if len(df) else None


def read_study(study_dir: Path | str) -> dict:
    path = Path(study_dir) / "study.json"
    if not path.is_file():
        raise ResultsError(
            f"{path}: not found; point to a study folder written by `cxrbench run` (results/<study>)"
        )
    return json.loads(path.read_text())


def done_runs(study_dir: Path | str) -> pd.DataFrame:
    """run_id, seed, fold, variant_id of every done cell listed in study.json."""
    info = read_study(study_dir)
    runs = Path(study_dir) / "runs"
    cells = pd.DataFrame(info["cells"], columns=["run_id", "seed", "fold", "variant_id"])
    done = cells[[(runs / r / "DONE").is_file() for r in cells["run_id"]]]
    return done.reset_index(drop=True)


def load_predictions(study_dir: Path | str, split: str = "test") -> pd.DataFrame:
    """All predictions of a split from every done cell, as one long table."""
    runs = done_runs(study_dir)
    if runs.empty:
        raise ResultsError(f"{study_dir}: no finished cells yet; run or resume the sweep first")
    frames = []
    for run_id in runs["run_id"]:
        path = Path(study_dir) / "runs" / run_id / "predictions.parquet"
        try:
            frame = pq.read_table(path, filters=[("split", "=", split)]).to_pandas()
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise ResultsError(
                f"{path}: not a readable Parquet predictions file ({exc}); only Parquet is "
                "accepted (never pickles); re-run the cell or restore the file"
            ) from None
        probs = frame.filter(like=PROB)
        if probs.isna().to_numpy().any():
            raise ResultsError(
                f"{path}: NaN probabilities; the cell's model produced invalid output — re-run it"
            )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def to_arrays(df: pd.DataFrame, class_names: list[str], task: str) -> PredictionSet:
    """Pivot a long prediction table into a PredictionSet (images in first-seen order)."""
    image_codes, image_ids = pd.factorize(df["image_id"])
    seeds = sorted(df["seed"].unique().tolist())
    variants = list(dict.fromkeys(["baseline", *df["variant_id"]]))
    variants = [v for v in variants if v in set(df["variant_id"])]
    s_idx = np.searchsorted(seeds, df["seed"].to_numpy())
    v_idx = pd.Categorical(df["variant_id"], categories=variants).codes
    n, c = len(image_ids), len(class_names)
    probs = np.full((len(seeds), len(variants), n, c), np.nan, np.float32)
    probs[s_idx, v_idx, image_codes] = df[[PROB + k for k in class_names]].to_numpy(np.float32)
    first = np.unique(image_codes, return_index=True)[1]
    rows = df.iloc[first]
    return PredictionSet(
        task=task,
        class_names=class_names,
        image_ids=np.asarray(image_ids, dtype=str),
        patient_ids=rows["patient_id"].to_numpy(str),
        fold=rows["fold"].to_numpy(np.int64),
        y=rows[[LABEL + k for k in class_names]].to_numpy(np.uint8),
        seeds=seeds,
        variants=variants,
        probs=probs,
    )


def load_prediction_set(study_dir: Path | str, split: str = "test") -> PredictionSet:
    info = read_study(study_dir)
    return to_arrays(load_predictions(study_dir, split), info["class_names"], info["task"])


def _read_json_per_run(study_dir: Path | str, name: str) -> list[tuple[pd.Series, dict]]:
    out = []
    for _, row in done_runs(study_dir).iterrows():
        path = Path(study_dir) / "runs" / row["run_id"] / name
        if path.is_file():
            out.append((row, json.loads(path.read_text())))
    return out


def load_measurements(study_dir: Path | str) -> pd.DataFrame:
    """One row per done cell: size, MACs and latency (flattened as latency_<device>_b<bs>_p50_ms)."""
    rows = []
    for run, m in _read_json_per_run(study_dir, "measure.json"):
        flat = {k: v for k, v in m.items() if not isinstance(v, (list, dict))}
        for lat in m.get("latency", []):
            tag = (
                f"{lat['device']}_b{lat['batch_size']}{'_compiled' if lat.get('compiled') else ''}"
            )
            flat[f"latency_{tag}_p50_ms"] = lat["p50_ms"]
            flat[f"latency_{tag}_p95_ms"] = lat["p95_ms"]
        rows.append({**run.to_dict(), **flat})
    return pd.DataFrame(rows)


def load_metrics(study_dir: Path | str) -> pd.DataFrame:
    """One row per done cell with its test thresholds and summary metrics (prefixed test_/val_)."""
    rows = []
    for run, m in _read_json_per_run(study_dir, "metrics.json"):
        flat = {"thresholds": m.get("thresholds")}
        for part in ("test", "val"):
            for k, v in (m.get(part) or {}).items():
                if not isinstance(v, (list, dict)):
                    flat[f"{part}_{k}"] = v
        for k, v in (m.get("compress") or {}).items():
            if not isinstance(v, (list, dict)):
                flat[f"compress_{k}"] = v
        rows.append({**run.to_dict(), **flat})
    return pd.DataFrame(rows)


def load_history(study_dir: Path | str) -> pd.DataFrame:
    frames = []
    for _, row in done_runs(study_dir).iterrows():
        path = Path(study_dir) / "runs" / row["run_id"] / "history.parquet"
        if path.is_file():
            frames.append(pd.read_parquet(path).assign(**row.to_dict()))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
