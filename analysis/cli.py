"""``cxrbench analyze | figures | report`` (also ``python -m analysis``); never imports torch."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cxrbench", description="Analyse a cxrbench study folder.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    a = sub.add_parser(
        "analyze",
        help="tables with intervals and paired tests",
        description="Compute every table (summary with CIs and paired tests, per-class, study A "
        "view, size/latency, metric vs sparsity, forgettability, PIEs) from the per-image "
        "predictions and write them to RESULTS/tables/ as CSV, Markdown and LaTeX.",
    )
    a.add_argument("results", type=Path, help="study folder, e.g. results/demo")
    a.add_argument("--seed", type=int, default=0, help="seed of the bootstrap / permutation draws")
    a.add_argument(
        "--margin",
        type=float,
        default=0.01,
        help="non-inferiority margin on each metric's scale (default 0.01: e.g. ΔAUROC > −0.01)",
    )
    f = sub.add_parser("figures", help="paper figures (PDF + PNG) from the tables")
    f.add_argument("results", type=Path)
    r = sub.add_parser("report", help="one self-contained HTML report")
    r.add_argument("results", type=Path)
    k = sub.add_parser(
        "reader-kit",
        help="PIE montage and a blinded reader-study kit",
        description="Find the PIEs of a variant, draw a montage of them into RESULTS/figures/ "
        "and write a blinded kit (shuffled PIE and non-PIE images, a CSV form for label "
        "agreement, image quality 1-5 and difficulty 1-5, and a separate key).",
    )
    k.add_argument("results", type=Path)
    k.add_argument("--out", type=Path, help="kit folder (default RESULTS/reader_kit)")
    k.add_argument("--variant", help="variant id (default: l1_unstructured_global at 0.9)")
    k.add_argument("--rule", choices=["spearman", "modal"], default="spearman")
    k.add_argument(
        "--q", type=float, default=0.05, help="Spearman rule: share of images that are PIEs"
    )
    k.add_argument("--per-group", type=int, help="images per group (PIE, non-PIE)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root: Path = args.results
    if args.command == "analyze":
        from analysis.tables import analyze, write_tables

        started = time.perf_counter()
        tables = analyze(root, rng=args.seed, margin=args.margin)
        synthetic = _is_synthetic(root)
        write_tables(tables, root / "tables", synthetic=synthetic)
        print(f"{len(tables)} tables in {root / 'tables'} ({time.perf_counter() - started:.1f} s)")
        if synthetic:
            print(
                "note: SYNTHETIC data (SynthCXR-LT): pipeline demonstration, not a clinical result"
            )
        if "summary" in tables:
            from analysis.tables import display_frame

            primary = tables["summary"][tables["summary"]["metric"] == "auroc_macro"]
            cols = [c for c in ("variant", "mean", "delta", "pvalue_adj", "test") if c in primary]
            print(display_frame(primary)[cols].to_string(index=False))
    elif args.command == "figures":
        import logging

        from paper_figures import make_all

        notes = logging.getLogger("paper_figures")  # "figure X skipped: ..." notes only
        notes.setLevel(logging.INFO)
        notes.addHandler(logging.StreamHandler())
        paths = make_all(root)
        print(f"{len(paths)} figure files in {root / 'figures'}")
    elif args.command == "reader-kit":
        from analysis.pie_kit import reader_kit

        kit, figures = reader_kit(
            root,
            args.out or root / "reader_kit",
            variant=args.variant,
            rule=args.rule,
            q=args.q,
            n_per_group=args.per_group,
        )
        print(f"reader kit: {kit.form_path} ({kit.n_items} items; key kept apart: {kit.key_path})")
        for path in figures:
            print(f"montage: {path}")
    else:
        from analysis.report import write_report

        path = write_report(root)
        print(f"report: {path.resolve()}")
    return 0


def _is_synthetic(root: Path) -> bool:
    from analysis.io import read_study

    return bool(read_study(root).get("dataset", {}).get("synthetic"))


if __name__ == "__main__":
    sys.exit(main())
