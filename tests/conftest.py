"""Shared fixtures: one uninterrupted reference sweep that the sweep tests compare against."""

from __future__ import annotations

import pandas as pd
import pytest
from tiny import tiny_config

from analysis.io import load_predictions


def sorted_predictions(study_dir) -> pd.DataFrame:
    df = load_predictions(study_dir)
    return df.sort_values(["seed", "fold", "variant_id", "image_id"]).reset_index(drop=True)


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """The tiny study (2 seeds x 2 folds x 3 variants) run once, uninterrupted, in-process."""
    from bench.runner import run_study

    cfg = tiny_config(tmp_path_factory.mktemp("reference"))
    summary = run_study(cfg, progress=False)
    assert summary.failed == [], summary.errors
    return cfg, sorted_predictions(cfg.study_dir)
