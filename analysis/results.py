"""Result objects shaped like scipy.stats results, and multiplicity adjustment of tidy tables.

Every interval or test in `analysis` returns one of these, so tables and figures read the
same fields everywhere: ``statistic``, ``pvalue``, ``confidence_interval.low/.high``,
``confidence_level``, ``n`` and ``method``. Fields may be floats or NumPy arrays (one entry
per class); ``pd.DataFrame(result.to_dict())`` then gives one row per class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

ADJUST_METHODS = ("holm", "fdr_bh")


class StatsInputError(ValueError):
    """Bad input to a statistics function; the message says what was expected."""


@dataclass(frozen=True)
class ConfidenceInterval:
    """Two-sided interval ``[low, high]`` (floats or arrays of the same shape)."""

    low: Any
    high: Any


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval (no test)."""

    statistic: Any
    confidence_interval: ConfidenceInterval
    confidence_level: float
    n: int
    method: str
    standard_error: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Flat record: statistic, ci_low, ci_high, confidence_level, n, method, standard_error."""
        return {
            "statistic": self.statistic,
            "ci_low": self.confidence_interval.low,
            "ci_high": self.confidence_interval.high,
            "confidence_level": self.confidence_level,
            "n": self.n,
            "method": self.method,
            "standard_error": np.nan if self.standard_error is None else self.standard_error,
        }


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison: test statistic, p-value, and the effect with its interval.

    ``estimate`` is the effect (e.g. mean of variant − baseline); ``confidence_interval``
    is the interval of that effect, not of the test statistic.
    """

    statistic: Any
    pvalue: Any
    confidence_interval: ConfidenceInterval
    confidence_level: float
    n: int
    method: str
    estimate: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Flat record: statistic, pvalue, estimate, ci_low, ci_high, confidence_level, n, method."""
        return {
            "statistic": self.statistic,
            "pvalue": self.pvalue,
            "estimate": np.nan if self.estimate is None else self.estimate,
            "ci_low": self.confidence_interval.low,
            "ci_high": self.confidence_interval.high,
            "confidence_level": self.confidence_level,
            "n": self.n,
            "method": self.method,
        }


def to_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Tidy DataFrame from flat records (e.g. ``{"variant": v, **test.to_dict()}``)."""
    return pd.DataFrame.from_records(list(records))


def adjust(
    df: pd.DataFrame,
    method: str = "holm",
    by: str | Sequence[str] | None = None,
    pvalue_col: str = "pvalue",
) -> pd.DataFrame:
    """Return a copy of ``df`` with ``pvalue_adj`` and ``adj_method`` added.

    ``method`` is ``"holm"`` (family-wise error) or ``"fdr_bh"`` (false discovery rate),
    applied with statsmodels' ``multipletests`` within each family given by the ``by``
    columns (all rows form one family when ``by`` is None). NaN p-values stay NaN and do
    not count towards the family size.
    """
    if method not in ADJUST_METHODS:
        raise StatsInputError(f"adjust: method {method!r} is not one of {ADJUST_METHODS}")
    if pvalue_col not in df.columns:
        raise StatsInputError(
            f"adjust: column {pvalue_col!r} missing; columns are {list(df.columns)}"
        )
    p_all = df[pvalue_col].to_numpy(dtype=float)
    adjusted = np.full(len(df), np.nan)
    if by is None:
        families = [np.arange(len(df))]
    else:
        families = df.groupby(list(np.atleast_1d(by)), sort=False, dropna=False).indices.values()
    for rows in families:
        rows = rows[~np.isnan(p_all[rows])]
        if rows.size:
            adjusted[rows] = multipletests(p_all[rows], method=method)[1]
    out = df.copy()
    out["pvalue_adj"] = adjusted
    out["adj_method"] = method
    return out
