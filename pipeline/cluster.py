"""Dask clusters: a LocalCluster by default, or an existing scheduler; the dashboard link is always logged.

No global client is created behind the user's back: :func:`start_cluster` is a context manager that closes what it
started. GDAL settings and credentials (``GDAL_*``, ``CPL_*``, ``VSI_*``, ``AWS_*``, ``AZURE_*``, ``GS_*`` of the
calling process, plus explicit ``gdal_env``) are captured once and installed on every worker, present and future,
by a :class:`GdalEnvPlugin` -- on a LocalCluster and on an existing scheduler alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping

from distributed.diagnostics.plugin import WorkerPlugin

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

#: environment variable prefixes forwarded to workers (GDAL configuration and cloud credentials)
FORWARDED_PREFIXES = (
    "GDAL_",
    "CPL_",
    "VSI_",
    "AWS_",
    "AZURE_",
    "GS_",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "PROJ_",
)


def capture_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """GDAL defaults, then the GDAL/credential variables of this process, then ``extra``: what workers receive."""
    env = dict(GDAL_DEFAULTS)
    env.update({k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIXES)})
    env.update({str(k): str(v) for k, v in (extra or {}).items()})
    return env


class GdalEnvPlugin(WorkerPlugin):
    """Sets environment variables (GDAL settings, credentials) on each worker when it starts or joins."""

    name = "orbitcube-gdal-env"

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def setup(self, worker) -> None:  # noqa: ARG002 (distributed's signature)
        os.environ.update(self.env)


#: address schemes of Dask schedulers (distributed's comm backends)
SCHEDULER_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Ignore SIGINT while worker processes are spawned, so they inherit "ignore": Ctrl-C in a terminal signals
    the whole process group, and only this process should handle it (it closes the cluster in order), not every
    worker with a KeyboardInterrupt traceback. Only in the main thread (elsewhere signals cannot be set)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def check_scheduler_address(scheduler: str) -> None:
    """ClusterError unless ``scheduler`` looks like a Dask scheduler address (``tcp://HOST:PORT`` ...)."""
    scheme = scheduler.split("://", 1)[0] if "://" in scheduler else ""
    if scheme not in SCHEDULER_SCHEMES:
        raise ClusterError(
            f"scheduler {scheduler!r} is not a Dask scheduler address; give tcp://HOST:PORT (default port "
            "8786; an http:// address is the dashboard, not the scheduler)"
        )


@contextlib.contextmanager
def start_cluster(
    n_workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: str = "auto",
    *,
    scheduler: str | None = None,
    dashboard_address: str | None = ":0",
    gdal_env: Mapping[str, str] | None = None,
    timeout: str = "10s",
) -> Iterator:
    """Yield a ``distributed.Client``: on ``scheduler`` ("tcp://HOST:PORT") if given, else on a new LocalCluster
    of ``n_workers`` processes with ``threads_per_worker`` threads and ``memory_limit`` each ("4GiB", "auto").
    Logs the dashboard link. GDAL settings and credentials (see :func:`capture_env`, plus ``gdal_env``) are set on
    every worker. Closes the client (and the cluster it started) on exit; an existing cluster is left running."""
    from distributed import Client, LocalCluster

    env = capture_env(gdal_env)
    if scheduler:
        check_scheduler_address(scheduler)
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {scheduler}: {exc}; start it with `dask scheduler` or drop "
                "--scheduler to use a local cluster"
            ) from exc
        try:
            client.register_plugin(GdalEnvPlugin(env))
            log.info("connected to Dask scheduler %s; dashboard: %s", scheduler, client.dashboard_link)
            yield client
        finally:
            client.close()
        return
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # inherited by the worker processes at spawn
    try:
        with _children_ignore_sigint():
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
    client.register_plugin(GdalEnvPlugin(env))
    log.info("Dask dashboard: %s", client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
