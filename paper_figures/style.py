"""One look for every figure: Okabe–Ito colours, readable fonts, PDF + PNG output.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no global
backend state), so plotting works headless and never touches a display.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib as mpl
from cycler import cycler
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision
# deficiency. Black is kept for references (baseline, thresholds).
OKABE_ITO = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
}
PALETTE = [OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky_blue")]
PALETTE += [OKABE_ITO["yellow"]]
REFERENCE = "#4d4d4d"
SEQUENTIAL = "cividis"  # perceptually uniform and colour-blind safe
DIVERGING = "PuOr"  # colour-blind safe diverging map (ColorBrewer)
DPI = 150

RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.prop_cycle": cycler(color=PALETTE),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "lines.linewidth": 1.6,
    "lines.markersize": 5,
    "pdf.fonttype": 42,  # embed TrueType: editable text in the PDF
    "savefig.dpi": DPI,
}

P = ParamSpec("P")
R = TypeVar("R")


def styled(func: Callable[P, R]) -> Callable[P, R]:
    """Run a plotting function under the project style (rcParams are read at artist creation)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with mpl.rc_context(RC):
            return func(*args, **kwargs)

    return wrapper


NOTE_HEIGHT_IN = 0.16  # strip kept free at the bottom for the note


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure with an Agg canvas (inches), leaving a strip for the note."""
    bottom = NOTE_HEIGHT_IN / (height + NOTE_HEIGHT_IN)
    fig = Figure(figsize=(width, height + NOTE_HEIGHT_IN))
    fig.set_layout_engine(ConstrainedLayoutEngine(rect=(0, bottom, 1, 1 - bottom)))
    FigureCanvasAgg(fig)
    return fig


def point_interval(
    ax, pos, est, lo, hi, *, horizontal: bool, c: str, marker: str = "o", zorder: int = 2
) -> None:
    """Point estimates with their intervals as plain segments from ``lo`` to ``hi``.

    Unlike ``errorbar`` this draws any interval from the table as it is, also one that does
    not contain the estimate (possible for e.g. percentile bootstrap intervals).
    """
    segments = ax.hlines if horizontal else ax.vlines
    segments(pos, lo, hi, color=c, linewidth=1.6, zorder=zorder)
    xy = (est, pos) if horizontal else (pos, est)
    ax.scatter(*xy, color=c, marker=marker, s=28, zorder=zorder + 1)


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def save(fig: Figure, out_base: Path, note: str = "") -> list[Path]:
    """Write ``out_base.pdf`` and ``out_base.png`` atomically; ``note`` is printed in the
    bottom-left corner (used to mark figures made from synthetic data)."""
    if note:
        fig.text(0.005, 0.003, note, fontsize=6.5, color=REFERENCE, ha="left", va="bottom")
    out_base = Path(out_base)
    out_base.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("pdf", "png"):
        path = out_base.with_name(f"{out_base.name}.{ext}")
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.{ext}")
        try:
            fig.savefig(tmp, dpi=DPI, format=ext, metadata=_metadata(ext))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        paths.append(path)
    return paths


def _metadata(ext: str) -> dict[str, str | None]:
    """Reproducible files: no creation date in the PDF (PNG carries none by default)."""
    return {"CreationDate": None} if ext == "pdf" else {}
