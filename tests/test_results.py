"""analysis.results: flat records and multiplicity adjustment (reference: statsmodels)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.results import (
    ConfidenceInterval,
    Estimate,
    PairedTest,
    StatsInputError,
    adjust,
    to_frame,
)


def test_to_dict_flattens_and_objects_are_frozen():
    test = PairedTest(2.0, 0.04, ConfidenceInterval(0.1, 0.9), 0.95, 10, "paired t", 0.5)
    assert test.to_dict() == {
        "statistic": 2.0,
        "pvalue": 0.04,
        "estimate": 0.5,
        "ci_low": 0.1,
        "ci_high": 0.9,
        "confidence_level": 0.95,
        "n": 10,
        "method": "paired t",
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        test.pvalue = 0.5
    est = Estimate(0.8, ConfidenceInterval(0.7, 0.9), 0.95, 100, "t interval")
    assert est.to_dict()["ci_high"] == 0.9 and np.isnan(est.to_dict()["standard_error"])


def test_array_fields_give_one_row_per_class():
    est = Estimate(np.array([0.1, 0.2]), ConfidenceInterval(np.zeros(2), np.ones(2)), 0.95, 5, "x")
    df = pd.DataFrame(est.to_dict())
    assert len(df) == 2 and (df["n"] == 5).all()


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_adjust_matches_statsmodels_by_family_and_keeps_nan(method):
    p = [0.01, 0.04, np.nan, 0.03, 0.2, 0.001, 0.5]
    fam = ["a", "a", "a", "a", "b", "b", "b"]
    df = to_frame([{"family": f, "pvalue": v} for f, v in zip(fam, p, strict=True)])
    df.index = [3, 3, 1, 1, 0, 0, 0]  # duplicate labels must not confuse the assignment
    out = adjust(df, method, by="family")
    # reference: statsmodels on each family without the NaN
    want_a = multipletests([0.01, 0.04, 0.03], method=method)[1]
    want_b = multipletests([0.2, 0.001, 0.5], method=method)[1]
    got = out["pvalue_adj"].to_numpy()
    np.testing.assert_allclose(got[[0, 1, 3]], want_a)
    np.testing.assert_allclose(got[[4, 5, 6]], want_b)
    assert np.isnan(got[2])
    assert (out["adj_method"] == method).all()
    assert "pvalue_adj" not in df.columns  # input untouched


def test_adjust_whole_table_and_bad_method():
    df = pd.DataFrame({"pvalue": [0.01, 0.02, 0.03]})
    # Holm by hand: sorted p·(m − i + 1) = 0.03, 0.04, 0.03 → running max 0.03, 0.04, 0.04
    np.testing.assert_allclose(adjust(df)["pvalue_adj"], [0.03, 0.04, 0.04])
    with pytest.raises(StatsInputError, match="not one of"):
        adjust(df, "bonferonni")
