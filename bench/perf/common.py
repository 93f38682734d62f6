"""Shared plumbing of the CPU benchmarks: hardware description, interleaved timing, output.

Every speed figure is a ratio against a reference timed in the same run; reference and
candidates are timed in interleaved rounds (A/B/A/B ...) and summarised by their medians,
so that load from other processes on the machine hits all of them alike.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.store import atomic_write, write_json

RESULTS_DIR = Path("results/perf")


def log(message: str) -> None:
    """Progress line on stderr (stdout stays clean for piping)."""
    print(f"[perf {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD extensions that matter for fp32 / int8 / bf16 kernels (avx2, avx512*, amx*)."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "vnni")))
    return []


def hardware() -> dict[str, Any]:
    """Where the numbers were taken: CPU, cores, load, library versions and thread count."""
    import numpy as np

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    if "torch" in sys.modules:  # the analysis benchmark never imports torch
        torch = sys.modules["torch"]
        info.update(
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            quantized_engine=torch.backends.quantized.engine,
        )
    return info


def hardware_line(hw: Mapping[str, Any]) -> str:
    """One Markdown line naming the machine."""
    parts = [f"{hw['cpu']}", f"{hw['cores']} cores", f"load {hw.get('load_average_1m', 0):.1f}"]
    if "torch" in hw:
        parts += [f"torch {hw['torch']}", f"{hw['torch_threads']} threads"]
    parts.append(f"numpy {hw['numpy']}")
    return (
        "Hardware: "
        + ", ".join(parts)
        + (f" ({' '.join(hw['cpu_flags'])})" if hw.get("cpu_flags") else "")
    )


def interleaved(
    candidates: Mapping[str, Callable[[], float | None]], rounds: int
) -> dict[str, list[float]]:
    """Call every candidate once per round, in turn (A/B/A/B ...); collect what each returns.

    A candidate returns its own measurement (seconds, or a rate) or None to be skipped in
    later rounds (e.g. too slow); the lists keep the per-round values in order.
    """
    out: dict[str, list[float]] = {name: [] for name in candidates}
    active = dict(candidates)
    for r in range(rounds):
        for name, fn in list(active.items()):
            value = fn()
            if value is None:
                del active[name]
                continue
            out[name].append(float(value))
        log(f"round {r + 1}/{rounds} done")
    return out


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub Markdown table of ``rows`` restricted to ``columns`` (floats to 3 significant)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "–" if v != v else f"{v:.3g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return "–" if v is None else str(v)

    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |\n" for r in rows)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temporary sibling + rename)."""
    data = text.encode()
    atomic_write(Path(path), lambda fh: fh.write(data))


def write_result(name: str, data: Mapping[str, Any], markdown: str, out_dir: Path) -> Path:
    """Write ``out_dir/name.json`` and ``out_dir/name.md`` atomically; returns the JSON path."""
    out_dir = Path(out_dir)
    path = out_dir / f"{name}.json"
    write_json(path, dict(data))
    write_text(out_dir / f"{name}.md", markdown)
    log(f"wrote {path} and {path.with_suffix('.md')}")
    return path
