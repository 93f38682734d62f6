"""Executors run (seed, fold) groups: in this process, a local process pool, Dask or SLURM."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.config import ExecutorConfig


def execute(
    fn: Callable[..., dict[str, str]],
    tasks: list[tuple[Any, ...]],
    cfg: ExecutorConfig,
    workdir: Path,
) -> Iterator[tuple[tuple[Any, ...], dict[str, str] | BaseException]]:
    """Yield (task, result) as tasks finish; a task that raised yields its exception.

    ``workdir`` holds executor files (submitit's job logs)."""
    if cfg.kind == "slurm":
        from bench.executors.slurm import execute_slurm

        yield from execute_slurm(fn, tasks, cfg, workdir / "slurm")
    elif cfg.kind == "dask":
        from bench.executors.dask import execute_dask

        yield from execute_dask(fn, tasks, cfg)
    elif cfg.workers == 1:
        for task in tasks:
            try:
                yield task, fn(*task)
            except Exception as exc:  # noqa: BLE001 - reported per task, the sweep goes on
                yield task, exc
    else:
        from bench.executors.local import execute_local

        yield from execute_local(fn, tasks, cfg)
