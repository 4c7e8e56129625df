"""Dask clusters: a LocalCluster by default, an existing scheduler, or a managed cluster from a Dask Gateway (the
way JupyterHub-based platforms hand out clusters); the dashboard link is always logged.

No global client is created behind the user's back: :func:`start_cluster` is a context manager that closes what it
started. Nothing is installed on the workers: GDAL settings (:mod:`orbitcube.catalog.defaults`) and credentials reach the
reads inside the graph (:attr:`orbitcube.pipeline.plan.RunPlan.read_env`, ``load_cube(gdal_env=...)``), so a shared cluster keeps no
credential of a run in its workers' environment afterwards.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from orbitcube.pipeline.errors import ClusterError

if TYPE_CHECKING:
    from dask_gateway import Gateway

log = logging.getLogger(__name__)

#: memory one Dask worker may use, in bytes: the default of :func:`start_cluster`'s ``memory_limit`` (Dask spills
#: to disk from 60 %, pauses the worker at 80 % and restarts it at 95 %) and the budget
#: :func:`orbitcube.pipeline.load.load_cube` sizes its read tasks by (``memory_per_worker``)
DEFAULT_WORKER_MEMORY = 2 * 2**30

#: scheduler URL schemes that name a Dask Gateway rather than a scheduler: ``gateway://HOST:PORT[/PREFIX]`` is the
#: gateway's HTTP address, ``gateway+https://...`` its HTTPS address
GATEWAY_SCHEMES = ("gateway://", "gateway+http://", "gateway+https://")


def is_gateway(scheduler: str | None) -> bool:
    """True when ``scheduler`` names a Dask Gateway (``gateway://...``) rather than a Dask scheduler."""
    return bool(scheduler) and scheduler.startswith(GATEWAY_SCHEMES)


def gateway_http_address(url: str) -> str:
    """The gateway's HTTP(S) address for ``gateway://HOST:PORT/PREFIX`` (http) or ``gateway+https://...``."""
    for prefix, scheme in (
        ("gateway+https://", "https://"),
        ("gateway+http://", "http://"),
        ("gateway://", "http://"),
    ):
        if url.startswith(prefix):
            return scheme + url.removeprefix(prefix)
    raise ClusterError(
        f"{url!r} is not a gateway URL; use gateway://HOST:PORT or gateway+https://HOST/PREFIX"
    )


def _gateway_auth(options: Mapping[str, Any]):
    """The dask-gateway auth object for ``options`` (``auth``: basic, jupyterhub or kerberos; ``username``,
    ``password``, ``api_token`` after ``${ENV}`` expansion), or None to let dask-gateway read its own config."""
    from dask_gateway.auth import BasicAuth, JupyterHubAuth, KerberosAuth

    kind = options.get("auth")
    if kind is None:
        return None
    if kind == "basic":
        return BasicAuth(options.get("username"), options.get("password"))
    if kind == "jupyterhub":
        return JupyterHubAuth(api_token=options.get("api_token"))
    if kind == "kerberos":
        return KerberosAuth()
    raise ClusterError(f"cluster.gateway.auth={kind!r}; use 'basic', 'jupyterhub' or 'kerberos'")


@contextlib.contextmanager
def _gateway_client(url: str, n_workers: int, options: Mapping[str, Any], timeout: float) -> Iterator:
    """A client of a new cluster on the Dask Gateway at ``url`` scaled to ``n_workers``; the cluster is shut down
    on exit. Credentials (``options``: see :func:`_gateway_auth`) are ``${ENV}``-expanded here and go only to the
    gateway, never into logs or the graph."""
    try:
        from dask_gateway import Gateway
    except ImportError as exc:
        raise ClusterError(
            f"{url} is a Dask Gateway, and dask-gateway is not installed: pip install 'orbitcube[gateway]'"
        ) from exc
    from orbitcube.catalog.storage import redact, resolve_options

    opts = resolve_options(options)
    address = gateway_http_address(url)
    gateway = Gateway(address, proxy_address=opts.get("proxy_address"), auth=_gateway_auth(opts))
    try:
        cluster = gateway.new_cluster(**dict(opts.get("cluster_options") or {}))
    except Exception as exc:  # aiohttp, HTTP and auth errors of many types
        close_gateway(gateway)
        raise ClusterError(
            f"cannot start a cluster on the Dask Gateway at {redact(address)}: {redact(exc)}; check the address "
            "and cluster.gateway (auth, username, password/api_token as ${ENV} references)"
        ) from None
    try:
        cluster.scale(n_workers)
        client = cluster.get_client()
        try:
            try:
                client.wait_for_workers(n_workers, timeout=timeout)
            except TimeoutError as exc:
                raise ClusterError(
                    f"the Dask Gateway at {redact(address)} started {len(client.scheduler_info()['workers'])} "
                    f"of {n_workers} workers within {timeout:g} s; lower cluster.n_workers or ask its administrator"
                ) from exc
            log.info(
                "cluster %s on Dask Gateway %s; dashboard: %s",
                cluster.name,
                redact(address),
                client.dashboard_link,
            )
            yield client
        finally:
            client.close()
    finally:
        cluster.shutdown()
        for gw in (cluster.gateway, gateway):
            close_gateway(gw)


def close_gateway(gateway: Gateway) -> None:
    """Close a ``dask_gateway.Gateway`` client for good (idempotent): its ``__del__`` closes it again, and a second
    close raises "Accessing the loop property while the loop is not running" (printed as an ignored exception at
    exit)."""
    with contextlib.suppress(RuntimeError):  # closed already
        gateway.close()
    gateway.__dict__.pop("_loop_runner", None)


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
    """ClusterError unless ``scheduler`` looks like a Dask scheduler address (``tcp://HOST:PORT`` ...) or a Dask
    Gateway (``gateway://HOST:PORT``)."""
    if is_gateway(scheduler):
        return
    scheme = scheduler.split("://", 1)[0] if "://" in scheduler else ""
    if scheme not in SCHEDULER_SCHEMES:
        raise ClusterError(
            f"scheduler {scheduler!r} is not a Dask scheduler address; give tcp://HOST:PORT (default port "
            "8786; an http:// address is the dashboard, not the scheduler) or gateway://HOST:PORT for a Dask "
            "Gateway"
        )


#: finished spans (the scheduler's per-computation records) kept by :func:`prune_scheduler_history`, as many as
#: Dask keeps computations (``distributed.diagnostics.computations.max-history``)
SPANS_KEPT = 100


def prune_scheduler_history(client, keep: int = SPANS_KEPT) -> int | None:
    """Forget all but the last ``keep`` finished spans on ``client``'s scheduler; the number forgotten (None when
    the scheduler has no spans extension or refuses the call, which is logged).

    A Dask scheduler keeps every span (one per computation, with its task groups and their statistics) for the
    life of the scheduler (dask/distributed#7977): a batch run computing one graph per tile grows the scheduler
    by ~0.2 MB per tile (``benchmarks/bench_scheduler.py``). A span is forgotten only when it and all its
    sub-spans are done and none of its task groups is still on the scheduler. The function sent is pickled by
    value, so the scheduler need not have orbitcube installed. On glibc the scheduler's freed memory is then
    returned to the system (``malloc_trim``): without it the scheduler's RSS kept rising with every tile while
    its live objects did not."""

    def prune(dask_scheduler, keep: int) -> int:
        ext = dask_scheduler.extensions.get("spans")
        if ext is None:
            return -1
        live = dask_scheduler.task_groups

        def finished(span) -> bool:
            return span.done and all(live.get(tg.name) is not tg for tg in span.traverse_groups())

        done = [s for s in ext.root_spans if finished(s)]
        drop = done[: max(0, len(done) - keep)]
        gone = {id(s) for s in drop}
        for root in drop:
            for span in root.traverse_spans():
                ext.spans.pop(span.id, None)
                gone.add(id(span))
        ext.root_spans[:] = [s for s in ext.root_spans if id(s) not in gone]
        for index in (ext.spans_search_by_name, ext.spans_search_by_tag):
            for key in list(index):
                index[key] = [s for s in index[key] if id(s) not in gone]
                if not index[key]:
                    del index[key]
        try:  # give the freed memory back to the system (glibc keeps it in its arenas otherwise)
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass
        return len(drop)

    try:
        n = client.run_on_scheduler(prune, keep=keep)
    except Exception as exc:  # an old scheduler, or one that refuses run_on_scheduler
        log.warning("could not prune the scheduler's finished spans: %s", exc)
        return None
    return None if n < 0 else n


@contextlib.contextmanager
def start_cluster(
    n_workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: str | int = DEFAULT_WORKER_MEMORY,
    *,
    scheduler: str | None = None,
    dashboard_address: str | None = ":0",
    timeout: str = "10s",
    gateway: Mapping[str, Any] | None = None,
    worker_timeout: float = 300.0,
) -> Iterator:
    """Yield a ``distributed.Client``: on ``scheduler`` ("tcp://HOST:PORT") if given, else on a new LocalCluster
    of ``n_workers`` processes with ``threads_per_worker`` threads and ``memory_limit`` each (bytes, "4GiB", or
    "auto": the machine's memory shared among the workers; default :data:`DEFAULT_WORKER_MEMORY`, 2 GiB: pass
    the same value to ``load_cube(memory_per_worker=...)`` so that read tasks are sized to it).
    Logs the dashboard link. Nothing is installed on the workers (the read tasks carry their GDAL settings and
    credentials inside the graph). Closes the client (and the cluster it started) on exit; an existing cluster
    is left running.

    ``scheduler="gateway://HOST:PORT"`` (or ``gateway+https://HOST/PREFIX``) asks that Dask Gateway for a new
    cluster of ``n_workers`` workers (waiting up to ``worker_timeout`` seconds) and shuts it down on exit;
    ``gateway`` holds its auth (``auth``, ``username``, ``password``, ``api_token``: ``${ENV}`` references are
    expanded here), ``proxy_address`` and ``cluster_options``."""
    from distributed import Client, LocalCluster

    if is_gateway(scheduler):
        with _gateway_client(scheduler, n_workers, gateway or {}, worker_timeout) as client:
            yield client
        return
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
            log.info("connected to Dask scheduler %s; dashboard: %s", scheduler, client.dashboard_link)
            yield client
        finally:
            client.close()
        return
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
    client = Client(cluster)
    log.info("Dask dashboard: %s", client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


__all__ = [
    "GATEWAY_SCHEMES",
    "SPANS_KEPT",
    "SCHEDULER_SCHEMES",
    "check_scheduler_address",
    "close_gateway",
    "gateway_http_address",
    "is_gateway",
    "prune_scheduler_history",
    "start_cluster",
]
