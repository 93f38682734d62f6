"""``cxrbench``: the one command-line front door.

Sweep commands live here; ``analyze``, ``figures`` and ``report`` are handed to
``analysis.cli`` (imported only then, so analysis stays free of torch and the bench
library never depends on analysis).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ANALYSIS_COMMANDS = ("analyze", "figures", "report", "reader-kit")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cxrbench",
        description="Multi-seed benchmarking of compressed chest X-ray classifiers. "
        "Train a baseline per (seed, fold), derive every compressed variant from it, record "
        "per-image predictions, then analyse with intervals and paired tests.",
        epilog="Quick start: `cxrbench run configs/demo.yaml` then `cxrbench analyze results/demo`. "
        "Docs: docs/README.md.",
    )
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run or resume a sweep (done cells are skipped)")
    run.add_argument("config", type=Path, help="study YAML (see docs/config.md)")
    run.add_argument(
        "--executor", choices=["local", "dask", "slurm"], help="override executor.kind"
    )
    run.add_argument(
        "--scheduler", help="Dask scheduler address tcp://HOST:PORT (implies --executor dask)"
    )
    run.add_argument("--workers", type=int, help="override executor.workers")
    run.add_argument(
        "--output", type=Path, help="override the output folder (default: config's output)"
    )
    run.add_argument("--max-groups", type=int, help="stop after this many (seed, fold) groups")

    status = sub.add_parser(
        "status", help="done / running / failed / pending per cell, and time left"
    )
    status.add_argument("results", type=Path, help="study folder, e.g. results/demo")
    status.add_argument(
        "--workers", type=int, default=1, help="workers assumed for the time estimate"
    )
    status.add_argument("--all", action="store_true", help="list every cell, not only a summary")

    data = sub.add_parser("data", help="dataset commands")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    describe = data_sub.add_parser(
        "describe", help="classes, counts per split, patients, prevalence"
    )
    describe.add_argument("config", type=Path)
    describe.add_argument(
        "--figure", type=Path, help="class-distribution PNG (default: results/<study>/figures/)"
    )

    sens = sub.add_parser(
        "sensitivity",
        help="per-layer pruning sensitivity on the validation split",
        description="Prune each Conv2d/Linear layer of the first (seed, fold) baseline alone at "
        "a grid of amounts (unstructured L1 and structured channels) and record the validation "
        "metric. Writes RESULTS/tables/sensitivity.csv (drawn by `cxrbench figures`).",
    )
    sens.add_argument("config", type=Path)
    sens.add_argument("--amounts", type=float, nargs="+", default=[0.25, 0.5, 0.75, 0.9])
    sens.add_argument(
        "--metric", default="auroc_macro", help="validation metric (default auroc_macro)"
    )
    sens.add_argument(
        "--max-drop",
        type=float,
        help="also derive per-layer sparsities: the largest amount per layer whose validation "
        "metric drops by at most this much; printed as a variant entry for the config",
    )

    verify = sub.add_parser("verify", help="check every artefact against its done-marker checksum")
    verify.add_argument("results", type=Path)

    for name, text in (
        ("analyze", "tables: intervals, paired tests, per-class, size/latency"),
        ("figures", "paper figures (PDF and PNG)"),
        ("report", "one self-contained HTML report"),
        ("reader-kit", "PIE montage and a blinded reader-study kit"),
    ):
        a = sub.add_parser(name, help=text, add_help=False)
        a.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from bench.config import load_config
    from bench.runner import run_study

    cfg = load_config(args.config)
    updates = {}
    executor = cfg.executor
    if args.scheduler:
        executor = executor.model_copy(update={"kind": "dask", "scheduler": args.scheduler})
    if args.executor:
        executor = executor.model_copy(update={"kind": args.executor})
    if args.workers:
        executor = executor.model_copy(update={"workers": args.workers})
    updates["executor"] = executor
    if args.output:
        updates["output"] = args.output
    cfg = cfg.model_copy(update=updates)
    summary = run_study(cfg, max_groups=args.max_groups)
    counts = summary.counts()
    print(f"{cfg.study}: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    print(f"results: {cfg.study_dir}")
    for line in summary.errors:
        print(f"  failed: {line}", file=sys.stderr)
    return 1 if summary.failed else 0


def _cmd_status(args: argparse.Namespace) -> int:
    from bench.runner import study_status

    table, left = study_status(args.results, args.workers)
    if args.all:
        print(table.to_string(index=False))
    by_variant = table.pivot_table(
        index="variant_id", columns="state", values="run_id", aggfunc="count", fill_value=0
    )
    print(by_variant.to_string())
    counts = table["state"].value_counts().to_dict()
    print("cells: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if left is not None and counts.get("done", 0) < len(table):
        print(f"estimated time left: {left / 60:.1f} min with {args.workers} worker(s)")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from bench.config import load_config
    from bench.data.describe import describe, plot_class_distribution
    from bench.data.readers import load_dataset
    from bench.data.splits import check_no_leak, make_splits

    cfg = load_config(args.config)
    dataset = load_dataset(cfg.dataset, cfg.task)
    splits = make_splits(dataset, cfg.protocol)
    for split in splits:
        check_no_leak(dataset, split)
    tag = " (SYNTHETIC data: not a clinical result)" if dataset.name.startswith("synthcxr") else ""
    print(
        f"dataset {dataset.name}{tag}: {len(dataset)} images, {len(set(dataset.patient_ids))} patients, "
        f"{dataset.num_classes} classes, task {dataset.task}, {len(splits)} split(s)"
    )
    print(describe(dataset, splits).to_string())
    figure = args.figure or cfg.study_dir / "figures" / "class_distribution.png"
    plot_class_distribution(dataset, figure)
    print(f"figure: {figure}")
    return 0


def _cmd_sensitivity(args: argparse.Namespace) -> int:
    import yaml

    from bench.config import load_config
    from bench.sensitivity import (
        derive_sparsities,
        layer_sensitivity,
        overall_sparsity,
        write_sensitivity,
    )

    cfg = load_config(args.config)
    table = layer_sensitivity(cfg, amounts=args.amounts, metric=args.metric)
    print(f"sensitivity: {write_sensitivity(table, cfg)}")
    worst = table.assign(drop=table["baseline_value"] - table["value"]).sort_values(
        "drop", ascending=False
    )
    print("most sensitive (layer, method, amount, validation drop):")
    print(worst.head(10)[["layer", "method", "amount", "drop"]].to_string(index=False))
    if args.max_drop is not None:
        sparsities = derive_sparsities(table, args.max_drop)
        share = overall_sparsity(table, sparsities)
        entry = [
            {
                "name": "l1_unstructured_per_layer",
                "kwargs": {"sparsities": sparsities},
                "grid": False,
            }
        ]
        print(f"# per-layer sparsities (overall {share:.1%}); add under `variants:`")
        print(yaml.safe_dump(entry, sort_keys=False))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from bench.store import Store

    store = Store(args.results)
    if not store.runs.is_dir():
        raise FileNotFoundError(
            f"{args.results}: no runs/ folder; is this a study folder (results/<study>)?"
        )
    problems = store.verify()
    n = len(list(store.runs.glob("*/DONE")))
    for line in problems:
        print(line)
    print(f"verified {n} done cell(s): {len(problems)} problem(s)")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        if args.command in ANALYSIS_COMMANDS:
            from analysis.cli import main as analysis_main

            return analysis_main(argv[argv.index(args.command) :])
        handler = {
            "run": _cmd_run,
            "status": _cmd_status,
            "verify": _cmd_verify,
            "sensitivity": _cmd_sensitivity,
        }.get(args.command)
        if args.command == "data":
            handler = _cmd_describe
        return handler(args)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        if args.debug or os.environ.get("CXRBENCH_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished cells are kept; re-run the same command to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
