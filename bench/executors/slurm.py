"""SLURM through submitit: one job per (seed, fold) group, submitted as a job array.

``executor.slurm.cluster: local`` runs the same jobs as local subprocesses (how the tests
exercise this path). Failed jobs are resubmitted up to ``executor.retries`` times; cells
already done are skipped by the store on the retry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bench.config import ExecutorConfig


def execute_slurm(
    fn: Callable[..., dict[str, str]],
    tasks: list[tuple[Any, ...]],
    cfg: ExecutorConfig,
    folder: Any,
) -> Iterator[tuple[tuple[Any, ...], Any]]:
    import submitit

    s = cfg.slurm
    executor = submitit.AutoExecutor(folder=folder, cluster=s.cluster)
    params: dict[str, Any] = {"timeout_min": s.timeout_min, "cpus_per_task": s.cpus_per_task}
    if s.cluster == "slurm":
        params.update(slurm_partition=s.partition, gpus_per_node=s.gpus_per_node, mem_gb=s.mem_gb)
        params.update({f"slurm_{k}": v for k, v in s.extra.items()})
    executor.update_parameters(**params)
    pending = list(tasks)
    for attempt in range(cfg.retries + 1):
        jobs = executor.map_array(fn, *zip(*pending, strict=True)) if pending else []
        retry = []
        for task, job in zip(pending, jobs, strict=True):
            try:
                yield task, job.result()
            except Exception as exc:  # noqa: BLE001 - resubmitted, then reported
                if attempt < cfg.retries:
                    retry.append(task)
                else:
                    yield task, exc
        pending = retry
