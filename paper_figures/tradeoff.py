"""Accuracy–cost trade-off: metric (with interval) vs latency or MACs and vs bytes, with the
Pareto front (variants no other variant beats on both: higher metric and lower cost)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import EngFormatter

from paper_figures.errors import NothingToDraw
from paper_figures.style import REFERENCE, color, new_figure, save, styled
from paper_figures.text import pretty, short_variant

LATENCY = "latency_cpu_b32_p50_ms"
BYTES = ("bytes_stored", "bytes_sparse", "bytes_dense")
MAX_LABELS = 12  # with more variants only the baseline is labelled (colours give the family)


def pareto_front(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated points (lower cost and higher value are better).

    A point is dominated when another point is at least as good on both and better on one.
    NaN points are never on the front.
    """
    cost, value = np.asarray(cost, float), np.asarray(value, float)
    ok = np.isfinite(cost) & np.isfinite(value)
    no_worse = (cost[None, :] <= cost[:, None]) & (value[None, :] >= value[:, None])
    better = (cost[None, :] < cost[:, None]) | (value[None, :] > value[:, None])
    dominated = (no_worse & better & ok[None, :]).any(axis=1)
    return ok & ~dominated


def _cost_columns(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, axis label) of the speed cost (latency, else MACs) and of the size cost."""
    out = []
    if LATENCY in table.columns and table[LATENCY].notna().any():
        out.append((LATENCY, "CPU latency, batch 32, p50 (ms)"))
    elif "macs" in table.columns and table["macs"].notna().any():
        out.append(("macs", "multiply-accumulates per image"))
    size = next((c for c in BYTES if c in table.columns and table[c].notna().any()), None)
    if size:
        out.append((size, f"model size ({size.replace('_', ' ')})"))
    return out


def _family(variant: str) -> str:
    return str(variant).split("[", 1)[0]


@styled
def plot_tradeoff(table: pd.DataFrame, out_base: Path, note: str = "") -> list[Path]:
    """Metric vs speed cost and vs size per variant, coloured by compression family; the
    Pareto front is a step line through the outlined points."""
    metric = table["metric"].iloc[0]
    table = table[table["metric"] == metric].reset_index(drop=True)
    costs = _cost_columns(table)
    if not costs:
        raise NothingToDraw("no latency, MACs or bytes values to plot the metric against")
    fig = new_figure(4.6 * len(costs) + 1.6, 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(costs), sharey=True))
    value = table["metric_mean"].to_numpy(float)
    low, high = table["metric_ci_low"].to_numpy(float), table["metric_ci_high"].to_numpy(float)
    names = table["variant"].astype(str)
    families = list(dict.fromkeys(names.map(_family)))
    label_all = len(names) <= MAX_LABELS
    for ax, (col, label) in zip(axes, costs, strict=True):
        cost = table[col].to_numpy(float)
        front = pareto_front(cost, value)
        ax.vlines(cost, low, high, color="#b3b3b3", linewidth=1.0, zorder=1)
        for i, family in enumerate(families):
            mine = (names.map(_family) == family).to_numpy()
            c = REFERENCE if family == "baseline" else color(i)
            ax.scatter(cost[mine], value[mine], color=c, s=22, zorder=2, label=pretty(family))
        ax.scatter(
            cost[front],
            value[front],
            facecolor="none",
            edgecolor="black",
            s=70,
            linewidth=1.0,
            zorder=3,
            label="Pareto front",
        )
        order = np.argsort(cost[front])
        ax.step(
            cost[front][order],
            value[front][order],
            where="post",
            color="black",
            linewidth=0.9,
            zorder=2,
        )
        for c, v, name in zip(cost, value, names, strict=True):
            if (label_all or name == "baseline") and np.isfinite(c) and np.isfinite(v):
                ax.annotate(
                    short_variant(name),
                    (c, v),
                    xytext=(4, 3),
                    textcoords="offset points",
                    fontsize=6,
                    color=REFERENCE,
                )
        if np.nanmax(cost) > 20 * np.nanmin(cost[cost > 0], initial=np.inf):
            ax.set_xscale("log")
        ax.xaxis.set_major_formatter(EngFormatter(unit="B" if col.startswith("bytes") else ""))
        ax.set_xlabel(label)
    axes[0].set_ylabel(f"{pretty(metric)} (interval from the table)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right center")
    fig.suptitle("Accuracy–cost trade-off (lower cost and higher metric are better)")
    return save(fig, out_base, note)
