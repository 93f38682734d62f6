"""Local process pool (joblib's loky backend): one (seed, fold) group per worker process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from joblib import Parallel, delayed

from bench.config import ExecutorConfig


def _guarded(
    fn: Callable[..., dict[str, str]], task: tuple[Any, ...]
) -> tuple[tuple[Any, ...], Any]:
    try:
        return task, fn(*task)
    except Exception as exc:  # noqa: BLE001 - returned to the parent, which reports it
        return task, exc


def execute_local(
    fn: Callable[..., dict[str, str]], tasks: list[tuple[Any, ...]], cfg: ExecutorConfig
) -> Iterator[tuple[tuple[Any, ...], Any]]:
    parallel = Parallel(n_jobs=cfg.workers, backend="loky", return_as="generator_unordered")
    yield from parallel(delayed(_guarded)(fn, task) for task in tasks)
