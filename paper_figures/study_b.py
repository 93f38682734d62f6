"""Figures of the long-tailed multi-label study (B): metric vs sparsity, forgettability,
frequency relations, forgettability-curve dissimilarity (FCD), weights, PIEs.

Every function takes the table(s) it draws and an output base path (no extension) and returns
the written PDF and PNG paths. Correlations, intervals and p-values are read from the tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory

from paper_figures.errors import FigureError
from paper_figures.style import REFERENCE, SEQUENTIAL, color, new_figure, save, styled
from paper_figures.text import correlation_text, finite, pretty, short_variant

FORGOTTEN_THRESHOLD = -0.20  # study B's definition: forgotten once the median Δ < −20%
NEVER_Y = 1.05  # where classes that are never forgotten are drawn (sparsity is below 1)
MAX_PANELS = 4
ANNOTATION_BOX = {"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "#cccccc"}


def _percent(ax, axis: str = "y") -> None:
    getattr(ax, f"{axis}axis").set_major_formatter("{x:.0%}")


def _annotate(ax, text: str, loc: str = "upper left") -> None:
    if not text:
        return
    x, ha = (0.03, "left") if "left" in loc else (0.97, "right")
    y, va = (0.97, "top") if "upper" in loc else (0.03, "bottom")
    ax.text(x, y, text, transform=ax.transAxes, ha=ha, va=va, fontsize=7, bbox=ANNOTATION_BOX)


def _correlation(correlations: pd.DataFrame | None, x: str, y: str) -> pd.Series | None:
    if correlations is None:
        return None
    rows = correlations[(correlations["x"] == x) & (correlations["y"] == y)]
    return rows.iloc[0] if len(rows) else None


@styled
def plot_metric_vs_sparsity(table: pd.DataFrame, out_base: Path, note: str = "") -> list[Path]:
    """Overall metric vs sparsity, one line per pruning family, interval as a band."""
    metrics = list(dict.fromkeys(table["metric"]))[:3]
    fig = new_figure(3.6 * len(metrics), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics, strict=True):
        rows = table[table["metric"] == metric]
        for i, family in enumerate(dict.fromkeys(rows["family"])):
            f = rows[rows["family"] == family].sort_values("sparsity")
            ax.plot(
                f["sparsity"],
                f["mean"],
                marker="o",
                markersize=3,
                color=color(i),
                label=pretty(family),
            )
            ax.fill_between(
                f["sparsity"], f["ci_low"], f["ci_high"], color=color(i), alpha=0.2, linewidth=0
            )
        _percent(ax, "x")
        ax.set_xlabel("sparsity")
        ax.set_ylabel(pretty(metric))
        ax.set_title(f"{pretty(metric)} vs sparsity")
    axes[0].legend(loc="lower left")
    fig.suptitle("Overall performance under pruning (band: interval from the table)")
    return save(fig, out_base, note)


def choose_classes(summary: pd.DataFrame | None, classes: list[str], k: int = 4) -> list[str]:
    """The most frequent class, the rarest and ``k - 2`` spread in between (by training count)."""
    if summary is None or "n_train_pos" not in summary.columns:
        return classes[:k]
    ranked = summary[summary["class"].isin(classes)].sort_values("n_train_pos", ascending=False)
    names = ranked["class"].tolist()
    picks = np.unique(np.linspace(0, len(names) - 1, min(k, len(names))).round().astype(int))
    return [names[i] for i in picks]


@styled
def plot_forgetting_curves(
    curves: pd.DataFrame,
    out_base: Path,
    summary: pd.DataFrame | None = None,
    classes: list[str] | None = None,
    note: str = "",
) -> list[Path]:
    """Forgettability curves (median relative change of the per-class metric vs sparsity):
    chosen classes with their intervals, and every class coloured by log training frequency."""
    all_classes = list(dict.fromkeys(curves["class"]))
    chosen = classes or choose_classes(summary, all_classes)
    unknown = [c for c in chosen if c not in all_classes]
    if unknown:
        raise FigureError(
            f"forgettability curves: unknown class(es) {unknown}; known: {all_classes}"
        )
    threshold = FORGOTTEN_THRESHOLD
    if (
        summary is not None
        and "threshold" in summary.columns
        and finite(summary["threshold"].iloc[0])
    ):
        threshold = float(summary["threshold"].iloc[0])
    has_freq = summary is not None and "log_frequency" in summary.columns
    fig = new_figure(10 if has_freq else 5.2, 3.6)
    axes = np.atleast_1d(fig.subplots(1, 2 if has_freq else 1, sharey=True))
    ax = axes[0]
    for i, name in enumerate(chosen):
        c = curves[curves["class"] == name].sort_values("sparsity")
        label = name
        if summary is not None and "n_train_pos" in summary.columns:
            n = summary.loc[summary["class"] == name, "n_train_pos"]
            label = f"{name} (n={int(n.iloc[0])})" if len(n) and finite(n.iloc[0]) else name
        ax.plot(
            c["sparsity"], c["median_delta"], marker="o", markersize=3, color=color(i), label=label
        )
        ax.fill_between(
            c["sparsity"], c["ci_low"], c["ci_high"], color=color(i), alpha=0.18, linewidth=0
        )
    ax.set_title("Selected classes (band: interval over seeds)")
    ax.legend(loc="lower left")
    if has_freq:
        freq = summary.set_index("class")["log_frequency"]
        norm = Normalize(float(freq.min()), float(freq.max()))
        cmap = ScalarMappable(norm=norm, cmap=SEQUENTIAL)
        for name in all_classes:
            c = curves[curves["class"] == name].sort_values("sparsity")
            value = freq.get(name, np.nan)
            col = cmap.to_rgba(value) if finite(value) else REFERENCE
            axes[1].plot(c["sparsity"], c["median_delta"], color=col, linewidth=1.1)
        fig.colorbar(cmap, ax=axes[1], label="log(positive training images)")
        axes[1].set_title("All classes")
    for a in axes:
        a.axhline(threshold, color=REFERENCE, linestyle="--", linewidth=1)
        a.axhline(0, color=REFERENCE, linewidth=0.6)
        a.text(
            0.01,
            threshold,
            f" forgotten: Δ < {threshold:.0%}",
            transform=blended_transform_factory(a.transAxes, a.transData),
            va="bottom",
            fontsize=7,
            color=REFERENCE,
        )
        _percent(a, "x")
        _percent(a, "y")
        a.set_xlabel("sparsity")
    axes[0].set_ylabel("median relative change Δ")
    return save(fig, out_base, note)


@styled
def plot_frequency_vs_forgetting(
    summary: pd.DataFrame, out_base: Path, correlations: pd.DataFrame | None = None, note: str = ""
) -> list[Path]:
    """Log training frequency vs the sparsity at which a class is forgotten, and vs Δ at the
    highest sparsity; annotated with r and ρ (interval, p) from ``correlations.csv``.
    Classes never forgotten are drawn as open circles on the top edge."""
    fig = new_figure(10, 4.0)
    ax_f, ax_d = fig.subplots(1, 2)
    x = summary["log_frequency"]
    forgotten = summary["forgotten_at"].apply(finite)
    y_forgotten = summary["forgotten_at"].where(forgotten, NEVER_Y)
    ax_f.scatter(x[forgotten], y_forgotten[forgotten], color=color(0), label="forgotten", zorder=3)
    if (~forgotten).any():
        ax_f.scatter(
            x[~forgotten],
            y_forgotten[~forgotten],
            facecolor="white",
            edgecolor=color(1),
            label="never forgotten",
            zorder=3,
        )
    ax_f.axhline(1.0, color="#cccccc", linewidth=0.8)
    ax_f.set_ylim(0, NEVER_Y + 0.05)
    ax_f.set_yticks(
        [*np.linspace(0, 1, 6), NEVER_Y], [*(f"{v:.0%}" for v in np.linspace(0, 1, 6)), "never"]
    )
    ax_d.scatter(x, summary["delta_at_max"], color=color(0), zorder=3)
    for ax, ys, ycol in (
        (ax_f, y_forgotten, "forgotten_at"),
        (ax_d, summary["delta_at_max"], "delta_at_max"),
    ):
        for name, xv, yv in zip(summary["class"], x, ys, strict=True):
            ax.annotate(
                str(name),
                (xv, yv),
                xytext=(3, 2),
                textcoords="offset points",
                fontsize=6,
                color=REFERENCE,
            )
        row = _correlation(correlations, "log_frequency", ycol)
        where = "lower right" if ycol == "forgotten_at" else "upper left"
        _annotate(ax, correlation_text(row) if row is not None else "", loc=where)
        ax.set_xlabel("log(positive training images)")
    ax_f.set_ylabel("forgotten at (sparsity)")
    ax_f.set_title("Sparsity at which a class is forgotten")
    ax_f.legend(loc="lower left")
    ax_d.set_ylabel("median Δ at the highest sparsity")
    _percent(ax_d)
    ax_d.set_title("Relative change at the highest sparsity")
    return save(fig, out_base, note)


@styled
def plot_fcd(
    pairs: pd.DataFrame, out_base: Path, correlations: pd.DataFrame | None = None, note: str = ""
) -> list[Path]:
    """Forgettability-curve dissimilarity of each class pair vs |Δ log frequency| and vs the
    co-occurrence IoU^(1/4), annotated with the Mantel statistics from ``correlations.csv``."""
    fig = new_figure(9, 3.6)
    axes = fig.subplots(1, 2, sharey=True)
    panels = (
        ("abs_dlogfreq", pairs["abs_dlogfreq"], "|Δ log frequency| of the pair"),
        ("iou_quarter", pairs["iou"] ** 0.25, "co-occurrence IoU$^{1/4}$ (textbook IoU)"),
    )
    for i, (ax, (key, xv, label)) in enumerate(zip(axes, panels, strict=True)):
        ax.scatter(xv, pairs["fcd"], s=12, alpha=0.7, color=color(i), edgecolor="none")
        row = _correlation(correlations, key, "fcd")
        _annotate(
            ax,
            correlation_text(row) if row is not None else "",
            loc="upper left" if key == "abs_dlogfreq" else "upper right",
        )
        ax.set_xlabel(label)
    axes[0].set_ylabel("FCD (distance between curves)")
    fig.suptitle(f"Forgettability-curve dissimilarity of {len(pairs)} class pairs")
    return save(fig, out_base, note)


@styled
def plot_weights_histogram(
    hist: pd.DataFrame, out_base: Path, thresholds: pd.DataFrame | None = None, note: str = ""
) -> list[Path]:
    """Distribution of the baseline's weight magnitudes (log x) with the global L1 pruning
    threshold of each sparsity as a vertical line."""
    fig = new_figure(6.5, 3.4)
    ax = fig.subplots()
    widths = hist["bin_right"] - hist["bin_left"]
    ax.bar(
        hist["bin_left"],
        hist["count"],
        width=widths,
        align="edge",
        color=color(5),
        edgecolor="none",
    )
    ax.set_xscale("log")
    if thresholds is not None:
        t = thresholds.sort_values("sparsity")
        for i, (_, r) in enumerate(t.iterrows()):
            ax.axvline(
                r["threshold"],
                color=color(i % 5),
                linestyle="--",
                linewidth=1,
                label=f"{r['sparsity']:.0%}",
            )
        ax.legend(
            title="pruning threshold at sparsity",
            ncols=min(5, max(1, len(t) // 3)),
            fontsize=7,
            loc="upper left",
        )
    ax.set_xlabel("|weight| (baseline model)")
    ax.set_ylabel("number of weights")
    ax.set_title("Weight magnitudes of the baseline model")
    return save(fig, out_base, note)


def ratio_axis(ax, axis: str, ratios: np.ndarray) -> None:
    """Log axis symmetric around the reference ratio 1, labelled 0.5, 1, 2 rather than 10^x."""
    spread = np.nanmax(np.abs(np.log10(ratios[ratios > 0])), initial=np.log10(2))
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    (ax.set_xlim if axis == "x" else ax.set_ylim)(10 ** (-1.15 * spread), 10 ** (1.15 * spread))
    target = getattr(ax, f"{axis}axis")
    target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def _groups(table: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(table["variant"], table["rule"], strict=True)))[:MAX_PANELS]


def _ratio_bars(ax, labels: list[str], ratios: pd.Series, colors: list[str], horizontal: bool):
    """Bars from the reference 1 to each ratio on a log axis; non-positive ratios noted."""
    pos = np.arange(len(labels))
    ok = ratios.apply(lambda r: finite(r) and r > 0).to_numpy()
    values = ratios.where(ok, 1.0).astype(float).to_numpy()
    bar = ax.barh if horizontal else ax.bar
    kw = {"left": 1.0, "width": values - 1} if horizontal else {"bottom": 1.0, "height": values - 1}
    bar(pos, **kw, color=colors, **({"height": 0.7} if horizontal else {"width": 0.7}))
    for p_, r, good in zip(pos, ratios, ok, strict=True):
        if not good:
            xy = (1.0, p_) if horizontal else (p_, 1.0)
            ax.annotate("n/a" if not finite(r) else "0", xy, fontsize=6, ha="center", va="center")
    (ax.axvline if horizontal else ax.axhline)(1.0, color=REFERENCE, linewidth=1)
    ratio_axis(ax, "x" if horizontal else "y", values)
    if horizontal:
        ax.set_yticks(pos, labels)
        ax.grid(axis="y", visible=False)
    else:
        ax.set_xticks(pos, labels)
        ax.grid(axis="x", visible=False)


@styled
def plot_pie_prevalence(table: pd.DataFrame, out_base: Path, note: str = "") -> list[Path]:
    """Per-class prevalence in PIEs / in non-PIEs (log scale, 1 = no difference); bars with an
    adjusted p-value below 0.05 (from the table) are highlighted."""
    groups = _groups(table)
    n_classes = table["class"].nunique()
    fig = new_figure(3.4 * len(groups) + 0.6, 0.24 * n_classes + 1.6)
    axes = np.atleast_1d(fig.subplots(1, len(groups), sharey=True))
    first = table[(table["variant"] == groups[0][0]) & (table["rule"] == groups[0][1])]
    order = first.sort_values("ratio", na_position="first")["class"].tolist()
    order += [c for c in dict.fromkeys(table["class"]) if c not in order]
    for ax, (variant, rule) in zip(axes, groups, strict=True):
        t = table[(table["variant"] == variant) & (table["rule"] == rule)]
        t = t.set_index("class").reindex(order)
        significant = t.get("pvalue_adj", pd.Series(np.nan, index=t.index)) < 0.05
        colors = [color(3) if s else color(0) for s in significant]
        _ratio_bars(ax, order, t["ratio"], colors, horizontal=True)
        ax.set_xlabel("prevalence in PIEs / in non-PIEs")
        ax.set_title(f"{short_variant(variant)}\nrule: {rule}", fontsize=9)
    handles = [
        Patch(color=color(3), label="adjusted p < 0.05"),
        Patch(color=color(0), label="n.s."),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2)
    fig.suptitle("Class prevalence among pruning-identified exemplars (PIEs)")
    return save(fig, out_base, note)


@styled
def plot_pie_findings(table: pd.DataFrame, out_base: Path, note: str = "") -> list[Path]:
    """Share of images with 0, 1, 2, 3, 4+ findings in PIEs / in non-PIEs (log scale)."""
    table = table.assign(n_findings=table["n_findings"].astype(str))
    groups = _groups(table)
    levels = list(dict.fromkeys(table["n_findings"]))
    fig = new_figure(max(4.5, 1.0 * len(levels) * len(groups) + 1.5), 3.4)
    ax = fig.subplots()
    width = 0.8 / len(groups)
    for i, (variant, rule) in enumerate(groups):
        t = table[(table["variant"] == variant) & (table["rule"] == rule)]
        ratios = t.set_index("n_findings")["ratio"].reindex(levels)
        ok = ratios.apply(lambda r: finite(r) and r > 0)
        pos = np.arange(len(levels)) + (i - (len(groups) - 1) / 2) * width
        ax.bar(
            pos[ok.to_numpy()],
            ratios[ok] - 1,
            bottom=1.0,
            width=width,
            color=color(i),
            label=f"{short_variant(variant)}, {rule}",
        )
    ax.axhline(1.0, color=REFERENCE, linewidth=1)
    ratio_axis(ax, "y", table["ratio"].where(table["ratio"] > 0).to_numpy(float))
    ax.set_xticks(range(len(levels)), levels)
    ax.grid(axis="x", visible=False)
    ax.set_xlabel("number of findings per image")
    ax.set_ylabel("share in PIEs / share in non-PIEs")
    ax.set_title("Findings per image among PIEs")
    ax.legend(fontsize=7)
    return save(fig, out_base, note)


@styled
def plot_pie_montage(
    images: np.ndarray, titles: list[str], out_base: Path, note: str = "", columns: int = 6
) -> list[Path]:
    """A grid of PIE images (uint8 (n, H, W)) titled with their labels."""
    n = len(images)
    if n == 0:
        raise FigureError("plot_pie_montage: no PIE images to draw")
    rows = int(np.ceil(n / columns))
    fig = new_figure(1.6 * columns, 1.75 * rows)
    for i in range(rows * columns):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.set_axis_off()
        if i < n:
            ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
            ax.set_title(titles[i], fontsize=6)
    fig.suptitle("Pruning-identified exemplars (PIEs)")
    return save(fig, out_base, note)
