"""Labels and annotations built from table values (formatting only, no computation)."""

from __future__ import annotations

import math
import re

import pandas as pd


def finite(x: object) -> bool:
    """True for a real, finite number (False for NaN, None, empty strings)."""
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def fmt_p(p: object) -> str:
    """p-value as printed in figures: 3 decimals, or scientific below 0.001."""
    if not finite(p):
        return "n/a"
    p = float(p)  # type: ignore[arg-type]
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def fmt_interval(lo: object, hi: object, digits: int = 2) -> str:
    return f" [{float(lo):.{digits}f}, {float(hi):.{digits}f}]" if finite(lo) and finite(hi) else ""


def short_variant(variant: str) -> str:
    """``l1_unstructured_global[sparsity=0.9]`` -> ``l1 unstructured global @0.9``."""
    label = re.sub(r"\[sparsity=([^\]]+)\]", r" @\1", str(variant))
    label = re.sub(r"\[([^\]]+)\]", r" (\1)", label)
    return label.replace("_", " ")


def pretty(name: str) -> str:
    """Column or family name -> axis label."""
    special = {
        "auroc_macro": "macro AUROC",
        "ap_macro": "mAP (macro AP)",
        "accuracy": "accuracy",
        "f1_macro": "macro F1",
        "loss": "loss",
    }
    return special.get(name, str(name).replace("_", " "))


def correlation_text(row: pd.Series) -> str:
    """Multi-line annotation from one ``correlations.csv`` row: r and ρ with interval and p."""
    method = str(row.get("method", "") or "")
    prefix = "Mantel " if "mantel" in method.lower() else ""
    lines = []
    for key, symbol in (("pearson", "r"), ("spearman", "ρ")):
        r = row.get(f"{key}_r" if key == "pearson" else f"{key}_rho")
        if finite(r):
            ci = fmt_interval(row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high"))
            lines.append(f"{prefix}{symbol} = {float(r):.2f}{ci}, p = {fmt_p(row.get(f'{key}_p'))}")
    if finite(row.get("n")):
        lines.append(f"n = {int(row['n'])}")
    return "\n".join(lines)
