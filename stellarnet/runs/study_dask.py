"""A study's parts as Dask tasks (``dask.distributed``; the optional extra
``stellarnet[dask]``).

Each part is one task, :func:`stellarnet.runs.study_part.train_part`: the worker loads the
catalog itself, trains the part, writes its own Parquet part file into the study's staging
folder (which must be on a file system the workers share with the client) and sends back
only its members' statistics, so the client's memory does not grow with the history.

A worker that dies takes its running task with it; the scheduler gives the task to another
worker (Dask's ``allowed-failures``, plus ``retries`` here). The part file has the part's
own name and is written atomically with the same rows on every try, so a retried part
replaces its file, and nothing is written twice or lost. The numbers are the local path's,
bit for bit, on workers of the same machine type.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd

from stellarnet.errors import ConfigError, StellarnetError
from stellarnet.runs.study_part import PartTask, train_part

log = logging.getLogger(__name__)

RETRIES = 3
"""Extra tries of a part whose task raised (a worker's death is counted by the scheduler)."""
INSTALL_HINT = "pip install 'stellarnet[dask]' (dask[distributed])"


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            f"--scheduler and --dask-workers need dask.distributed: {INSTALL_HINT}"
        ) from None
    return distributed


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``scheduler``, or of a local cluster of
    ``workers`` worker processes (one thread each, on 127.0.0.1); closed on exit."""
    distributed = _distributed()
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except OSError as err:
            raise StellarnetError(
                f"cannot reach the Dask scheduler at {scheduler} ({err}); start one with "
                "`dask scheduler` and give its address (tcp://HOST:PORT)"
            ) from None
        with client:
            yield client
        return
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.WARNING,
    )
    with cluster, distributed.Client(cluster) as client:
        yield client


def run_tasks(
    client: Any, tasks: Sequence[PartTask], function: Callable[[PartTask], pd.DataFrame]
) -> list[pd.DataFrame]:
    """Submit ``function(task)`` for every task; gather the results in task order, dropping
    each future as it completes."""
    distributed = _distributed()
    token = uuid.uuid4().hex[:12]  # one study's keys: a shared scheduler may run others
    futures = {
        client.submit(
            function, task, key=f"stellarnet-part-{task.part.index}-{token}", retries=RETRIES
        ): task.part.index
        for task in tasks
    }
    results: dict[int, pd.DataFrame] = {}
    for number, future in enumerate(distributed.as_completed(futures), start=1):
        results[futures[future]] = future.result()
        future.release()
        log.info("part %d of %d trained (Dask)", number, len(tasks))
    return [results[task.part.index] for task in tasks]


def run_on_dask(
    tasks: Sequence[PartTask],
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    function: Callable[[PartTask], pd.DataFrame] = train_part,
) -> tuple[list[pd.DataFrame], dict[str, Any]]:
    """Run the study's parts on Dask (:func:`dask_client`); return each part's member
    statistics in part order and where they ran (for ``run.json``)."""
    if scheduler is None and not workers:
        raise ConfigError("give a Dask scheduler address (--scheduler) or --dask-workers N")
    started = time.perf_counter()
    with dask_client(scheduler, workers) as client:
        info = client.scheduler_info()
        where = {
            "where": "dask",
            "scheduler": scheduler or "LocalCluster",
            "workers": len(info.get("workers", {})),
        }
        stats = run_tasks(client, tasks, function)
    where["dask_wall_time_s"] = round(time.perf_counter() - started, 3)
    return stats, where
