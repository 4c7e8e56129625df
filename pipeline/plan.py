"""The plan of a batch run: what ``orbitcube run RECIPE`` will do, resolved once from the recipe without reading a
pixel, and printed by ``orbitcube run --dry-run``.

recipe -> storage resolved (:class:`~orbitcube.catalog.access.Storage`) -> catalog search
(:func:`orbitcube.catalog.query.search`, CQL2 filter) -> items screened -> output grid and tiles -> items per
tile (:func:`~orbitcube.pipeline.footprints.scenes_per_tile`) -> output template (lazy load + analytics steps)
-> bytes to read and write. The result, :class:`RunPlan`, is a frozen, picklable value: the runner
(:mod:`orbitcube.pipeline.execute`) executes it tile by tile, and tests inspect it without a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox, GeoboxTiles

from orbitcube.catalog.access import Storage
from orbitcube.pipeline.errors import LoadError, RecipeError
from orbitcube.pipeline.planitems import ItemList, ItemRows
from orbitcube.pipeline.recipe import Recipe, load_recipe

__all__ = [
    "SUMMARY_TILES",
    "RunPlan",
    "Tile",
    "TilePlan",
    "catalog_policy",
    "load_items",
    "plan_run",
    "search_items",
]

#: a tile's (row, column) index in the output grid's tiling
Tile = tuple[int, int]
#: tiles listed one per line by :meth:`RunPlan.summary` (the rest are counted)
SUMMARY_TILES = 12


@dataclass(frozen=True)
class TilePlan:
    """One output tile: its (tile_y, tile_x) index, pixel shape (y, x) and the ids of the items touching it."""

    index: Tile
    shape: tuple[int, int]
    items: tuple[str, ...]


@dataclass(frozen=True, eq=False)  # compared by identity: it holds a lazy Dataset
class RunPlan:
    """What a run will do: the recipe, the output grid (``geobox``, any CRS, y decreasing) and its ``tiles``, the
    items of each tile, the ids of all items (``item_ids``, acquisition search order) and where their pystac
    Items come from (``source``: in memory, or rows of a local catalog's index decoded per tile), the output
    template (lazy Dataset of the output variables), the time axis (UTC), the estimated bytes read
    (uncompressed, on the output grid) and written, and the run's storage access."""

    recipe: Recipe
    geobox: GeoBox
    tiles: GeoboxTiles
    tile_plans: tuple[TilePlan, ...]
    item_ids: tuple[str, ...]
    source: ItemList | ItemRows
    skipped_items: tuple[tuple[str, str], ...]
    template: xr.Dataset
    time_axis: np.ndarray
    bytes_read: int
    bytes_written: int
    storage: Storage

    @property
    def skipped(self) -> dict[str, str]:
        """Item id -> why it is not in the cube."""
        return dict(self.skipped_items)

    @property
    def store(self) -> Path | str:
        """The output store: a local Path, or the ``az://`` / ``s3://`` URL."""
        from orbitcube.catalog.storage import is_remote

        p = self.recipe.output.path
        return p.rstrip("/") if is_remote(p) else Path(p)

    @property
    def storage_options(self) -> dict[str, Any]:
        """Options of the output store (``${ENV}`` expanded, credentials as Secret strings)."""
        return self.storage.options(self.recipe.output.path)

    @cached_property
    def items(self) -> tuple[pystac.Item, ...]:
        """Every item of the plan as a pystac Item (decoded from the index on first use when the plan holds index
        rows: for a continent, prefer :meth:`tile_items`)."""
        return tuple(self.source.materialise(self.item_ids))

    def tile_items(self, tile: Tile) -> list[pystac.Item]:
        """The pystac Items of tile ``(row, column)``, in the tile's order."""
        return self.source.materialise(self.tile_plan(tile).items)

    @cached_property
    def read_env(self) -> dict[str, Any]:
        """GDAL options every read task runs under (:meth:`Storage.read_env` of the items' asset hrefs). Small and
        picklable: it travels inside the Dask graph, so that remote workers get the credentials."""
        return self.storage.read_env(self.source.hrefs())

    @property
    def output_shape(self) -> dict[str, dict[str, int]]:
        """Per output variable its dims and sizes."""
        return {
            str(k): {str(d): int(n) for d, n in zip(v.dims, v.shape, strict=True)}
            for k, v in self.template.data_vars.items()
        }

    @cached_property
    def items_by_id(self) -> dict[str, pystac.Item]:
        """The plan's items by id (built once)."""
        return {it.id: it for it in self.items}

    def tile_plan(self, tile: Tile) -> TilePlan:
        """The plan of tile ``(row, column)``."""
        return self.tile_plans[tile[0] * self.tiles.shape[1] + tile[1]]

    @cached_property
    def fingerprint(self) -> str:
        """What makes two runs write the same store: the recipe's fingerprint and the item ids (sha256 hex)."""
        import hashlib
        import json

        doc = {"recipe": self.recipe.fingerprint(), "items": sorted(self.item_ids)}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        """Provenance recorded in the store: recipe, items, grid, software versions (no timestamps, no storage
        options or credentials, no cluster settings, no output location: the same recipe run anywhere records
        the same provenance, and a resumed store stays byte-identical)."""
        from orbitcube.pipeline.recipe import NOT_IN_FINGERPRINT
        from orbitcube.pipeline.sink import software_versions

        g = self.geobox
        return {
            "name": self.recipe.name,
            "recipe": self.recipe.model_dump(mode="json", exclude=NOT_IN_FINGERPRINT),
            "items": sorted(self.item_ids),
            "skipped_items": self.skipped,
            "grid": {
                "crs": str(g.crs),
                "transform": list(g.transform)[:6],
                "shape_yx": [g.shape.y, g.shape.x],
                "tile_shape_yx": list(self.recipe.grid.tile_shape),
            },
            "software": software_versions(),
        }

    def estimate(self, workers: int | None = None):
        """The run's cost (:class:`~orbitcube.pipeline.estimate.RunEstimate`: CPU-hours, memory per worker, wall
        time on ``workers`` workers, default ``cluster.n_workers``) from this machine's calibration; RecipeError
        when there is none."""
        from orbitcube.pipeline.estimate import estimate_run

        return estimate_run(self, workers)

    def summary(self, workers: int | None = None) -> str:
        """Human-readable plan: grid, tiles with item counts, output shapes, estimated bytes read and written,
        and the estimated CPU-hours, memory per worker and wall time on ``workers`` workers (default the
        recipe's ``cluster.n_workers``; see :meth:`estimate`)."""
        from orbitcube.pipeline.limits import confirmation_needed

        g, (ny, nx) = self.geobox, self.tiles.shape
        lines = [
            f"recipe {self.recipe.name!r}: {len(self.item_ids)} items"
            + (f" ({len(self.skipped_items)} skipped)" if self.skipped_items else ""),
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
        try:
            lines += self.estimate(workers).lines()
        except RecipeError as exc:  # no calibration on this machine: the plan itself is still printed
            lines.append(f"no cost estimate: {exc}")
        lines += [f"skipped {iid}: {why}" for iid, why in self.skipped_items]
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
    """What the recipe's catalog may reference (:class:`orbitcube.catalog.policy.AccessPolicy`): its own tree
    (folder, or the URL's origin), ``catalog.allow`` and the object stores of ``storage``."""
    from orbitcube.catalog.policy import AccessPolicy

    return AccessPolicy.for_catalog(recipe.catalog.source, recipe.catalog.allow, stores=list(recipe.storage))


def search_items(recipe: Recipe, storage: Storage | None = None) -> list[pystac.Item]:
    """Items matching ``recipe.search`` in ``recipe.catalog``: one call of :func:`orbitcube.catalog.query.search`
    (local catalog, static catalog URL or STAC API; the CQL2 ``filter`` means the same everywhere), with the
    catalog's credentials from ``storage``. Links are followed, and asset hrefs accepted, only where
    :func:`catalog_policy` allows (CatalogError)."""
    from orbitcube.catalog.query import search

    source = recipe.catalog.source
    storage = storage or Storage.resolve(recipe.storage, recipe.cluster.gdal_env)
    found = search(
        source,
        **search_args(recipe),
        allow=[str(e) for e in catalog_policy(recipe).allow],
        storage_options=storage.options(source),
    )
    return list(found)


def search_args(recipe: Recipe) -> dict[str, Any]:
    """The filters of ``recipe.search`` as keyword arguments of :func:`orbitcube.catalog.query.search`."""
    s = recipe.search
    return {
        "bbox": s.aoi if isinstance(s.aoi, tuple) else None,
        "intersects": s.aoi if isinstance(s.aoi, dict) else None,
        "datetime": s.datetime,
        "collections": s.collections,
        "max_cloud_cover": s.max_cloud_cover,
        "filter": s.filter,
    }


def load_items(
    recipe: Recipe, items: Sequence[pystac.Item], geobox: GeoBox, gdal_env: dict[str, Any]
) -> xr.Dataset:
    """The lazy cube of ``items`` on ``geobox`` as the recipe's ``load`` block asks (dims (time, y, x), chunks of
    the recipe's tile shape), reading under ``gdal_env``."""
    from orbitcube.pipeline.load import load_cube

    ty, tx = recipe.grid.tile_shape
    c = recipe.cluster
    return load_cube(
        items,
        recipe.load.bands,
        geobox=geobox,
        mask=recipe.load.mask,
        dilate_m=recipe.load.dilate_m,
        groupby=recipe.load.groupby,
        resampling=recipe.load.resampling,
        scale_offset=recipe.load.scale_offset,
        chunks={"y": ty, "x": tx, "time": c.time_chunk},
        memory_per_worker=None if c.memory_limit == "auto" else c.memory_limit,
        gdal_env=gdal_env,
    )


def _screened(recipe: Recipe, storage: Storage) -> tuple[list[pystac.Item], dict[str, str]]:
    """The items found, less those that cannot be loaded (id -> why)."""
    from orbitcube.pipeline.preflight import screen_items

    found = search_items(recipe, storage)
    items, skipped = screen_items(found, recipe.load.bands, bool(recipe.load.mask))
    _check_found(recipe, len(found), len(items), skipped)
    return items, skipped


def _check_found(recipe: Recipe, found: int, kept: int, skipped: dict[str, str]) -> None:
    """RecipeError when the search found nothing, or nothing loadable."""
    if not found:
        s = recipe.search
        raise RecipeError(
            f"search: no items in {recipe.catalog.source} match the search "
            f"(aoi={s.aoi}, datetime={s.datetime}, collections={s.collections}); widen the dates, AOI or cloud cover"
        )
    if not kept:
        first = next(iter(skipped.items()))
        raise RecipeError(
            f"search: every one of the {found} found items is skipped, e.g. {first[0]}: {first[1]}"
        )


def _tile_plans(
    ids: Sequence[str], footprints: Sequence[Any], geobox: GeoBox, tiles: GeoboxTiles, skipped: dict[str, str]
) -> tuple[np.ndarray, tuple[TilePlan, ...]]:
    """The positions (into ``ids``) of the items on the grid (the others are added to ``skipped``: their
    ``footprints`` in the grid's CRS are None) and each tile's item ids, row-major. Vectorised
    (:func:`~orbitcube.pipeline.footprints.tile_scenes`): a continent of 10^4-10^5 tiles and 10^5 items
    is matched in seconds."""
    from orbitcube.pipeline.footprints import tile_scenes

    on = np.array([fp is not None for fp in footprints], bool)
    for n in np.flatnonzero(~on).tolist():
        skipped[ids[n]] = "outside the output grid"
    inside = np.flatnonzero(on)
    if not inside.size:
        raise RecipeError("search: no item overlaps the output grid; check search.aoi and grid.crs")
    bounds, scene_idx = tile_scenes([footprints[n] for n in inside.tolist()], tiles)
    ny, nx = tiles.shape.yx
    bounds = bounds.tolist()
    names = np.asarray(ids, dtype=object)[inside][scene_idx].tolist()
    (ty, tx), (h, w) = tiles.chunk_shape((0, 0)).yx, geobox.shape.yx
    hs, ws = [min(ty, h - i * ty) for i in range(ny)], [min(tx, w - j * tx) for j in range(nx)]
    plans = tuple(
        TilePlan((i, j), (hs[i], ws[j]), tuple(names[bounds[i * nx + j] : bounds[i * nx + j + 1]]))
        for i in range(ny)
        for j in range(nx)
    )
    return inside, plans


def time_axis(items: Sequence[pystac.Item], groupby: str) -> np.ndarray:
    """The run's time labels (datetime64[ns], UTC) for ``items``: those :func:`orbitcube.pipeline.load.load_cube`
    gives the same items (:func:`~orbitcube.pipeline.load.time_steps`, the one implementation): the sorted
    distinct solar days (``groupby="solar_day"``), or every scene's acquisition time in (UTC time, id) order
    (``"time"``). Index rows: :func:`orbitcube.pipeline.planitems.time_labels` (the same labels on arrays)."""
    from orbitcube.pipeline import timeaxis
    from orbitcube.pipeline.load import time_steps

    ordered = sorted(items, key=lambda it: (timeaxis.acquisition_utc(it), it.id))
    return np.asarray(time_steps(ordered, groupby)[1]["time"])


def output_template(
    recipe: Recipe, tile_items: Sequence[pystac.Item], geobox: GeoBox, tile: GeoBox, times: np.ndarray
) -> xr.Dataset:
    """The run's output template (lazy zeros, chunked by the tile shape in (y, x)): the recipe applied to one
    tile with items (``tile_items`` loaded lazily on the tile's grid ``tile``, reindexed onto the run's time
    axis ``times``: what every tile of the run computes), its variables' dims, dtypes, attributes and
    non-spatial coordinates expanded to the full grid ``geobox`` (coordinates of :func:`odc.geo.xr.xr_coords`).
    RecipeError when the recipe cannot be applied (a band, index input or composite input that does not
    exist). No pixel is read."""
    import dask.array as dsa
    from odc.geo.xr import xr_coords

    from orbitcube.pipeline.steps import apply_steps

    try:
        cube = load_items(recipe, list(tile_items), tile, {})
        if not np.array_equal(cube["time"].values, times):
            cube = cube.reindex(time=times)
        small = apply_steps(cube, recipe)
    except (LoadError, KeyError) as exc:
        raise RecipeError(f"the recipe cannot be applied to the found items: {exc}") from exc
    ty, tx = recipe.grid.tile_shape
    full = {"y": geobox.shape.y, "x": geobox.shape.x}
    coords = xr_coords(geobox, crs_coord_name="spatial_ref")
    data = {}
    for name, var in small.data_vars.items():
        shape = tuple(full.get(d, n) for d, n in zip(var.dims, var.shape, strict=True))
        chunks = tuple({"y": ty, "x": tx}.get(d, n) for d, n in zip(var.dims, shape, strict=True))
        data[name] = (var.dims, dsa.zeros(shape, dtype=var.dtype, chunks=chunks), var.attrs)
    other = {k: v for k, v in small.coords.items() if k not in ("y", "x", "spatial_ref")}
    return xr.Dataset(data, coords={**other, **{k: v for k, v in coords.items() if k in small.coords}})


def plan_run(recipe: Recipe | str | Path | dict) -> RunPlan:
    """Resolve ``recipe`` (a Recipe, a YAML path or text, or a dict) into its :class:`RunPlan`: storage, search,
    grid, tiles and their items, output template and I/O estimate, without reading any pixel (RecipeError or
    CatalogError naming the problem). The recipe is checked on one small tile (:func:`output_template`), so
    planning a continent costs the search and the footprints, not a graph of every tile. A local catalog
    with the grid's CRS, resolution and AOI given is planned from its index columns
    (:mod:`orbitcube.pipeline.planitems`: pystac Items only for the template's tile); other sources and
    derived grids from pystac Items."""
    from orbitcube.pipeline.planitems import find_rows

    recipe = load_recipe(recipe)
    storage = Storage.resolve(recipe.storage, recipe.cluster.gdal_env)
    found = find_rows(recipe, storage, recipe.load.bands, bool(recipe.load.mask))
    if found is None:
        items, skipped = _screened(recipe, storage)
        return _plan_items(recipe, storage, items, skipped)
    _check_found(recipe, len(found.rows) + len(found.skipped), len(found.rows), found.skipped)
    g, aoi = recipe.grid, recipe.search.aoi
    if g.crs is None or g.resolution is None or aoi is None or isinstance(aoi, str):  # a grid from the items
        return _plan_items(recipe, storage, found.catalog.materialise(found.rows), found.skipped)
    from orbitcube.pipeline.planitems import plan_rows

    return plan_rows(recipe, storage, found)


def _plan_items(
    recipe: Recipe, storage: Storage, items: list[pystac.Item], skipped: dict[str, str]
) -> RunPlan:
    """:func:`plan_run` from screened pystac ``items``."""
    from orbitcube.pipeline.footprints import items_on_grid
    from orbitcube.pipeline.grid import output_grid

    bands = recipe.load.bands
    geobox = output_grid(
        items, crs=recipe.grid.crs, resolution=recipe.grid.resolution, aoi=recipe.search.aoi, bands=bands
    )
    tiles = _tiles(recipe, geobox)
    ids = [it.id for it in items]
    pos, plans = _tile_plans(
        ids, items_on_grid([it.geometry for it in items], geobox), geobox, tiles, skipped
    )
    inside = [items[n] for n in pos.tolist()]
    times = time_axis(inside, recipe.load.groupby)
    source = ItemList(tuple(inside))
    return finish_plan(
        recipe, storage, geobox, tiles, plans, source, [it.id for it in inside], skipped, times
    )


def _tiles(recipe: Recipe, geobox: GeoBox) -> GeoboxTiles:
    from orbitcube.pipeline.grid import tile_grid
    from orbitcube.pipeline.limits import check_grid_size

    check_grid_size(geobox.shape.yx, tuple(recipe.grid.tile_shape), abs(geobox.resolution.x))
    return tile_grid(geobox, tuple(recipe.grid.tile_shape))


def finish_plan(
    recipe: Recipe,
    storage: Storage,
    geobox: GeoBox,
    tiles: GeoboxTiles,
    plans: tuple[TilePlan, ...],
    source: ItemList | ItemRows,
    ids: Sequence[str],
    skipped: dict[str, str],
    times: np.ndarray,
) -> RunPlan:
    """The :class:`RunPlan` of tiles and items already matched: output template from the first tile with items,
    bytes read and written."""
    tp = next(tp for tp in plans if tp.items)
    template = output_template(recipe, source.materialise(tp.items), geobox, tiles[tp.index], times)
    first = source.materialise([ids[0]])[0]
    per_pixel = sum(_band_bytes(first, b) for b in recipe.load.bands) + (2 if recipe.load.mask else 0)
    read = sum(len(t.items) * t.shape[0] * t.shape[1] for t in plans) * per_pixel
    written = sum(int(v.size) * v.dtype.itemsize for v in template.data_vars.values())
    return RunPlan(
        recipe=recipe,
        geobox=geobox,
        tiles=tiles,
        tile_plans=plans,
        item_ids=tuple(ids),
        source=source,
        skipped_items=tuple(skipped.items()),
        template=template,
        time_axis=times,
        bytes_read=int(read),
        bytes_written=int(written),
        storage=storage,
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
