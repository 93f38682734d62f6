"""Dask distributed: an existing scheduler (``executor.scheduler: tcp://HOST:PORT``) or a
LocalCluster started here. Failed tasks are retried (``executor.retries``), so a worker
that dies in the middle of a group has the group re-run elsewhere; done cells are skipped
on the retry because the store knows them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bench.config import ExecutorConfig


def execute_dask(
    fn: Callable[..., dict[str, str]], tasks: list[tuple[Any, ...]], cfg: ExecutorConfig
) -> Iterator[tuple[tuple[Any, ...], Any]]:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if cfg.scheduler:
        client = Client(cfg.scheduler)
    else:
        cluster = LocalCluster(
            n_workers=cfg.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    try:
        futures = {
            client.submit(fn, *task, retries=cfg.retries, pure=False): task for task in tasks
        }
        for future in as_completed(futures):
            task = futures[future]
            try:
                yield task, future.result()
            except Exception as exc:  # noqa: BLE001 - reported per task
                yield task, exc
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
