"""The batch runner behind ``orbitcube run RECIPE.yaml``: wiring only (DESIGN rule 6).

search the catalog -> output grid split into tiles -> the output store created with its full shape -> for each
tile not yet complete one bounded Dask graph (load -> analytics -> region write), at most
``cluster.max_tiles_in_flight`` at a time -> tile recorded as complete -> HTML report. Every step is a library
function (:mod:`orbitcube.catalog.query`, :mod:`orbitcube.pipeline.grid`, :mod:`orbitcube.pipeline.load`, :mod:`orbitcube.pipeline.analytics`,
:mod:`orbitcube.pipeline.sink`); this module only plans and schedules.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox, GeoboxTiles
from odc.geo.geom import Geometry

from orbitcube.catalog.defaults import RETRY_POLICY
from orbitcube.pipeline.errors import LoadError, RecipeError
from orbitcube.pipeline.recipe import BandMathStep, CompositeStep, IndexStep, Recipe, TrendStep, load_recipe

log = logging.getLogger(__name__)

Tile = tuple[int, int]
#: tiles listed one per line by :meth:`RunPlan.summary` (the rest are counted)
SUMMARY_TILES = 12


# ----- plan ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TilePlan:
    """One output tile: its (tile_y, tile_x) index, pixel shape (y, x) and the ids of the items overlapping it."""

    index: Tile
    shape: tuple[int, int]
    items: tuple[str, ...]


@dataclass
class RunPlan:
    """What a run will do, computed without reading a pixel (``orbitcube run --dry-run``)."""

    recipe: Recipe
    geobox: GeoBox
    tiles: GeoboxTiles
    tile_plans: list[TilePlan]
    items: list[pystac.Item]
    skipped: dict[str, str]
    template: xr.Dataset
    time_axis: np.ndarray
    bytes_read: int
    bytes_written: int

    @property
    def store(self) -> Path | str:
        """The output store: a local Path, or the ``az://`` / ``s3://`` URL."""
        from orbitcube.catalog.storage import is_remote

        p = self.recipe.output.path
        return p.rstrip("/") if is_remote(p) else Path(p)

    @property
    def storage_options(self) -> dict[str, Any]:
        """Storage options of the output store (from the recipe's ``storage``; ``${ENV}`` not yet expanded)."""
        return self.recipe.storage_options(self.recipe.output.path)

    @property
    def read_env(self) -> dict[str, Any]:
        """GDAL options every read task runs under: fast-COG settings, the credentials of the recipe's ``storage``
        entries that match the items' asset hrefs (else those of the environment), then ``cluster.gdal_env``.
        Small and picklable: it travels inside the Dask graph, so that remote workers get the credentials."""
        return read_env(self.recipe, self.items)

    @property
    def output_shape(self) -> dict[str, dict[str, int]]:
        """Per output variable its dims and sizes."""
        return {
            str(k): {str(d): int(n) for d, n in zip(v.dims, v.shape, strict=True)}
            for k, v in self.template.data_vars.items()
        }

    def summary(self) -> str:
        """Human-readable plan: grid, tiles with item counts, output shapes, estimated bytes read and written."""
        g = self.geobox
        ny, nx = self.tiles.shape
        lines = [
            f"recipe {self.recipe.name!r}: {len(self.items)} items"
            + (f" ({len(self.skipped)} skipped)" if self.skipped else ""),
            f"grid: {g.crs} at {abs(g.resolution.x):g} CRS units, {g.shape.y} x {g.shape.x} px (y, x)",
            f"tiles: {ny} x {nx} = {ny * nx} of {tuple(self.recipe.grid.tile_shape)} px",
        ]
        for tp in self.tile_plans[:SUMMARY_TILES]:
            lines.append(
                f"  tile {tp.index[0]}-{tp.index[1]}: {tp.shape[0]} x {tp.shape[1]} px, {len(tp.items)} items"
            )
        if len(self.tile_plans) > SUMMARY_TILES:
            empty = sum(not tp.items for tp in self.tile_plans)
            lines.append(
                f"  ... and {len(self.tile_plans) - SUMMARY_TILES} more tiles ({empty} of all without items)"
            )
        lines.append(f"output: {self.store}")
        for name, dims in self.output_shape.items():
            lines.append(f"  {name}: " + ", ".join(f"{d}={n}" for d, n in dims.items()))
        lines.append(f"estimated read : {_human(self.bytes_read)} (uncompressed, on the output grid)")
        lines.append(f"estimated write: {_human(self.bytes_written)} (uncompressed)")
        for iid, why in self.skipped.items():
            lines.append(f"skipped {iid}: {why}")
        from orbitcube.pipeline.limits import confirmation_needed

        reason = confirmation_needed(self.bytes_written, len(self.tile_plans))
        if reason:
            lines.append(f"large plan: it {reason}; a run needs --yes (or output.allow_large: true)")
        return "\n".join(lines)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def catalog_policy(recipe: Recipe):
    """What the recipe's catalog may reference (:class:`orbitcube.catalog.policy.AccessPolicy`): its own tree (folder, or
    the URL's origin), ``catalog.allow`` and the object stores of ``storage``."""
    from orbitcube.catalog.policy import AccessPolicy

    return AccessPolicy.for_catalog(recipe.catalog.source, recipe.catalog.allow, stores=list(recipe.storage))


def search_items(recipe: Recipe) -> list[pystac.Item]:
    """Items matching ``recipe.search`` in ``recipe.catalog`` (local/static catalog, or a STAC API). Links are
    followed, and the items' asset hrefs accepted, only where :func:`catalog_policy` allows (CatalogError)."""
    from orbitcube.catalog.policy import check_items, guarded_stac_io, refusals, request_guard
    from orbitcube.catalog.query import search

    s, cat = recipe.search, recipe.catalog
    policy = catalog_policy(recipe)
    bbox = s.aoi if isinstance(s.aoi, tuple) else None
    intersects = s.aoi if isinstance(s.aoi, dict) else None
    if cat.kind == "api":
        import pystac_client

        try:
            client = pystac_client.Client.open(cat.source, request_modifier=request_guard(policy))
            query = {k: {"eq": v} for k, v in (s.filter or {}).items()} or None
            found = client.search(
                bbox=bbox,
                intersects=intersects,
                datetime=s.datetime,
                collections=s.collections,
                query=query,
            ).item_collection()
        except Exception as exc:  # pystac-client raises many types for network and API errors
            raise RecipeError(f"catalog.source: cannot search the STAC API {cat.source}: {exc}") from exc
        items = [it for it in found if _cloud_ok(it, s.max_cloud_cover)]
        check_items(items, policy)
        return sorted(items, key=lambda i: (i.datetime, i.id))
    source: Any = cat.source
    if cat.kind == "static":
        from orbitcube.catalog.errors import CatalogError
        from orbitcube.catalog.storage import redact, stac_io

        try:
            io = guarded_stac_io(policy, stac_io(recipe.storage_options(cat.source)))
            with refusals():
                root = pystac.Catalog.from_file(cat.source, stac_io=io)
                source = list(root.get_items(recursive=True))
        except CatalogError:
            raise
        except Exception as exc:  # pystac raises many types for unreachable or bad JSON
            raise RecipeError(
                f"catalog.source: cannot read the static catalog {redact(cat.source)}: {redact(exc)}"
            ) from exc
        for it in source:
            it.make_asset_hrefs_absolute()
    items = list(
        search(
            source,
            bbox=bbox,
            intersects=intersects,
            datetime=s.datetime,
            collections=s.collections,
            max_cloud_cover=s.max_cloud_cover,
            allow=[str(e) for e in policy.allow],
        )
    )
    for key, want in (s.filter or {}).items():
        items = [it for it in items if it.properties.get(key) == want]
    check_items(items, policy)  # before any graph is built: no read outside the catalog's tree
    return items


def _cloud_ok(item: pystac.Item, limit: float | None) -> bool:
    cc = item.properties.get("eo:cloud_cover")
    return limit is None or (cc is not None and cc <= limit)


def _aoi(recipe: Recipe):
    return recipe.search.aoi


def _step_dim(step: CompositeStep) -> str:
    if step.dim:
        return step.dim
    if step.freq in ("1MS", "MS", "monthly", "month"):
        return "month"
    return "time_" + re.sub(r"\W", "_", step.freq or "all")


def apply_steps(cube: xr.Dataset, recipe: Recipe) -> xr.Dataset:
    """Run the recipe's analytics steps on ``cube`` (lazy); return the output variables named in the recipe."""
    from orbitcube.pipeline.analytics import band_math, composite, linear_trend, spectral_index

    ds = cube
    for step in recipe.analytics:
        if isinstance(step, IndexStep):
            name = step.name or step.index.lower()
            ds[name] = spectral_index(ds, step.index).rename(name)
        elif isinstance(step, BandMathStep):
            ds[step.name] = band_math(ds, step.expression, name=step.name)
        elif isinstance(step, CompositeStep):
            out = composite(ds[step.input], step.stat, freq=step.freq, q=step.q)
            if "time" in out.dims:
                out = out.rename(time=_step_dim(step))
            ds[out.name] = out
        elif isinstance(step, TrendStep):
            ds = ds.merge(linear_trend(ds[step.input], min_obs=step.min_obs))
    names = recipe.output.variables or (
        [n for n in ds.data_vars if n not in recipe.load.bands]
        if recipe.analytics
        else list(recipe.load.bands)
    )
    out = ds[names]
    keep = set(out.dims) | {"spatial_ref"}
    out = out.drop_vars([c for c in out.coords if c not in keep])
    out.attrs = {}
    return out


def read_env(recipe: Recipe, items: Sequence[pystac.Item]) -> dict[str, Any]:
    """See :attr:`RunPlan.read_env`. Local scenes only: just ``cluster.gdal_env`` (the reader's defaults suit
    local files)."""
    from orbitcube.catalog.storage import SECRET_GDAL_KEYS, Secret, gdal_options, is_remote

    env: dict[str, Any] = {}
    seen: list[dict[str, Any]] = []
    remote = False
    for it in items:
        for a in it.assets.values():
            href = a.get_absolute_href() or a.href
            remote = remote or is_remote(href)
            opts = recipe.storage_options(href)
            if opts and opts not in seen:
                seen.append(opts)
    if remote:
        for opts in seen or [{}]:
            env.update(gdal_options(opts))
    # credentials written into cluster.gdal_env travel in the graph as Secret strings (repr '***')
    env.update({k: Secret(v) if k in SECRET_GDAL_KEYS else v for k, v in recipe.cluster.gdal_env.items()})
    return env


def _load(
    recipe: Recipe, items: Sequence[pystac.Item], geobox: GeoBox, gdal_env: dict[str, Any] | None = None
) -> xr.Dataset:
    from orbitcube.pipeline.load import load_cube

    ty, tx = recipe.grid.tile_shape
    return load_cube(
        items,
        recipe.load.bands,
        geobox=geobox,
        mask=recipe.load.mask,
        dilate_m=recipe.load.dilate_m,
        groupby=recipe.load.groupby,
        resampling=recipe.load.resampling,
        scale_offset=recipe.load.scale_offset,
        chunks={"y": ty, "x": tx},
        gdal_env=gdal_env if gdal_env is not None else read_env(recipe, items),
    )


def plan_run(recipe: Recipe | str | Path | dict) -> RunPlan:
    """Search, grid and tile the run of ``recipe`` and estimate its I/O, without reading any pixel."""
    from orbitcube.pipeline.footprints import footprint_on
    from orbitcube.pipeline.grid import output_grid, tile_grid
    from orbitcube.pipeline.limits import check_grid_size
    from orbitcube.pipeline.preflight import screen_items

    recipe = load_recipe(recipe)
    found = search_items(recipe)
    if not found:
        raise RecipeError(
            f"search: no items in {recipe.catalog.source} match the search "
            f"(aoi={recipe.search.aoi}, datetime={recipe.search.datetime}, collections={recipe.search.collections}); "
            "widen the dates, AOI or cloud cover"
        )
    items, skipped = screen_items(found, recipe.load.bands, bool(recipe.load.mask))
    if not items:
        first = next(iter(skipped.items()))
        raise RecipeError(
            f"search: every one of the {len(found)} found items is skipped, e.g. {first[0]}: {first[1]}"
        )
    geobox = output_grid(
        items,
        crs=recipe.grid.crs,
        resolution=recipe.grid.resolution,
        aoi=_aoi(recipe),
        bands=recipe.load.bands,
    )
    check_grid_size(geobox.shape.yx, tuple(recipe.grid.tile_shape), abs(geobox.resolution.x))
    inside, footprints = [], []
    for it in items:
        fp = footprint_on(it.geometry, geobox)  # antimeridian- and pole-safe, in the grid's CRS
        if fp is not None:
            inside.append(it)
            footprints.append((it, Geometry(fp, crs=geobox.crs)))
        else:
            skipped[it.id] = "outside the output grid"
    if not inside:
        raise RecipeError("search: no item overlaps the output grid; check search.aoi and grid.crs")
    tiles = tile_grid(geobox, tuple(recipe.grid.tile_shape))
    plans = []
    ny, nx = tiles.shape
    for i in range(ny):
        for j in range(nx):
            tb = tiles[i, j]
            ids = tuple(it.id for it, fp in footprints if fp.intersects(tb.extent))
            plans.append(TilePlan((i, j), (tb.shape.y, tb.shape.x), ids))
    try:
        cube = _load(recipe, inside, geobox)
        template = apply_steps(cube, recipe)
    except (LoadError, KeyError) as exc:
        raise RecipeError(f"the recipe cannot be applied to the found items: {exc}") from exc
    per_pixel = sum(_band_bytes(inside[0], b) for b in recipe.load.bands) + (2 if recipe.load.mask else 0)
    read = sum(len(tp.items) * tp.shape[0] * tp.shape[1] * per_pixel for tp in plans)
    written = sum(int(v.size) * v.dtype.itemsize for v in template.data_vars.values())
    return RunPlan(
        recipe, geobox, tiles, plans, inside, skipped, template, cube["time"].values, int(read), int(written)
    )


def _band_bytes(item: pystac.Item, band: str) -> int:
    from orbitcube.pipeline.bands import asset_band, resolve_band

    try:
        ref = resolve_band(item, band)
    except LoadError:
        return 2
    dtype = asset_band(item.assets[ref.key]).get("data_type", "uint16")
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return 2


# ----- execute ------------------------------------------------------------------------------------------------------
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


def provenance(plan: RunPlan) -> dict[str, Any]:
    """Provenance recorded in the store: recipe, items, grid, software versions (no timestamps)."""
    from orbitcube.pipeline.recipe import NOT_IN_FINGERPRINT
    from orbitcube.pipeline.sink import software_versions

    g = plan.geobox
    return {
        "name": plan.recipe.name,
        # no storage options (credentials), no cluster settings, no output location: the same recipe run
        # anywhere records the same provenance (and a resumed store stays byte-identical)
        "recipe": plan.recipe.model_dump(mode="json", exclude=NOT_IN_FINGERPRINT),
        "items": sorted(it.id for it in plan.items),
        "skipped_items": plan.skipped,
        "grid": {
            "crs": str(g.crs),
            "transform": list(g.transform)[:6],
            "shape_yx": [g.shape.y, g.shape.x],
            "tile_shape_yx": list(plan.recipe.grid.tile_shape),
        },
        "software": software_versions(),
    }


def tile_graph(plan: RunPlan, tile: Tile, gdal_env: dict[str, Any] | None = None):
    """The lazy write of one tile: load its items on the tile grid, reindex onto the run's time axis, analytics,
    region write into the store. ``gdal_env`` (default :attr:`RunPlan.read_env`) goes into the read tasks.
    Returns a dask Delayed."""
    from orbitcube.pipeline.sink import write_tile

    recipe = plan.recipe
    tp = plan.tile_plans[tile[0] * plan.tiles.shape[1] + tile[1]]
    gbox = plan.tiles[tile]
    by_id = {it.id: it for it in plan.items}
    if not tp.items:  # nothing overlaps: an all-NaN tile, written as missing chunks (the fill value)
        cube = _empty_cube(plan, gbox)
    else:
        env = gdal_env if gdal_env is not None else plan.read_env
        cube = _load(recipe, [by_id[i] for i in tp.items], gbox, env).reindex(time=plan.time_axis)
    out = apply_steps(cube, recipe)
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


class _Forward(logging.Handler):
    """Passes records at or above ``level`` on to the root handlers (what the caller would have seen)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.threshold = level

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= self.threshold:
            logging.getLogger().handle(record)


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[Path]:
    """Log INFO and up of orbitcube's loggers to ``path`` for the duration; the console keeps its level."""
    path.parent.mkdir(parents=True, exist_ok=True)
    from orbitcube.catalog.storage import RedactingFilter

    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # no secret in run.log
    saved = []
    for name in ("orbitcube",):
        lg = logging.getLogger(name)
        saved.append((lg, lg.level, lg.propagate))
        forward = _Forward(lg.getEffectiveLevel()) if lg.propagate else None
        lg.addHandler(handler)
        if forward:
            lg.addHandler(forward)
        lg.setLevel(min(logging.INFO, lg.getEffectiveLevel()))
        lg.propagate = False
        saved[-1] += (forward,)
    try:
        yield path
    finally:
        for lg, level, propagate, forward in saved:
            lg.removeHandler(handler)
            if forward:
                lg.removeHandler(forward)
            lg.setLevel(level)
            lg.propagate = propagate
        handler.close()


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
    from orbitcube.pipeline.safety import check_removable, recipe_path
    from orbitcube.pipeline.sink import create_store, remove_store, store_lock, store_state
    from orbitcube.pipeline.verify import recheck_tiles

    t_start = time.perf_counter()
    recipe_file = recipe_file or recipe_path(recipe)
    recipe = load_recipe(recipe)
    if not dry_run:
        from orbitcube.pipeline.preflight import check_output_path

        check_output_path(recipe.output.path)  # before searching: a path that cannot be a store fails at once
        check_output_path(report_dir(recipe.output.path, recipe), "output.report_dir")
    plan = plan_run(recipe)
    store = plan.store
    total = len(plan.tile_plans)
    if dry_run:
        return RunResult(store, None, None, 0, 0, total, plan)
    from orbitcube.pipeline.limits import require_confirmation

    require_confirmation(plan.bytes_written, total, recipe.name, allow_large or recipe.output.allow_large)
    from orbitcube.catalog.storage import redact

    so = plan.storage_options
    rdir = report_dir(store, recipe)
    # what a rewrite must never delete (orbitcube.pipeline.safety); checked before the lock and report files are created
    protect = (recipe_file, recipe.catalog.source, rdir)
    if not resume:
        check_removable(store, so, protect=protect, only_if_exists=True)
    with store_lock(store, so) as lock, _log_to(rdir / "run.log") as log_file:
        log.info("run %r: %d items, %d tiles -> %s", recipe.name, len(plan.items), total, redact(store))
        fingerprint = _fingerprint(plan)
        done = store_state(store, fingerprint, so) if resume else None
        if done:  # re-verify the chunk checksums of completed tiles; damaged ones are rewritten
            done = recheck_tiles(store, done, so)
        if done is None:
            remove_store(store, so, protect=protect)
            create_store(
                plan.template,
                store,
                tile_shape=tuple(recipe.grid.tile_shape),
                provenance=provenance(plan),
                fingerprint=fingerprint,
                compression=recipe.output.compression,
                level=recipe.output.level,
                time_chunk=recipe.output.time_chunk,
                storage_options=so,
            )
            done = set()
        todo = [tp.index for tp in plan.tile_plans if tp.index not in done]
        log.info("%d tile(s) already complete, %d to write", len(done), len(todo))
        timings, dashboard = _execute(plan, todo, scheduler or recipe.cluster.scheduler, progress, rdir, lock)
        seconds = time.perf_counter() - t_start
        log.info("run finished in %.1f s", seconds)
        result = RunResult(
            store, None, log_file, len(todo), len(done), total, plan, dashboard, seconds, timings
        )
        from orbitcube.pipeline.report import run_report

        result.report = run_report(result, rdir)
    return result


def _fingerprint(plan: RunPlan) -> str:
    import hashlib
    import json

    doc = {"recipe": plan.recipe.fingerprint(), "items": sorted(it.id for it in plan.items)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


#: attempts per tile when it fails with a transient storage error (connection reset/refused, timeout, HTTP 5xx):
#: the runner's layer of orbitcube.catalog.defaults.RETRY_POLICY (a tile is re-run at most once; other errors never)
TILE_ATTEMPTS = RETRY_POLICY.tile_attempts


def _execute(
    plan: RunPlan, todo: list[Tile], scheduler: str | None, progress: bool, rdir: Path, lock=None
) -> tuple[list[dict[str, Any]], str | None]:
    from distributed import performance_report, wait

    from orbitcube.catalog.storage import is_transient, redact
    from orbitcube.pipeline.cluster import start_cluster
    from orbitcube.pipeline.sink import mark_tile_done

    c = plan.recipe.cluster
    timings: list[dict[str, Any]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(plan.tile_plans),
            initial=len(plan.tile_plans) - len(todo),
            desc="tiles",
            unit="tile",
            file=sys.stderr,
            dynamic_ncols=True,
        )
    with start_cluster(
        c.n_workers,
        c.threads_per_worker,
        c.memory_limit,
        scheduler=scheduler,
        gateway=c.gateway.model_dump(exclude_none=True),
    ) as client:
        dashboard = client.dashboard_link
        log.info("Dask dashboard: %s", dashboard)
        rdir.mkdir(parents=True, exist_ok=True)
        env = plan.read_env  # computed once: credentials expanded from ${ENV} here, on the client
        attempts: dict[Tile, int] = {}
        with performance_report(filename=str(rdir / "dask-performance.html")):
            queue = list(todo)
            running: dict[Any, tuple[Tile, float]] = {}
            try:
                while queue or running:
                    while queue and len(running) < c.max_tiles_in_flight:
                        tile = queue.pop(0)
                        t0 = time.perf_counter()
                        fut = client.compute(tile_graph(plan, tile, env))
                        running[fut] = (tile, t0)
                    finished, _ = wait(list(running), return_when="FIRST_COMPLETED")
                    for fut in finished:
                        tile, t0 = running.pop(fut)
                        try:
                            fut.result()  # re-raises the tile's error
                        except Exception as exc:
                            attempts[tile] = attempts.get(tile, 1) + 1
                            if is_transient(exc) and attempts[tile] <= TILE_ATTEMPTS:
                                log.warning(
                                    "tile %d-%d failed (%s), attempt %d of %d",
                                    *tile,
                                    redact(exc)[:300],
                                    attempts[tile],
                                    TILE_ATTEMPTS,
                                )
                                # the scheduler forgets the erred tasks first: a new compute of the same keys
                                # would otherwise return the erred result it still holds, without reading
                                client.cancel([fut])
                                queue.insert(0, tile)
                                continue
                            raise _tile_error(exc, plan, tile) from exc
                        if lock is not None:
                            lock.check()  # never record a tile after losing the store's lease
                        mark_tile_done(plan.store, tile, plan.storage_options)
                        tp = plan.tile_plans[tile[0] * plan.tiles.shape[1] + tile[1]]
                        secs = time.perf_counter() - t0
                        timings.append(
                            {
                                "tile": f"{tile[0]}-{tile[1]}",
                                "items": len(tp.items),
                                "seconds": round(secs, 2),
                            }
                        )
                        log.info("tile %d-%d written (%d items, %.2f s)", *tile, len(tp.items), secs)
                        if bar is not None:
                            bar.update(1)
            finally:
                for fut in running:
                    fut.cancel()
                if bar is not None:
                    bar.close()
    return timings, dashboard


def _tile_error(exc: BaseException, plan: RunPlan, tile: Tile) -> Exception:
    """The error a failed tile raises: an OrbitcubeError as it is (secrets redacted from its message), anything
    else (storage SDK errors from the workers' writes) as a SinkError naming the store and the cause."""
    from orbitcube.catalog.errors import OrbitcubeError
    from orbitcube.catalog.storage import redact, storage_error
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
