"""Pieces of the analysis tables checked on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.study import parse_variant
from analysis.tables import _noninferiority, display_frame


def test_noninferiority_is_decided_by_the_interval_bound():
    table = pd.DataFrame(
        {
            "variant": ["baseline", "a", "b", "c", "d"],
            "metric": ["auroc_macro", "auroc_macro", "auroc_macro", "brier", "brier"],
            "delta_ci_low": [np.nan, -0.005, -0.02, -0.01, -0.01],
            "delta_ci_high": [np.nan, 0.01, 0.01, 0.005, 0.02],
        }
    )
    out = _noninferiority(table, margin=0.01)
    # a: low −0.005 > −0.01 → non-inferior; b: low −0.02 crosses the margin → not shown;
    # c (Brier, lower is better): high 0.005 < 0.01 → non-inferior; d: high 0.02 → not shown
    assert out["noninferior"].tolist()[1:] == [True, False, True, False]
    assert pd.isna(out.loc[0, "noninferior"]) and pd.isna(out.loc[0, "ni_margin"])


def test_parse_variant():
    assert parse_variant("baseline") == ("baseline", 0.0)
    assert parse_variant("l1_unstructured_global[sparsity=0.95]") == (
        "l1_unstructured_global",
        0.95,
    )
    assert parse_variant("structured_channels[ratio=0.5]+static_int8") == (
        "structured_channels",
        None,
    )
    assert parse_variant("l1_unstructured_global[include_head=False,sparsity=0.5]")[1] is None


def test_display_frame_joins_intervals():
    df = pd.DataFrame(
        {
            "mean": [0.81234],
            "ci_low": [0.8],
            "ci_high": [0.9],
            "delta": [-0.01],
            "delta_ci_low": [-0.02],
            "delta_ci_high": [0.0],
        }
    )
    shown = display_frame(df)
    assert (
        shown.loc[0, "mean"] == "0.8123 [0.8, 0.9]" and shown.loc[0, "delta"] == "-0.01 [-0.02, 0]"
    )
    assert list(shown.columns) == ["mean", "delta"]


def test_one_seed_one_test_set_uses_image_level_tests(tmp_path):
    from fake_study import make_fake_study

    from analysis.tables import analyze

    tables = analyze(make_fake_study(tmp_path, seeds=1), rng=0)
    summary = tables["summary"].set_index(["variant", "metric"])
    compared = summary.drop(index="baseline", level=0)
    tests = compared["test"].to_dict()
    assert tests[("l1_unstructured_global[sparsity=0.9]", "accuracy")] == "McNemar exact"
    assert tests[("l1_unstructured_global[sparsity=0.9]", "auroc_macro")].startswith(
        "paired cluster bootstrap"
    )
    assert compared.loc[("l1_unstructured_global[sparsity=0.9]", "auroc_macro"), "pvalue"] < 0.05
    base = summary.loc[("baseline", "auroc_macro")]
    assert base["ci_low"] < base["mean"] < base["ci_high"] and "bootstrap" in base["ci_method"]
    per_class = tables["per_class"]
    assert set(per_class.loc[per_class["metric"] == "auroc", "test"].dropna()) == {"DeLong"}
