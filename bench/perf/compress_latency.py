"""CPU latency, size and MACs of the compression variants, vs dense fp32 eager and compiled.

For each model (ResNet18 @128, ResNet50 @224; random weights: speed does not depend on
them) every variant is built with the suite's registry (``apply_chain``), sized with
``measure_model`` (MACs, bytes) and timed at batch 1 and 32. All candidates of one batch
size are timed in interleaved rounds (one forward each per round), so p50/p95 and the
speedups against dense fp32 eager and dense fp32 ``torch.compile`` come from the same run.

Compiled candidates are ``torch.compile`` (inductor) of the variants' models with
``torch._inductor.config.freezing = True`` (weights as constants), which the int8 lowering
of ``static_int8(path="pt2e")`` needs and which also makes the fp32 reference faster.

Run: ``python -m bench.perf.compress_latency --help``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.compress import CompressContext, apply_chain
from bench.compress.measure import measure_model
from bench.config import VariantSpec
from bench.models import create_model
from bench.perf.common import (
    RESULTS_DIR,
    hardware,
    hardware_line,
    log,
    markdown_table,
    write_result,
)

MODELS = {"resnet18": 128, "resnet50": 224}
PT2E = {"path": "pt2e"}
# label -> (label of the model the chain starts from, None for the dense one; chain steps)
EAGER_VARIANTS: dict[str, tuple[str | None, list[tuple[str, dict[str, Any]]]]] = {
    "baseline": (None, [("baseline", {})]),
    "l1_unstructured_global(0.9)": (None, [("l1_unstructured_global", {"sparsity": 0.9})]),
    "structured_channels(0.5)": (None, [("structured_channels", {"ratio": 0.5})]),
    "dynamic_int8": (None, [("dynamic_int8", {})]),
    "static_int8 fx": (None, [("static_int8", {})]),
    "static_int8 pt2e": (None, [("static_int8", PT2E)]),
    "structured_channels(0.5)+static_int8 fx": ("structured_channels(0.5)", [("static_int8", {})]),
    "structured_channels(0.5)+static_int8 pt2e": (
        "structured_channels(0.5)",
        [("static_int8", PT2E)],
    ),
}
# eager variants also timed compiled, as "<label> [compiled]"
COMPILED = (
    "baseline",
    "structured_channels(0.5)",
    "static_int8 fx",
    "static_int8 pt2e",
    "structured_channels(0.5)+static_int8 pt2e",
)
TARGET_SPEEDUP = 3.0
CALIB_IMAGES = 32


@dataclass
class Candidate:
    """One model to time: the callable, where it came from, and why it failed (if it did)."""

    label: str
    fn: Callable[[torch.Tensor], Any] | None
    compiled: bool
    info: dict[str, Any]
    error: str | None = None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def build_candidates(
    arch: str,
    size: int,
    *,
    seed: int = 0,
    compiled: bool = True,
    eager: Sequence[str] | None = None,
) -> tuple[list[Candidate], dict[str, nn.Module]]:
    """Every variant of ``arch`` (random init) with its size and MACs; failures are recorded."""
    torch.manual_seed(seed)
    dense = create_model(arch, 2).eval()
    gen = torch.Generator().manual_seed(seed)
    calib = torch.rand(CALIB_IMAGES, 1, size, size, generator=gen)
    ctx = CompressContext(calib=calib, example=calib[:1])
    models: dict[str, nn.Module] = {}
    cands: list[Candidate] = []
    for label in eager or EAGER_VARIANTS:
        source, steps = EAGER_VARIANTS[label]
        if source is not None and source not in models:
            cands.append(Candidate(label, None, False, {}, f"{source} was not built"))
            continue
        log(f"{arch}: building {label}")
        chain = [VariantSpec(name=n, kwargs=k) for n, k in steps]
        try:
            start = dense if source is None else models[source]
            model = apply_chain(start, chain, seed=seed, context=ctx).eval()
            cands.append(Candidate(label, model, False, _measure(model, calib[:1])))
            models[label] = model
        except Exception as exc:  # a variant that cannot be built is reported, not fatal
            cands.append(Candidate(label, None, False, {}, _short(exc)))
    if compiled:
        for source in COMPILED:
            label = f"{source} [compiled]"
            if source not in models:
                cands.append(Candidate(label, None, True, {}, f"{source} was not built"))
                continue
            # compilation itself happens at the first (warm-up) call of each batch size
            compiled_model = torch.compile(models[source], dynamic=False)
            cands.append(Candidate(label, compiled_model, True, dict(_info(cands, source))))
    return cands, models


def _info(cands: list[Candidate], label: str) -> dict[str, Any]:
    return next(c.info for c in cands if c.label == label)


def _measure(model: nn.Module, example: torch.Tensor) -> dict[str, Any]:
    m = measure_model(model, example, latency=False)
    keys = (
        "params",
        "macs",
        "bytes_dense",
        "bytes_sparse",
        "bytes_int8",
        "bytes_stored",
        "sparsity",
        "dtype",
    )
    # bytes_int8 is the int8 estimate for float models, the real serialised size for int8 ones
    out = {k: m.get(k) for k in keys}
    if (getattr(model, "cxr_compress", None) or {}).get("path") == "pt2e":
        # measure_model knows torch.ao int8 modules, not PT2E graphs (int8 weights are
        # buffers there): its bytes_stored and MACs hold, its params/dtype/sparsity do not
        out.update(params=None, sparsity=None, bytes_int8=m["bytes_stored"], dtype="int8")
    return out


def time_candidates(
    cands: list[Candidate],
    x: torch.Tensor,
    *,
    warmup: int,
    repeats: int,
    max_call_seconds: float,
) -> dict[str, list[float]]:
    """Milliseconds per forward of each working candidate, in interleaved rounds.

    Warm-up calls (compilation happens here) come first; a candidate whose last warm-up call
    took longer than ``max_call_seconds`` is timed once only (noted by the number of repeats).
    """
    times: dict[str, list[float]] = {}
    slow: set[str] = set()
    with torch.inference_mode():
        for c in cands:
            if c.fn is None:
                continue
            try:
                for _ in range(max(1, warmup)):  # the first call compiles; judge by the last
                    took = _ms(c.fn, x)
                if took > max_call_seconds * 1e3:
                    slow.add(c.label)
                times[c.label] = []
            except Exception as exc:
                c.error, c.fn = f"at batch {len(x)}: {_short(exc)}", None
                log(f"  {c.label} failed: {c.error}")
        for r in range(repeats):
            for c in cands:
                if c.label in times and not (c.label in slow and times[c.label]):
                    times[c.label].append(_ms(c.fn, x))
            log(f"  batch {len(x)}: round {r + 1}/{repeats} done")
    return times


def _ms(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> float:
    start = time.perf_counter()
    fn(x)
    return (time.perf_counter() - start) * 1e3


def run(
    *,
    archs: Sequence[str] = tuple(MODELS),
    batch_sizes: Sequence[int] = (1, 32),
    warmup: int = 2,
    repeats: int = 5,
    compiled: bool = True,
    eager: Sequence[str] | None = None,
    max_call_seconds: float = 20.0,
    threads: int = 1,
    image_sizes: dict[str, int] | None = None,
    out_dir: Path | None = RESULTS_DIR,
) -> dict[str, Any]:
    """Run the benchmark; returns (and with ``out_dir`` writes) the result dict.

    threads: torch threads while timing (restored afterwards). 1 by default, like
    ``measure_model``: on a small shared VM, OpenMP barriers of 2+ threads stall whenever a
    core is taken away, which made batch-1 latency 20x worse in our runs.
    """
    import torch._inductor.config as inductor_config

    if not archs:
        raise ValueError(f"compress_latency: archs is empty; choose from {list(MODELS)}")

    inductor_config.freezing = True
    sizes = {**MODELS, **(image_sizes or {})}
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for arch in archs:
            torch._dynamo.reset()  # a fresh compile cache per model: no recompile limit is hit
            cands, _ = build_candidates(arch, sizes[arch], compiled=compiled, eager=eager)
            errors += [
                {"model": arch, "variant": c.label, "error": c.error} for c in cands if c.error
            ]
            for b in batch_sizes:
                log(f"{arch} @ {sizes[arch]}: timing batch {b}")
                x = torch.rand(
                    b, 1, sizes[arch], sizes[arch], generator=torch.Generator().manual_seed(1)
                )
                times = time_candidates(
                    cands, x, warmup=warmup, repeats=repeats, max_call_seconds=max_call_seconds
                )
                rows += _rows(arch, sizes[arch], b, cands, times)
                errors += [
                    {"model": arch, "variant": c.label, "error": c.error}
                    for c in cands
                    if c.error and c.error.startswith(f"at batch {b}:")
                ]
            # written after every model, so a long run leaves its finished part behind
            result = {
                "benchmark": "compress_latency",
                "hardware": hardware(),
                "settings": {
                    "archs": list(archs[: archs.index(arch) + 1]),
                    "image_sizes": {a: sizes[a] for a in archs},
                    "batch_sizes": list(batch_sizes),
                    "warmup": warmup,
                    "repeats": repeats,
                    "max_call_seconds": max_call_seconds,
                    "threads": threads,
                    "inductor_freezing": True,
                    "weights": "random init (latency does not depend on the values)",
                    "calibration": f"{CALIB_IMAGES} uniform random images",
                },
                "rows": rows,
                "errors": errors,
                "target": _target(rows),
            }
            if out_dir is not None:
                write_result("compress", result, to_markdown(result), out_dir)
    finally:
        torch.set_num_threads(previous_threads)
    return result


def _rows(
    arch: str, size: int, batch: int, cands: list[Candidate], times: dict[str, list[float]]
) -> list[dict[str, Any]]:
    ref_eager = np.median(times.get("baseline", [np.nan]))
    ref_compiled = np.median(times.get("baseline [compiled]", [np.nan]))
    out = []
    for c in cands:
        t = times.get(c.label)
        row: dict[str, Any] = {
            "model": f"{arch}@{size}",
            "batch": batch,
            "variant": c.label,
            **c.info,
        }
        if t:
            p50 = float(np.percentile(t, 50))
            row.update(
                p50_ms=p50,
                p95_ms=float(np.percentile(t, 95)),
                repeats=len(t),
                speedup_vs_eager=float(ref_eager / p50),
                speedup_vs_compiled=float(ref_compiled / p50),
            )
        else:
            row["error"] = c.error
        out.append(row)
    return out


def _target(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Best speedup vs dense fp32 compiled on ResNet50 at batch 32 (and at batch 1)."""
    out: dict[str, Any] = {"speedup_vs_compiled": TARGET_SPEEDUP}
    for b in (1, 32):
        cand = [
            r
            for r in rows
            if r["model"].startswith("resnet50")
            and r["batch"] == b
            and "p50_ms" in r
            and not r["variant"].startswith("baseline")
        ]
        if cand:
            best = max(cand, key=lambda r: r["speedup_vs_compiled"])
            out[f"batch{b}"] = {
                "variant": best["variant"],
                "speedup_vs_compiled": best["speedup_vs_compiled"],
            }
    out["met_at_batch32"] = bool(
        out.get("batch32") and out["batch32"]["speedup_vs_compiled"] >= TARGET_SPEEDUP
    )
    return out


def to_markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    cols = [
        "model",
        "batch",
        "variant",
        "macs",
        "bytes_stored",
        "p50_ms",
        "p95_ms",
        "repeats",
        "speedup_vs_eager",
        "speedup_vs_compiled",
    ]
    text = (
        "# Compression variants: CPU latency\n\n"
        f"{hardware_line(result['hardware'])}\n\n"
        f"Random weights; warm-up {s['warmup']}, {s['repeats']} interleaved rounds per batch size; "
        "speedups are p50 ratios against dense fp32 eager (`baseline`) and dense fp32 "
        "`torch.compile` (`baseline [compiled]`, inductor with freezing) timed in the same rounds. "
        "MACs of int8 models are those of the float model.\n\n"
        + markdown_table(result["rows"], cols)
    )
    t = result["target"]
    for b in (32, 1):
        if f"batch{b}" in t:
            best = t[f"batch{b}"]
            text += (
                f"\nResNet50 batch {b}: fastest variant {best['variant']} at "
                f"{best['speedup_vs_compiled']:.2f}× vs dense fp32 compiled"
            )
    text += (
        f"\n\nSpeed part of the target (≥ {t['speedup_vs_compiled']}× vs dense fp32 compiled at "
        f"batch 32): {'met' if t['met_at_batch32'] else 'not met'}. The weights are random, so "
        "the accuracy condition (≤ 1 point of macro AUROC lost) is not checked here; see "
        "docs/performance.md.\n"
    )
    if result["errors"]:
        text += "\nFailures:\n\n" + "".join(
            f"- {e['model']} {e['variant']}: {e['error']}\n" for e in result["errors"]
        )
    return text


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(
        prog="python -m bench.perf.compress_latency", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--archs", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile candidates")
    p.add_argument(
        "--max-call-seconds",
        type=float,
        default=20.0,
        help="a candidate slower than this per forward is timed once (default 20)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads while timing (default 1)")
    p.add_argument(
        "--quick", action="store_true", help="ResNet18 only, warm-up 1, 3 rounds (a smoke run)"
    )
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    a = p.parse_args(argv)
    if a.quick:
        a.archs, a.warmup, a.repeats = ["resnet18"], 1, 3
    return run(
        archs=a.archs,
        batch_sizes=a.batch_sizes,
        warmup=a.warmup,
        repeats=a.repeats,
        compiled=not a.no_compile,
        max_call_seconds=a.max_call_seconds,
        threads=a.threads,
        out_dir=a.out,
    )


if __name__ == "__main__":
    main()
