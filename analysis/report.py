"""``cxrbench report``: one self-contained HTML file (RESULTS/report.html).

Tables are rendered from RESULTS/tables/*.csv, figures embedded as base64 PNG from
RESULTS/figures/, run metadata taken from study.json and one run's meta.json. No external
resource, no JavaScript: the file can be mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
from pathlib import Path

import pandas as pd

from analysis.files import write_text
from analysis.io import done_runs, read_study, read_table
from paper_figures.catalog import BY_NAME, FIGURES, SYNTHETIC_NOTE

# section title -> [(table name, what the table holds)]
SECTIONS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Summary",
        [
            (
                "summary",
                "Each metric per variant: mean over runs (seeds × folds) with its "
                "interval; delta = paired change against the baseline with its interval.",
            ),
            (
                "study_a",
                "Test accuracy per variant with its interval; correct of n test "
                "images; mcnemar_p: McNemar's paired test against the baseline.",
            ),
        ],
    ),
    (
        "Per-class",
        [
            (
                "per_class",
                "Each metric per class and variant with its interval; delta = paired "
                "change against the baseline with its interval.",
            )
        ],
    ),
    (
        "Size & latency",
        [
            (
                "size_latency",
                "Parameters, non-zero parameters, bytes (dense, sparse-encoded, "
                "int8, as stored), MACs and CPU latency (p50 / p95 in ms at batch 1 and 32; "
                "speedup_b32 against the dense fp32 baseline), with the variant's metric and its "
                "interval. Unstructured sparsity saves nothing at run time without sparse kernels "
                "(see note).",
            )
        ],
    ),
    (
        "Forgettability",
        [
            (
                "forgetting_summary",
                "Per class: positive training images, their natural log, "
                "the first sparsity at which the median relative change Δ falls below the "
                "forgotten threshold (empty: never forgotten) and the median Δ at the highest "
                "sparsity.",
            ),
            (
                "correlations",
                "Pearson r and Spearman ρ with their intervals and p-values; "
                "relations between class pairs (fcd) are tested with the Mantel permutation "
                "test because pairs share classes.",
            ),
        ],
    ),
    (
        "PIEs",
        [
            (
                "pie_prevalence",
                "Prevalence of each class among pruning-identified exemplars "
                "(PIEs) and among the other images, their ratio and its test.",
            ),
            (
                "pie_findings",
                "Share of images with 0, 1, 2, 3, 4+ findings among PIEs and "
                "among the other images, and their ratio.",
            ),
        ],
    ),
]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1a1a1a; background: #fafafa; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 1.5rem 2rem 3rem; background: #fff; }
h1 { font-size: 1.6rem; margin: 0.2rem 0 0.4rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 2px solid #0072B2;
     padding-bottom: 0.2rem; }
nav a { margin-right: 1rem; color: #0072B2; text-decoration: none; }
.banner { background: #E69F00; color: #000; font-weight: 600; padding: 0.7rem 1rem;
          border-radius: 4px; margin: 0.8rem 0; }
.muted { color: #555; font-size: 0.9rem; }
.scroll { max-height: 30rem; overflow: auto; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.82rem; width: 100%; }
figure.table { margin: 0 0 1.6rem; }
figure.table figcaption { font-size: 0.86rem; color: #333; background: #f3f6f9;
                          padding: 0.5rem 0.6rem; border-left: 3px solid #0072B2; }
th, td { padding: 0.25rem 0.55rem; border-bottom: 1px solid #e4e4e4; white-space: nowrap; }
th { background: #eef2f6; position: sticky; top: 0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fbfbfb; }
figure { margin: 1.5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.88rem; color: #333; margin-top: 0.3rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; }
pre { background: #f6f6f6; padding: 0.8rem; overflow: auto; font-size: 0.78rem; }
"""


def write_report(study_dir: Path | str) -> Path:
    """Write ``<study_dir>/report.html`` and return its path."""
    study_dir = Path(study_dir)
    info = read_study(study_dir)
    title = f"cxrbench report: {info.get('study', study_dir.name)}"
    body = [f"<h1>{_e(title)}</h1>"]
    if info.get("dataset", {}).get("synthetic"):
        body.append(f'<div class="banner" role="note">{_e(SYNTHETIC_NOTE)}</div>')
    names = [s for s, _ in SECTIONS] + ["Figures", "Run metadata"]
    body.append("<nav>" + "".join(f'<a href="#{_id(n)}">{_e(n)}</a>' for n in names) + "</nav>")
    tables = study_dir / "tables"
    for section, entries in SECTIONS:
        body.append(f'<h2 id="{_id(section)}">{_e(section)}</h2>')
        body += [_table_section(tables / f"{name}.csv", text) for name, text in entries]
    body.append(f'<h2 id="{_id("Figures")}">Figures</h2>')
    body.append(_figures(study_dir / "figures"))
    body.append(f'<h2 id="{_id("Run metadata")}">Run metadata</h2>')
    body.append(_metadata(study_dir, info))
    body.append(_other_tables(tables))
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        "<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )
    path = study_dir / "report.html"
    write_text(path, page)
    return path


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _id(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())


def caption(name: str, text: str, df: pd.DataFrame) -> str:
    """What the table holds, plus its interval and test as recorded in the table's columns."""
    parts = [text]
    if {"ci_low", "ci_high"} & set(df.columns) or any(c.endswith("_ci_low") for c in df.columns):
        level = _unique(df, "confidence_level")
        how = _unique(df, "ci_method")
        kind = f"{', '.join(f'{float(v):.0%}' for v in level)} " if level else ""
        parts.append(
            f"Intervals [ci_low, ci_high]: {kind}confidence intervals"
            + (f" ({', '.join(map(str, how))})." if how else ".")
        )
    tests = _unique(df, "test")
    if tests:
        parts.append(f"Test: {'; '.join(map(str, tests))}.")
    methods = _unique(df, "method") if name == "correlations" else []
    if methods:
        parts.append(f"Method: {'; '.join(map(str, methods))}.")
    if "pvalue_adj" in df.columns:
        adjust = _unique(df, "adjust") or _unique(df, "correction")
        parts.append(
            "pvalue_adj: p-value adjusted for multiple comparisons"
            + (f" ({', '.join(map(str, adjust))})." if adjust else ".")
        )
    return " ".join(parts)


def _unique(df: pd.DataFrame, column: str) -> list:
    if column not in df.columns:
        return []
    return [v for v in dict.fromkeys(df[column].dropna()) if str(v).strip()]


def _fmt(value: object, column: str) -> tuple[str, bool]:
    """Cell text and whether it is numeric (right-aligned)."""
    if isinstance(value, bool) or value is None:
        return ("" if value is None else str(value)), False
    if isinstance(value, int):
        return (f"{value:,}" if abs(value) >= 10_000 else str(value)), True
    if isinstance(value, float):
        if math.isnan(value):
            return "–", True
        if "pvalue" in column or column.endswith("_p"):
            return (f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"), True
        if value.is_integer() and abs(value) >= 10_000:
            return f"{value:,.0f}", True
        return f"{value:.4g}", True
    return str(value), False


def render_table(df: pd.DataFrame, caption_text: str) -> str:
    """An HTML table with every cell escaped; numbers formatted and right-aligned."""
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    rows = []
    textual = {c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])}
    for record in df.itertuples(index=False):
        cells = []
        for column, value in zip(df.columns, record, strict=True):
            item = value.item() if hasattr(value, "item") else value
            if column in textual and pd.isna(item):
                item = ""
            text, numeric = _fmt(item, str(column))
            cells.append(f'<td class="num">{_e(text)}</td>' if numeric else f"<td>{_e(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<figure class="table"><figcaption>{_e(caption_text)}</figcaption><div class="scroll">'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></figure>"
    )


def _table_section(path: Path, text: str) -> str:
    df = read_table(path)
    if df is None:
        return (
            f'<p class="muted">{_e(path.name)}: not available (absent or empty); '
            "run <code>cxrbench analyze</code> for this study.</p>"
        )
    return f"<h3>{_e(path.name)}</h3>" + render_table(df, caption(path.stem, text, df))


def _figures(folder: Path) -> str:
    pngs = {p.stem: p for p in sorted(folder.glob("*.png"))} if folder.is_dir() else {}
    if not pngs:
        return (
            '<p class="muted">No figures yet: run <code>cxrbench figures</code> for this '
            "study, then the report again.</p>"
        )
    order = [f.name for f in FIGURES if f.name in pngs] + [n for n in pngs if n not in BY_NAME]
    out = []
    for name in order:
        data = base64.b64encode(pngs[name].read_bytes()).decode("ascii")
        info = BY_NAME.get(name)
        title = info.title if info else name.replace("_", " ")
        text = f"{info.caption} Source: {', '.join(info.sources)}." if info else ""
        out.append(
            f'<figure id="fig-{_id(name)}"><img alt="{_e(title)}" '
            f'src="data:image/png;base64,{data}">'
            f"<figcaption><strong>{_e(title)}.</strong> {_e(text)} "
            f'<span class="muted">(figures/{_e(name)}.pdf)</span></figcaption></figure>'
        )
    return "\n".join(out)


def _first_meta(study_dir: Path) -> dict:
    for run_id in done_runs(study_dir)["run_id"]:
        path = study_dir / "runs" / run_id / "meta.json"
        if path.is_file():
            return json.loads(path.read_text())
    return {}


def _dl(items: dict) -> str:
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items.items())
    return f"<dl>{rows}</dl>"


def _metadata(study_dir: Path, info: dict) -> str:
    dataset = info.get("dataset", {})
    cells = info.get("cells", [])
    n_done = len(done_runs(study_dir))
    study = {
        "study": info.get("study"),
        "dataset": dataset.get("name"),
        "images": dataset.get("n_images"),
        "synthetic data": dataset.get("synthetic"),
        "task": info.get("task"),
        "classes": ", ".join(map(str, info.get("class_names", []))),
        "folds": info.get("folds"),
        "seeds": len({c.get("seed") for c in cells}),
        "variants": ", ".join(dict.fromkeys(str(c.get("variant_id")) for c in cells)),
        "cells done": f"{n_done} of {len(cells)}",
        "report written": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    out = ["<h3>Study</h3>", _dl(study)]
    meta = _first_meta(study_dir)
    if meta:
        run = {
            "git commit": meta.get("git_commit") or "unknown (not a git checkout)",
            "python": meta.get("python"),
            "host": meta.get("host"),
            **{f"hardware: {k}": v for k, v in (meta.get("hardware") or {}).items()},
        }
        versions = {k: v or "not installed" for k, v in (meta.get("versions") or {}).items()}
        out += ["<h3>Environment (from one run's meta.json)</h3>", _dl(run)]
        out += ["<h3>Package versions</h3>", _dl(versions)]
    else:
        out.append('<p class="muted">No meta.json in any finished run.</p>')
    config = json.dumps(info.get("config", {}), indent=2, sort_keys=True, default=str)
    out.append(
        f"<details><summary>Resolved study configuration</summary><pre>{_e(config)}</pre></details>"
    )
    return "\n".join(out)


def _other_tables(folder: Path) -> str:
    shown = {name for _, entries in SECTIONS for name, _ in entries}
    rest = (
        sorted(p.name for p in folder.glob("*.csv") if p.stem not in shown)
        if folder.is_dir()
        else []
    )
    if not rest:
        return ""
    return (
        '<p class="muted">Further tables in <code>tables/</code> (drawn in the figures): '
        + _e(", ".join(rest))
        + ".</p>"
    )
