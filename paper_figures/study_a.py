"""Figures of the single-task study (A): data split, training, confusion, sensitivity, accuracy.

Every function takes the table(s) it draws and an output base path (no extension) and returns
the written PDF and PNG paths. Values come from the tables as written by ``cxrbench analyze``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.ticker import MaxNLocator

from paper_figures.style import (
    DIVERGING,
    REFERENCE,
    color,
    new_figure,
    point_interval,
    save,
    styled,
)
from paper_figures.text import finite, fmt_p, pretty, short_variant

PART_ORDER = ("train", "val", "test")
MAX_PANELS = 6
MAX_HEIGHT_IN = 24.0  # many variants: fewer metric rows rather than an endless figure


def _ordered_parts(parts: pd.Index) -> list[str]:
    known = [p for p in PART_ORDER if p in parts]
    return known + sorted(p for p in parts if p not in known and p != "all")


@styled
def plot_class_split(table: pd.DataFrame, out_base: Path, note: str = "") -> list[Path]:
    """Positive images per class in each split part: counts (stacked) and shares (100%)."""
    if "fold" in table.columns:  # k-fold: show the first fold's split
        table = table[table["fold"] == table["fold"].min()]
    counts = table.pivot_table(index="class", columns="part", values="count", aggfunc="sum")
    counts = counts[_ordered_parts(counts.columns)].fillna(0)
    counts = counts.loc[counts.sum(axis=1).sort_values().index]
    shares = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0)
    fig = new_figure(9, 0.28 * len(counts) + 1.6)
    ax_n, ax_s = fig.subplots(1, 2, sharey=True, width_ratios=[1.4, 1])
    y = np.arange(len(counts))
    left_n, left_s = np.zeros(len(counts)), np.zeros(len(counts))
    for i, part in enumerate(counts.columns):
        ax_n.barh(y, counts[part], left=left_n, color=color(i), label=part, height=0.75)
        ax_s.barh(y, shares[part], left=left_s, color=color(i), height=0.75)
        left_n += counts[part].to_numpy()
        left_s += shares[part].fillna(0).to_numpy()
    for yi, total in zip(y, left_n, strict=True):
        ax_n.annotate(f" {int(total)}", (total, yi), va="center", fontsize=7)
    ax_n.set_yticks(y, counts.index)
    ax_n.set_xlabel("positive images")
    ax_n.set_title("Positive images per class and split part")
    ax_n.legend(loc="lower right")
    ax_n.grid(axis="y", visible=False)
    ax_s.set_xlim(0, 1)
    ax_s.xaxis.set_major_formatter("{x:.0%}")
    ax_s.set_xlabel("share of the class's positives")
    ax_s.set_title("Split proportions per class")
    ax_s.grid(axis="y", visible=False)
    return save(fig, out_base, note)


@styled
def plot_training_curves(
    history: pd.DataFrame, out_base: Path, note: str = "", variant: str = "baseline"
) -> list[Path]:
    """Loss and accuracy per epoch, train vs validation: mean over runs, band = min–max."""
    if "variant_id" in history.columns:
        ids = list(dict.fromkeys(history["variant_id"]))
        variant = variant if variant in ids else ids[0]
        history = history[history["variant_id"] == variant]
    metrics = [m for m in ("loss", "accuracy", "auroc_macro") if history.get(m) is not None]
    metrics = [m for m in metrics if history[m].notna().any()]
    run_keys = [k for k in ("seed", "fold") if k in history.columns]
    n_runs = len(history.drop_duplicates(run_keys)) if run_keys else 1
    fig = new_figure(3.3 * len(metrics), 3.0)
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics, strict=True):
        for i, phase in enumerate(p for p in ("train", "val") if p in set(history["phase"])):
            g = history[history["phase"] == phase].groupby("epoch")[metric]
            mean, low, high = g.mean(), g.min(), g.max()
            name = "validation" if phase == "val" else phase
            ax.plot(mean.index, mean, color=color(i), marker="o", markersize=3, label=name)
            ax.fill_between(mean.index, low, high, color=color(i), alpha=0.2, linewidth=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(pretty(metric))
        ax.set_title(pretty(metric).capitalize())
    axes[0].legend()
    fig.suptitle(
        f"Training curves ({short_variant(variant)}): mean of {n_runs} runs, band = min–max"
    )
    return save(fig, out_base, note)


@styled
def plot_confusion(table: pd.DataFrame, out_base: Path, note: str = "") -> list[Path]:
    """Confusion matrix per variant: colour = share of the true class, text = count (share)."""
    variants = list(dict.fromkeys(table["variant"]))[:MAX_PANELS]
    classes = list(dict.fromkeys([*table["true"], *table["predicted"]]))
    side = max(2.6, 0.55 * len(classes) + 1.4)
    fig = new_figure(side * len(variants), side + 0.4)
    axes = np.atleast_1d(fig.subplots(1, len(variants)))
    for ax, variant in zip(axes, variants, strict=True):
        t = table[table["variant"] == variant]
        m = t.pivot_table(index="true", columns="predicted", values="count", aggfunc="sum")
        m = m.reindex(index=classes, columns=classes).fillna(0)
        share = m.div(m.sum(axis=1).replace(0, np.nan), axis=0).fillna(0)
        ax.imshow(share.to_numpy(), cmap="Blues", vmin=0, vmax=1)
        for (i, j), n in np.ndenumerate(m.to_numpy()):
            s = share.iat[i, j]
            ax.text(
                j,
                i,
                f"{int(n)}\n({s:.0%})",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if s > 0.6 else "black",
            )
        ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(textwrap.fill(short_variant(variant), 24), fontsize=8)
        ax.grid(False)
    return save(fig, out_base, note)


@styled
def plot_sensitivity(table: pd.DataFrame, out_base: Path, note: str = "") -> list[Path]:
    """Per-layer pruning sensitivity: change of the metric when one layer alone is pruned."""
    metric = table["metric"].iloc[0]
    table = table[table["metric"] == metric].assign(
        change=lambda d: d["value"] - d["baseline_value"]
    )
    methods = list(dict.fromkeys(table["method"]))
    layers = list(dict.fromkeys(table["layer"]))
    limit = float(np.nanmax(np.abs(table["change"]))) or 1e-6
    norm = TwoSlopeNorm(vcenter=0, vmin=-limit, vmax=limit)
    fig = new_figure(2.6 * len(methods) + 2.4, 0.17 * len(layers) + 1.8)
    axes = np.atleast_1d(fig.subplots(1, len(methods), sharey=True))
    image = None
    for ax, method in zip(axes, methods, strict=True):
        m = table[table["method"] == method].pivot_table(
            index="layer", columns="amount", values="change", aggfunc="mean"
        )
        m = m.reindex(index=layers)
        image = ax.imshow(m.to_numpy(), cmap=DIVERGING, norm=norm, aspect="auto")
        ax.set_xticks(range(m.shape[1]), [f"{a:.0%}" for a in m.columns], rotation=45)
        ax.set_yticks(range(len(layers)), layers, fontsize=6 if len(layers) > 20 else 8)
        if m.size <= 120:
            for (i, j), v in np.ndenumerate(m.to_numpy()):
                if finite(v):
                    ink = "white" if abs(v) > 0.6 * limit else "black"
                    ax.text(j, i, f"{v:+.3f}", ha="center", va="center", fontsize=6, color=ink)
        ax.set_xlabel("fraction of the layer pruned")
        ax.set_title(pretty(method))
        ax.grid(False)
    fig.colorbar(
        image, ax=list(axes), label=f"Δ {pretty(metric)} vs unpruned", shrink=0.6, aspect=30
    )
    fig.suptitle("Per-layer pruning sensitivity (validation)")
    return save(fig, out_base, note)


def _variant_order(table: pd.DataFrame) -> list[str]:
    """Baseline first, then by family and sparsity, keeping the table's order otherwise."""
    first = table.drop_duplicates("variant").reset_index(drop=True)
    first["is_base"] = first["variant"] != "baseline"
    keys = ["is_base"] + [k for k in ("family", "sparsity") if k in first.columns]
    return first.sort_values(keys, kind="stable", na_position="first")["variant"].tolist()


def _metric_order(metrics: pd.Series) -> list[str]:
    preferred = ["auroc_macro", "ap_macro", "accuracy", "f1_macro"]
    present = list(dict.fromkeys(metrics))
    return ([m for m in preferred if m in present] + [m for m in present if m not in preferred])[:4]


@styled
def plot_compressed_vs_baseline(
    summary: pd.DataFrame, out_base: Path, note: str = ""
) -> list[Path]:
    """Each metric per variant with its interval, and the paired change vs baseline with its
    interval and adjusted p-value (all from ``summary.csv``)."""
    variants = _variant_order(summary)[::-1]
    panel_height = 0.26 * len(variants) + 0.9
    metrics = _metric_order(summary["metric"])[: max(1, int(MAX_HEIGHT_IN // panel_height))]
    fig = new_figure(8.5, panel_height * len(metrics) + 0.3)
    axes = np.atleast_2d(fig.subplots(len(metrics), 2, sharey=True))
    y = {v: i for i, v in enumerate(variants)}
    for (ax_v, ax_d), metric in zip(axes, metrics, strict=True):
        rows = summary[summary["metric"] == metric].set_index("variant")
        for v, r in rows.iterrows():
            c = REFERENCE if v == "baseline" else color(0)
            point_interval(ax_v, y[v], r["mean"], r["ci_low"], r["ci_high"], horizontal=True, c=c)
            if v == "baseline" and finite(r["mean"]):
                ax_v.axvline(r["mean"], color=REFERENCE, linestyle=":", linewidth=1)
            if finite(r.get("delta")):
                point_interval(
                    ax_d,
                    y[v],
                    r["delta"],
                    r["delta_ci_low"],
                    r["delta_ci_high"],
                    horizontal=True,
                    c=color(1),
                )
                ax_d.annotate(
                    f"p={fmt_p(r.get('pvalue_adj'))}",
                    (1.0, y[v]),
                    xycoords=("axes fraction", "data"),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                )
        ax_d.axvline(0, color=REFERENCE, linewidth=1)
        ax_v.set_xlabel(pretty(metric))
        tests = ", ".join(str(t) for t in dict.fromkeys(rows.get("test", pd.Series()).dropna()))
        ax_d.set_xlabel(f"Δ {pretty(metric)} vs baseline (paired)")
        if tests:
            ax_d.set_title(f"test: {tests}; p adjusted", fontsize=8, loc="left")
    for ax in axes[:, 0]:
        ax.set_yticks(range(len(variants)), [short_variant(v) for v in variants])
        ax.set_ylim(-0.6, len(variants) - 0.4)
    fig.suptitle("Baseline vs compressed: mean over runs with interval")
    return save(fig, out_base, note)


@styled
def plot_study_a_accuracy(table: pd.DataFrame, out_base: Path, note: str = "") -> list[Path]:
    """Test accuracy per variant with interval, correct/n and McNemar's p vs baseline."""
    table = table.iloc[::-1].reset_index(drop=True)
    fig = new_figure(6.5, 0.35 * len(table) + 1.2)
    ax = fig.subplots()
    for i, r in table.iterrows():
        c = REFERENCE if r["variant"] == "baseline" else color(0)
        point_interval(ax, i, r["accuracy"], r["ci_low"], r["ci_high"], horizontal=True, c=c)
        p = "" if r["variant"] == "baseline" else f", McNemar p={fmt_p(r.get('mcnemar_p'))}"
        ax.annotate(
            f"{int(r['correct'])}/{int(r['n'])}{p}",
            (1.0, i),
            xycoords=("axes fraction", "data"),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    ax.set_yticks(range(len(table)), [short_variant(v) for v in table["variant"]])
    ax.set_ylim(-0.6, len(table) - 0.4)
    ax.xaxis.set_major_formatter("{x:.0%}")
    ax.set_xlabel("test accuracy (interval from the table)")
    ax.set_title("Accuracy per variant")
    return save(fig, out_base, note)
