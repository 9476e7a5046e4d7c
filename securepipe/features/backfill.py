"""Backfills on a Dask cluster: the batch ingest path on any number of machines (optional extra).

The event-driven worker (:mod:`securepipe.features.worker`) handles uploads as they arrive; a
backfill (a bucket of uploads from before the notifications existed, or a re-extraction after
a new feature spec) is a batch. :func:`~securepipe.features.ingest.ingest_batch` takes any
:class:`concurrent.futures.Executor`, and Dask's ``Client.get_executor()`` is one
(https://distributed.dask.org/en/stable/api.html#distributed.Client.get_executor), so the same
crash-safe ingest spreads over a Dask cluster with no other change. With worker processes, the
session factory must be picklable, such as
:class:`~securepipe.features.ingest.ProfileSessionFactory`. Needs ``pip install
'securepipe[dask]'`` (``dask[distributed]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import boto3

from securepipe.features.ingest import IngestConfig, IngestItem, RunReport, ingest_batch


def backfill_on_dask(items: Iterable[IngestItem], config: IngestConfig,
                     session_factory: Callable[[], boto3.Session], *,
                     client: Any = None, n_workers: int = 2, threads_per_worker: int = 4,
                     processes: bool = True) -> RunReport:
    """Ingest ``items`` on a Dask cluster: ``client`` if given (a real cluster), otherwise a
    ``LocalCluster`` of ``n_workers`` x ``threads_per_worker`` made for the call."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:   # the optional extra is not installed
        raise ImportError("backfill_on_dask needs dask[distributed]: "
                          "pip install 'securepipe[dask]'") from exc
    if client is not None:
        return ingest_batch(items, config, session_factory, executor=client.get_executor())
    with LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                      processes=processes, dashboard_address=None) as cluster, \
            Client(cluster) as local:
        return ingest_batch(items, config, session_factory, executor=local.get_executor())
