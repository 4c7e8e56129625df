"""Dask clusters: a LocalCluster by default, or an existing scheduler; the dashboard link is always logged.

No global client is created behind the user's back: :func:`start_cluster` is a context manager that closes what it
started. GDAL settings reach the workers through environment variables set before the worker processes start.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping

from pipeline.errors import ClusterError

log = logging.getLogger(__name__)

#: GDAL settings that make COG reads fast; passed to every worker
GDAL_DEFAULTS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_CACHEMAX": "256",
    "VSI_CACHE": "TRUE",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
}


@contextlib.contextmanager
def start_cluster(
    n_workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: str = "auto",
    *,
    scheduler: str | None = None,
    dashboard_address: str | None = ":0",
    gdal_env: Mapping[str, str] | None = None,
) -> Iterator:
    """Yield a ``distributed.Client``: on ``scheduler`` ("tcp://HOST:PORT") if given, else on a new LocalCluster
    of ``n_workers`` processes. Logs the dashboard link. Closes what it started on exit."""
    from distributed import Client, LocalCluster

    env = {**GDAL_DEFAULTS, **(dict(gdal_env) if gdal_env else {})}
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {scheduler}: {exc}; start it with `dask scheduler` or drop "
                "--scheduler to use a local cluster"
            ) from exc
        try:
            client.run(lambda e: os.environ.update(e), env)
            log.info("connected to Dask scheduler %s; dashboard: %s", scheduler, client.dashboard_link)
            yield client
        finally:
            client.close()
        return
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # inherited by the worker processes at spawn
    try:
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            memory_limit=memory_limit,
            processes=True,
            dashboard_address=dashboard_address,
            silence_logs=logging.WARNING,
        )
    except Exception as exc:  # distributed raises many kinds here
        raise ClusterError(f"cannot start a local Dask cluster with {n_workers} workers: {exc}") from exc
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    client = Client(cluster)
    log.info("Dask dashboard: %s", client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
