"""The batch runner behind ``orbitcube run RECIPE.yaml``: orchestration only (DESIGN rule 6).

recipe -> :func:`~orbitcube.pipeline.plan.plan_run` (a frozen :class:`~orbitcube.pipeline.plan.RunPlan`: storage,
search, grid, tiles, items per tile, output template) -> the output store created with its full shape (or an
earlier run's store resumed) under a one-writer lock -> :func:`~orbitcube.pipeline.execute.execute_tiles` (one
bounded Dask graph per tile) -> HTML report. Every step is a library function; this module only decides the
order and what may be deleted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbitcube.pipeline.plan import RunPlan, plan_run
from orbitcube.pipeline.recipe import Recipe, load_recipe

__all__ = ["RunResult", "report_dir", "run_recipe"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run did: where the store, report and log are, tiles written / skipped (already complete)."""

    store: Path | str
    report: Path | None
    log_file: Path | None
    tiles_done: int
    tiles_skipped: int
    tiles_total: int
    plan: RunPlan
    dashboard: str | None = None
    seconds: float = 0.0
    timings: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        """Human-readable summary of the run."""
        if self.report is None:
            return self.plan.summary()
        return (
            f"{self.tiles_done} tile(s) written, {self.tiles_skipped} already complete, of {self.tiles_total} "
            f"in {self.seconds:.1f} s\n  store : {self.store}\n  report: {self.report}\n  log   : {self.log_file}"
            f"\n  dashboard (while it ran): {self.dashboard}"
        ) + "".join(
            [f"\n{len(self.plan.skipped)} scene(s) skipped (not in the cube):"]
            + [f"\n  {iid}: {why}" for iid, why in self.plan.skipped.items()]
            if self.plan.skipped
            else []
        )


def report_dir(store: Path | str, recipe: Recipe | None = None) -> Path:
    """Where the report, quicklooks, Dask performance report and log of the run writing ``store`` go (a local
    folder): ``recipe.output.report_dir`` if set, else ``<store>-report`` beside a local store, else
    ``./<store name>-report`` for an ``az://`` / ``s3://`` store."""
    from orbitcube.catalog.storage import is_remote

    if recipe is not None and recipe.output.report_dir:
        return Path(recipe.output.report_dir)
    if is_remote(str(store)):
        return Path.cwd() / (str(store).rstrip("/").rsplit("/", 1)[-1].removesuffix(".zarr") + "-report")
    store = Path(store)
    return store.with_name(store.name.removesuffix(".zarr") + "-report")


def run_recipe(
    recipe: Recipe | str | Path | dict,
    *,
    scheduler: str | None = None,
    dry_run: bool = False,
    progress: bool = True,
    resume: bool = True,
    allow_large: bool = False,
    recipe_file: Path | None = None,
) -> RunResult:
    """Run ``recipe`` tile by tile into its Zarr store; return what was done.

    ``scheduler`` ("tcp://HOST:PORT") overrides ``recipe.cluster.scheduler``; without either a LocalCluster of
    ``recipe.cluster`` workers is started and closed. ``dry_run`` only plans (see :func:`plan_run`). With
    ``resume`` an existing store of the same recipe keeps its completed tiles and only the others are computed
    (the finished store is byte-identical to an uninterrupted run); completed tiles are re-verified against their
    chunk checksums first and damaged ones rewritten (:mod:`orbitcube.pipeline.verify`). ``resume=False`` deletes and
    rewrites the store, but only a store orbitcube created, never a folder that is or holds the recipe file, the
    catalog, the report folder, the working or the home directory (SinkError otherwise; :mod:`orbitcube.pipeline.safety`);
    ``recipe_file`` names the recipe's file when ``recipe`` is given parsed (a path is recognised). A second
    run on the same store at the same time raises SinkError. Writes ``<store>-report/`` (index.html, quicklooks,
    dask-performance.html, run.log; see :func:`report_dir`).

    ``output.path`` may be an ``az://`` or ``s3://`` URL: the store, its tile markers and its lock (a lease object,
    see :mod:`orbitcube.pipeline.locks`) then live in the object store, reached with the recipe's ``storage`` options;
    tiles that fail with a transient storage error (connection reset or refused, HTTP 5xx) are retried up to
    :data:`TILE_ATTEMPTS` times in all. Plans above the limits of :mod:`orbitcube.pipeline.limits` (bytes, tiles) raise
    LargePlanError unless ``allow_large`` or the recipe's ``output.allow_large`` confirms them.
    """
    from orbitcube.catalog.storage import redact
    from orbitcube.pipeline.execute import execute_tiles
    from orbitcube.pipeline.limits import require_confirmation
    from orbitcube.pipeline.report import run_report
    from orbitcube.pipeline.runlog import log_to
    from orbitcube.pipeline.safety import check_removable, recipe_path
    from orbitcube.pipeline.sink import store_lock

    t_start = time.perf_counter()
    recipe_file = recipe_file or recipe_path(recipe)
    recipe = load_recipe(recipe)
    if not dry_run:
        from orbitcube.pipeline.preflight import check_output_path

        check_output_path(recipe.output.path)  # before searching: a path that cannot be a store fails at once
        check_output_path(report_dir(recipe.output.path, recipe), "output.report_dir")
    plan = plan_run(recipe)
    store, total = plan.store, len(plan.tile_plans)
    if dry_run:
        return RunResult(store, None, None, 0, 0, total, plan)
    require_confirmation(plan.bytes_written, total, recipe.name, allow_large or recipe.output.allow_large)
    rdir = report_dir(store, recipe)
    # what a rewrite must never delete (orbitcube.pipeline.safety); checked before the lock and report files exist
    protect = (recipe_file, recipe.catalog.source, rdir)
    if not resume:
        check_removable(store, plan.storage_options, protect=protect, only_if_exists=True)
    with store_lock(store, plan.storage_options) as lock, log_to(rdir / "run.log") as log_file:
        log.info("run %r: %d items, %d tiles -> %s", recipe.name, len(plan.item_ids), total, redact(store))
        done = _open_store(plan, resume, protect)
        todo = [tp.index for tp in plan.tile_plans if tp.index not in done]
        log.info("%d tile(s) already complete, %d to write", len(done), len(todo))
        timings, dashboard = execute_tiles(
            plan,
            todo,
            scheduler=scheduler or recipe.cluster.scheduler,
            progress=progress,
            report_dir=rdir,
            lock=lock,
        )
        seconds = time.perf_counter() - t_start
        log.info("run finished in %.1f s", seconds)
        result = RunResult(
            store, None, log_file, len(todo), len(done), total, plan, dashboard, seconds, timings
        )
        result.report = run_report(result, rdir)
    return result


def _open_store(plan: RunPlan, resume: bool, protect: tuple) -> set[tuple[int, int]]:
    """The tiles already complete in the plan's store: with ``resume``, those of an earlier run of the same
    recipe and items whose chunk checksums still verify (damaged ones are rewritten); otherwise (or when the
    store is not such a run's) the store is removed -- never a ``protect``-ed path -- and created empty with the
    plan's full shape."""
    from orbitcube.pipeline.sink import create_store, remove_store, store_state
    from orbitcube.pipeline.verify import recheck_tiles

    store, so, out = plan.store, plan.storage_options, plan.recipe.output
    done = store_state(store, plan.fingerprint, so) if resume else None
    if done:
        return recheck_tiles(store, done, so)
    if done is not None:
        return done
    remove_store(store, so, protect=protect)
    create_store(
        plan.template,
        store,
        tile_shape=tuple(plan.recipe.grid.tile_shape),
        provenance=plan.provenance(),
        fingerprint=plan.fingerprint,
        compression=out.compression,
        level=out.level,
        time_chunk=out.time_chunk,
        storage_options=so,
    )
    return set()
