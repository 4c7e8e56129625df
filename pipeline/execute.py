"""Execute a :class:`~orbitcube.pipeline.plan.RunPlan`: one bounded Dask graph per tile (load -> analytics ->
region write), at most ``cluster.max_tiles_in_flight`` at a time, each tile recorded as complete once written.

Every graph carries what its tasks need (the plan's GDAL options and the output store's options, credentials as
Secret strings), so workers of a remote or shared cluster need nothing of their own. Tiles that fail with a
transient storage error are retried (the runner's layer of :data:`orbitcube.catalog.defaults.RETRY_POLICY`).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from orbitcube.catalog.defaults import RETRY_POLICY
from orbitcube.pipeline.plan import RunPlan, Tile, load_items

__all__ = [
    "PRUNE_EVERY_TILES",
    "REPORT_TILES_PER_SLOT",
    "TILE_ATTEMPTS",
    "execute_tiles",
    "tile_error",
    "tile_graph",
]

log = logging.getLogger(__name__)

#: attempts per tile when it fails with a transient storage error (connection reset/refused, timeout, HTTP 5xx):
#: the runner's layer of RETRY_POLICY (a tile is re-run at most once; other errors never)
TILE_ATTEMPTS = RETRY_POLICY.tile_attempts
#: tiles per ``max_tiles_in_flight`` slot that the Dask performance report (dask-performance.html) covers
REPORT_TILES_PER_SLOT = 4
#: tiles written between two prunings of the scheduler's finished spans (:func:`orbitcube.pipeline.cluster.
#: prune_scheduler_history`), which would otherwise grow the scheduler with every tile of a run
PRUNE_EVERY_TILES = 50


def tile_graph(plan: RunPlan, tile: Tile, gdal_env: dict[str, Any] | None = None):
    """The lazy write of one tile: load its items on the tile grid, reindex onto the run's time axis, analytics,
    region write into the store. ``gdal_env`` (default :attr:`RunPlan.read_env`) goes into the read tasks, the
    store's options into the write task. Returns a dask Delayed."""
    from orbitcube.pipeline.sink import write_tile
    from orbitcube.pipeline.steps import apply_steps

    tp = plan.tile_plan(tile)
    gbox = plan.tiles[tile]
    if not tp.items:  # nothing overlaps: an all-NaN tile, written as missing chunks (the fill value)
        cube = _empty_cube(plan, gbox)
    else:
        env = gdal_env if gdal_env is not None else plan.read_env
        cube = load_items(plan.recipe, plan.tile_items(tile), gbox, env).reindex(time=plan.time_axis)
    out = apply_steps(cube, plan.recipe)
    return write_tile(out, plan.store, tile, plan.storage_options)


def _empty_cube(plan: RunPlan, gbox: GeoBox) -> xr.Dataset:
    import dask.array as dsa
    from odc.geo.xr import xr_coords

    shape = (len(plan.time_axis), gbox.shape.y, gbox.shape.x)
    data = {
        b: (("time", "y", "x"), dsa.full(shape, np.nan, dtype="float32", chunks=shape))
        for b in plan.recipe.load.bands
    }
    return xr.Dataset(data, coords={"time": plan.time_axis, **xr_coords(gbox, dims=("y", "x"))})


def execute_tiles(
    plan: RunPlan, todo: list[Tile], *, scheduler: str | None, progress: bool, report_dir: Path, lock=None
) -> tuple[list[dict[str, Any]], str | None]:
    """Write the tiles ``todo`` of ``plan`` on the cluster of ``scheduler`` (``tcp://`` or ``gateway://``; None:
    a LocalCluster of ``recipe.cluster``), with a progress bar on stderr when ``progress`` and the Dask
    performance report in ``report_dir``. ``lock`` (a store lock) is checked before each tile is recorded.
    Returns the per-tile timings and the dashboard link."""
    from distributed import performance_report

    from orbitcube.pipeline.cluster import start_cluster

    c = plan.recipe.cluster
    bar = None
    if progress:
        from tqdm import tqdm

        n = len(plan.tile_plans)
        bar = tqdm(
            total=n, initial=n - len(todo), desc="tiles", unit="tile", file=sys.stderr, dynamic_ncols=True
        )
    gateway = c.gateway.model_dump(exclude_none=True)
    with start_cluster(
        c.n_workers, c.threads_per_worker, c.memory_limit, scheduler=scheduler, gateway=gateway
    ) as client:
        dashboard = client.dashboard_link
        log.info("Dask dashboard: %s", dashboard)
        report_dir.mkdir(parents=True, exist_ok=True)
        # the performance report covers the first tiles only: held over a whole run, its task-stream and
        # profile records grow the scheduler's memory with every tile finished (benchmarks/bench_scheduler.py)
        first = REPORT_TILES_PER_SLOT * c.max_tiles_in_flight
        try:
            with performance_report(filename=str(report_dir / "dask-performance.html")):
                timings = _run_tiles(client, plan, todo[:first], lock, bar)
            timings += _run_tiles(client, plan, todo[first:], lock, bar)
        finally:
            if bar is not None:
                bar.close()
    return timings, dashboard


def _run_tiles(client, plan: RunPlan, todo: list[Tile], lock, bar) -> list[dict[str, Any]]:
    from distributed import wait

    from orbitcube.pipeline.cluster import prune_scheduler_history

    env = plan.read_env  # computed once, on the client
    queue, running = list(todo), {}
    attempts: dict[Tile, int] = {}
    timings: list[dict[str, Any]] = []
    try:
        while queue or running:
            while queue and len(running) < plan.recipe.cluster.max_tiles_in_flight:
                tile = queue.pop(0)
                running[client.compute(tile_graph(plan, tile, env))] = (tile, time.perf_counter())
            finished, _ = wait(list(running), return_when="FIRST_COMPLETED")
            for fut in finished:
                tile, t0 = running.pop(fut)
                if _retry(client, fut, plan, tile, attempts):
                    queue.insert(0, tile)
                    continue
                timings.append(_record(plan, tile, t0, lock))
                if len(timings) % PRUNE_EVERY_TILES == 0:
                    prune_scheduler_history(client)
                if bar is not None:
                    bar.update(1)
    finally:
        for fut in running:
            fut.cancel()
    return timings


def _retry(client, fut, plan: RunPlan, tile: Tile, attempts: dict[Tile, int]) -> bool:
    """Whether the finished tile must be run again (a transient error within :data:`TILE_ATTEMPTS`); raises the
    tile's error otherwise (see :func:`tile_error`); False when it succeeded."""
    from orbitcube.catalog.failures import is_transient
    from orbitcube.catalog.storage import redact

    try:
        fut.result()  # re-raises the tile's error
        return False
    except Exception as exc:
        attempts[tile] = attempts.get(tile, 1) + 1
        if not (is_transient(exc) and attempts[tile] <= TILE_ATTEMPTS):
            raise tile_error(exc, plan, tile) from exc
        log.warning(
            "tile %d-%d failed (%s), attempt %d of %d",
            *tile,
            redact(exc)[:300],
            attempts[tile],
            TILE_ATTEMPTS,
        )
        # the scheduler forgets the erred tasks first: a new compute of the same keys would otherwise return
        # the erred result it still holds, without reading
        client.cancel([fut])
        return True


def _record(plan: RunPlan, tile: Tile, t0: float, lock) -> dict[str, Any]:
    """Record a written tile as complete (after checking the store's lock is still ours); its timing."""
    from orbitcube.pipeline.sink import mark_tile_done

    if lock is not None:
        lock.check()  # never record a tile after losing the store's lease
    mark_tile_done(plan.store, tile, plan.storage_options)
    n = len(plan.tile_plan(tile).items)
    secs = time.perf_counter() - t0
    log.info("tile %d-%d written (%d items, %.2f s)", *tile, n, secs)
    return {"tile": f"{tile[0]}-{tile[1]}", "items": n, "seconds": round(secs, 2)}


def tile_error(exc: BaseException, plan: RunPlan, tile: Tile) -> Exception:
    """The error a failed tile raises: an OrbitcubeError as it is (secrets redacted from its message), anything
    else (storage SDK errors from the workers' writes) as a SinkError naming the store and the cause."""
    from orbitcube.catalog.errors import OrbitcubeError
    from orbitcube.catalog.failures import storage_error
    from orbitcube.catalog.storage import redact
    from orbitcube.pipeline.errors import SinkError

    if isinstance(exc, OrbitcubeError):
        # GDAL paths back to the URLs the user wrote (/vsiaz/c/k -> az://c/k), secrets removed
        msg = redact(re.sub(r"/vsi(az|s3|gs)/", r"\1://", str(exc)).replace("/vsicurl/", ""))
        if msg == str(exc):
            return exc
        try:
            return type(exc)(msg)
        except TypeError:  # a subclass with another signature
            return SinkError(msg)
    return storage_error(exc, str(plan.store), f"write tile {tile[0]}-{tile[1]} of", SinkError)
