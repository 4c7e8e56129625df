"""Items -> a lazy, masked, mosaicked, analysis-ready cube on a common grid.

Client side (here): resolve bands per collection, strip items to small :class:`orbitcube.pipeline.reader.SceneSpec`
records, decide the time axis (solar days or scenes), split the grid into tiles aligned with the chunks and find
the scenes that intersect each tile. Worker side (:func:`orbitcube.pipeline.reader.read_tile`): one task per tile reads,
masks, scales and mosaics all bands of all its scenes. Masks are applied per scene *before* the mosaic, so a
cloudy pixel of one tile never hides a clear pixel of the overlapping tile of the same pass.

Graph keys are named after what they hold: ``load-tile-<token>`` (one per tile) and ``<band>-<token>`` (the
band's chunks), so the Dask dashboard reads ``load-tile`` and ``red`` rather than anonymous names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox, GeoboxTiles
from odc.geo.xr import xr_coords
from shapely.geometry.base import BaseGeometry

from orbitcube.pipeline import timeaxis
from orbitcube.pipeline.bands import BandRef, Coarsening, resampling_for, resolve_band
from orbitcube.pipeline.errors import LoadError
from orbitcube.pipeline.footprints import footprints_from_shapes, shapes_and_centroids, tile_scenes
from orbitcube.pipeline.grid import output_grid
from orbitcube.pipeline.layouts import BandResolver, ResolvedCheck
from orbitcube.pipeline.masks import DEFAULT_MASK
from orbitcube.pipeline.quality import quality_asset_key
from orbitcube.pipeline.reader import AssetSpec, ReadSpec, SceneSpec
from orbitcube.pipeline.readtasks import read_tasks, tile_graph

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "time_steps",
    "GroupBy",
    "OnError",
    "Resampling",
    "Scenes",
    "check_items",
    "check_load_args",
    "fill_proj_from_headers",
    "gdal_href",
    "load_cube",
    "local_path",
    "no_item_on",
    "quality_band",
    "read_tasks",
    "requested_keys",
    "solar_day",
]

log = logging.getLogger(__name__)


class Scenes(NamedTuple):
    """What a load resolved, whichever form its items came in: the scenes in acquisition order (ids, read
    records, time step of each, number of steps, time coordinates, footprints in the grid's CRS), the ids
    skipped and the scale/offset applied (``attrs["scale_offset"]``)."""

    ids: Sequence[str]
    scenes: Sequence[SceneSpec]
    step_of: np.ndarray
    n_steps: int
    coords: dict
    footprints: list
    skipped: list[str]
    applied: dict


#: how scenes become time steps: one per solar day (the scenes of one pass mosaicked) or one per scene
GroupBy = Literal["solar_day", "time"]
#: what a scene whose assets cannot be opened does to a load
OnError = Literal["fail", "skip"]
#: resampling methods onto the output grid (class and bit-flag layers are never averaged, see bands.resampling_for)
Resampling = Literal["nearest", "bilinear", "cubic", "average", "mode"]


def quality_band(item: pystac.Item) -> BandRef | None:
    """The scene's quality layer (SCL, QA_PIXEL, Fmask, or an asset with classification metadata: see
    :func:`orbitcube.pipeline.quality.quality_asset_key`), or None when it has none."""
    key = quality_asset_key(item)
    return resolve_band(item, key) if key is not None else None


def solar_day(item: pystac.Item) -> np.datetime64:
    """Local solar date of the acquisition (UTC time + footprint centre longitude / 15 h, antimeridian-safe; the
    UTC date itself when the item gives no time of day), as datetime64[ns] at midnight. See
    :mod:`orbitcube.pipeline.timeaxis`."""
    return timeaxis.solar_day(item)


def _solar_days(items: Sequence[pystac.Item], lons: np.ndarray) -> list[np.datetime64]:
    """:func:`solar_day` of each item, given the centres of their footprints' longitude spans (NaN: computed from
    the item), as :func:`orbitcube.pipeline.timeaxis.solar_day` does from the item alone."""
    import datetime as dt

    out = []
    for it, lon in zip(items, lons.tolist(), strict=True):
        if lon != lon:
            out.append(solar_day(it))
            continue
        t = timeaxis.acquisition_utc(it)
        if not timeaxis.time_unknown(it):
            t = t + dt.timedelta(hours=lon / 15.0)
        out.append(np.datetime64(t.date(), "D").astype("datetime64[ns]"))
    return out


def local_path(href: str) -> str | None:
    """The local file an href names (a plain path or a ``file://`` URL, percent-decoded), None for remote URLs."""
    if href.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(href).path)
    return None if "://" in href else href


def requested_keys(
    item: pystac.Item, bands: Sequence[str] | None, mask: bool, resolver: BandResolver | None = None
) -> list[str]:
    """Asset keys a load of ``bands`` (and the quality layer when ``mask``) reads from ``item``; every asset
    when ``bands`` is None. ``resolver``: the load's :class:`~orbitcube.pipeline.layouts.BandResolver` (of
    ``bands``), which resolves each item layout once."""
    if bands is None:
        return list(item.assets)
    if resolver is None:
        resolver = BandResolver(bands)
    r = resolver(item)
    q = r.quality if mask else None
    if isinstance(q, LoadError):
        raise q
    return [ref.key for ref in r.refs if ref is not None] + ([q.key] if q is not None else [])


class _Hrefs(dict):
    """Absolute hrefs of assets, worked out once per asset during a load (pystac's ``get_absolute_href`` parses
    the URL each time): ``hrefs(asset)``. Holds the assets, so that an id is never reused while cached."""

    def __call__(self, asset: pystac.Asset) -> str:
        got = self.get(id(asset))
        if got is None:
            got = self[id(asset)] = (asset, asset.get_absolute_href() or asset.href)
        return got[1]


def check_items(
    items: list[pystac.Item],
    on_error: str,
    bands: Sequence[str] | None = None,
    mask: bool = False,
    resolver: BandResolver | None = None,
    hrefs: _Hrefs | None = None,
) -> tuple[list[pystac.Item], list[str]]:
    """Drop items whose local assets (plain paths and ``file://`` URLs) are missing (``on_error="skip"``, their
    ids returned second) or raise LoadError naming the item, asset and path (``"fail"``). Only the assets a load
    reads are checked: those of ``bands`` and, with ``mask``, the quality layer (all assets when ``bands`` is
    None), so a missing thumbnail never drops a scene. Remote hrefs are checked when read."""
    keep, skipped = [], []
    exists: dict[str, bool] = {}  # many items of a large load share files (or folders): one stat per path
    hrefs = _Hrefs() if hrefs is None else hrefs
    if resolver is None and bands is not None:
        resolver = BandResolver(bands)
    for it in items:
        missing = []
        for k in dict.fromkeys(requested_keys(it, bands, mask, resolver)):
            href = hrefs(it.assets[k])
            path = local_path(href)
            if path is not None and path not in exists:
                exists[path] = Path(path).exists()
            if path is not None and not exists[path]:
                missing.append((k, href))
        if missing:
            if on_error == "fail":
                k, href = missing[0]
                raise LoadError(
                    f"item {it.id!r} asset {k!r} cannot be opened: {href} does not exist; fix the href or pass "
                    "on_error='skip' to skip such scenes"
                )
            log.warning("skipping item %s: missing asset(s) %s", it.id, [k for k, _ in missing])
            skipped.append(it.id)
        else:
            keep.append(it)
    return keep, skipped


def gdal_href(href: str) -> str:
    """What GDAL opens for an asset href: local paths as they are, URLs through GDAL's virtual file systems."""
    path = local_path(href)
    if path is not None:
        return path
    from orbitcube.catalog.storage import to_gdal_path

    return to_gdal_path(href)


def _has_proj(item: pystac.Item, asset: pystac.Asset) -> bool:
    def has(d: dict, *keys: str) -> bool:
        return any(d.get(k) for k in keys)

    crs = has(asset.extra_fields, "proj:code", "proj:epsg", "proj:wkt2") or has(
        item.properties, "proj:code", "proj:epsg", "proj:wkt2"
    )
    grid = has(asset.extra_fields, "proj:transform") or has(item.properties, "proj:transform")
    return crs and grid


def fill_proj_from_headers(
    items: Sequence[pystac.Item], bands: Sequence[str], resolver: BandResolver | None = None
) -> list[pystac.Item]:
    """Items whose requested assets lack projection metadata (``proj:code``/``proj:epsg`` and ``proj:transform``)
    get it from the file header (a copy of the item is changed; a warning names each such item)."""
    import rasterio

    resolver = BandResolver(bands) if resolver is None else resolver
    out = []
    for it in items:
        missing = []
        for ref in resolver(it).refs:
            if ref is not None and not _has_proj(it, it.assets[ref.key]):  # no band: reported per collection
                missing.append(ref.key)
        if not missing:
            out.append(it)
            continue
        it = it.clone()
        for key in missing:
            asset = it.assets[key]
            href = asset.get_absolute_href() or asset.href
            try:
                with rasterio.open(gdal_href(href)) as src:
                    if src.crs is None:
                        raise LoadError(
                            f"item {it.id!r} asset {key!r} ({href}) has no CRS in its STAC metadata nor in the "
                            "file; add proj:code to the item or georeference the file"
                        )
                    asset.extra_fields.update(
                        {
                            "proj:code": src.crs.to_string(),
                            "proj:shape": [src.height, src.width],
                            "proj:transform": list(src.transform)[:6],
                        }
                    )
            except rasterio.errors.RasterioIOError as exc:
                raise LoadError(f"item {it.id!r} asset {key!r}: cannot open {href}: {exc}") from exc
        log.warning(
            "item %s has no projection metadata for %s; read CRS, shape and transform from the file header(s)",
            it.id,
            missing,
        )
        out.append(it)
    return out


def _asset_spec(item: pystac.Item, ref: BandRef, resampling: str, hrefs: _Hrefs) -> AssetSpec:
    href = gdal_href(hrefs(item.assets[ref.key]))
    return AssetSpec(href, ref.nodata, ref.scale, ref.offset, ref.index, resampling, ref.is_quality, ref.key)


def load_cube(
    items: Sequence[pystac.Item] | pa.Table,
    bands: Sequence[str],
    *,
    geobox: GeoBox | None = None,
    crs: str | int | None = None,
    resolution: float | None = None,
    aoi=None,
    mask: Sequence[str] | None = DEFAULT_MASK,
    dilate_m: float = 0.0,
    groupby: GroupBy = "solar_day",
    resampling: Resampling | dict[str, Resampling] | None = None,
    chunks: dict | None = None,
    on_error: OnError = "fail",
    gdal_env: dict[str, str] | None = None,
    scale_offset: dict[str, tuple[float, float]] | None = None,
    memory_per_worker: int | str | None = None,
) -> xr.Dataset:
    """Load ``bands`` of ``items`` into a lazy cube on one grid.

    ``items``: pystac Items, or the same rows as a stac-geoparquet ``pyarrow.Table`` (what
    :meth:`orbitcube.catalog.index.ItemIndex.take` returns; :func:`orbitcube.pipeline.scenes.index_rows` for a
    catalog's rows, local hrefs made absolute; other hrefs are taken as they are). A table is read column by
    column with one pystac Item per layout (collection and asset metadata), which keeps a load of 100,000 items
    small and fast; the cube is the same as from the rows' Items. A table without ``geobox``, or whose assets
    lack projection metadata (``proj:code``/``proj:epsg`` and ``proj:transform``), is decoded to Items first.

    Returns an ``xarray.Dataset`` with one float32 variable per requested band (named as requested: asset key
    like ``B04`` or common name like ``red``), dims ``(time, y, x)`` with ``y`` decreasing, surface reflectance
    after scale/offset, NaN where nodata or masked; coordinate ``spatial_ref`` carries the CRS (CF grid mapping).
    The grid is ``geobox``, or one built by :func:`orbitcube.pipeline.grid.output_grid` from ``crs``, ``resolution`` (CRS
    units) and ``aoi``. ``mask`` names quality classes to remove (see :mod:`orbitcube.pipeline.masks`), grown by
    ``dilate_m`` metres. ``groupby="solar_day"`` mosaics the scenes of one pass (first valid observation);
    ``"time"`` keeps every scene. ``resampling``: one method for every reflectance band or ``{band: method}``;
    default bilinear, average when an output pixel spans at least 1.5 native pixels (compared in the source CRS,
    so degrees and metres never mix; COG overviews are read when they suffice), chosen per scene and band; class
    and bit-flag layers (quality bands, land cover) nearest (class layers: mode when coarser), never averaged.
    Scale, offset and nodata are decided per item and band: the asset's ``raster:bands``, else the product table
    (:mod:`orbitcube.catalog.products`: Sentinel-2 L2A offset by processing baseline, Landsat C2 L2); ``scale_offset``
    (``{band: (scale, offset)}``, by requested name or asset key) overrides both for every item. What was
    applied is recorded in ``attrs["scale_offset"]``: per band, a list of ``{"collection", "scale", "offset",
    "source"}`` groups (``source`` is ``"item"``, ``"product-table"``, ``"user"`` or ``"none"``), with
    ``"items"`` listing the item ids when a group is not a whole collection. ``chunks``
    (``{"y": px, "x": px, "time": steps}``, default 512 x 512 pixels and ``"auto"`` time steps) sets the read
    tasks, one per chunk: a task holds bands x time-chunk x y x x float32 values plus the reader's working set,
    so a time chunk bounds its memory whatever the time span. ``"auto"`` (or no ``time`` key) derives the time
    chunk from ``memory_per_worker`` (bytes, or a string such as ``"2GiB"``; default
    :data:`orbitcube.pipeline.cluster.DEFAULT_WORKER_MEMORY`, 2 GiB) with :func:`auto_time_chunk`; ``-1`` or
    None keeps the whole time axis in one chunk. ``on_error="skip"`` skips scenes whose assets are missing (listed in
    ``attrs["skipped_items"]``) or fail to read (logged). ``gdal_env``: extra GDAL config options for the reads.
    """
    if _is_table(items):
        from orbitcube.pipeline.scenes import table_scenes, table_to_items

        if geobox is not None:
            got = table_scenes(items, bands, geobox, mask, resampling, groupby, on_error, scale_offset)
            if got is not None:
                return _cube(
                    got, geobox, bands, mask, dilate_m, groupby, chunks, on_error, gdal_env, memory_per_worker
                )
        items = table_to_items(items)  # no grid given, or assets without projection metadata
    resolver, hrefs = BandResolver(bands, mask, scale_offset), _Hrefs()
    items, skipped = _usable(items, bands, bool(mask), on_error, groupby, resolver, hrefs)
    items = fill_proj_from_headers(items, bands, resolver)
    if geobox is None:
        geobox = output_grid(items, crs=crs, resolution=resolution, aoi=aoi, bands=list(bands))
    on_grid = _on_grid(items, geobox)
    items = [it for it, _, _ in on_grid]
    centres = np.array([c for _, _, c in on_grid]).reshape(-1, 3)
    coarse = Coarsening(items, geobox, centres[:, :2])
    scenes, refs = _scenes(items, bands, mask, resampling, geobox, resolver, coarse, hrefs)
    members, coords = time_steps(items, groupby, centres[:, 2])
    step_of = np.zeros(len(scenes), np.int32)
    for t, ms in enumerate(members):
        step_of[ms] = t
    ids = [it.id for it in items]
    got = Scenes(
        ids,
        scenes,
        step_of,
        len(members),
        coords,
        [fp for _, fp, _ in on_grid],
        skipped,
        _applied(items, bands, refs),
    )
    return _cube(got, geobox, bands, mask, dilate_m, groupby, chunks, on_error, gdal_env, memory_per_worker)


def _is_table(items) -> bool:
    import sys

    pa = sys.modules.get("pyarrow")
    return pa is not None and isinstance(items, pa.Table)


def _cube(
    got: Scenes, geobox, bands, mask, dilate_m, groupby, chunks, on_error, gdal_env, memory_per_worker
) -> xr.Dataset:
    """The lazy cube of the scenes of a load on ``geobox`` (load_cube's arguments)."""
    chunks = _check_chunks(chunks)
    spec = ReadSpec(
        bands=tuple(bands),
        mask=tuple(mask or ()),
        dilate_m=float(dilate_m),
        pixel_size=abs(float(geobox.resolution.x)),
        on_error=on_error,
        gdal_env=tuple(sorted((gdal_env or {}).items())),
    )
    tiles = GeoboxTiles(geobox, (chunks["y"], chunks["x"]))
    pairs = tile_scenes(got.footprints, tiles)
    step = chunks["time"]
    if step == "auto":
        step = auto_time_chunk(len(bands), (chunks["y"], chunks["x"]), got.n_steps, memory_per_worker)
    data = tile_graph(got.scenes, got.step_of, got.n_steps, tiles, pairs, step, spec)
    ds = xr.Dataset(
        {
            b: (("time", "y", "x"), arr, {"units": "1", "grid_mapping": "spatial_ref"})
            for b, arr in data.items()
        },
        coords={**got.coords, **xr_coords(geobox, crs_coord_name="spatial_ref")},
    )
    ds.attrs.update(
        items=list(got.ids),
        skipped_items=list(got.skipped),
        masked_classes=list(mask or []),
        groupby=groupby,
        scale_offset=got.applied,
    )
    return ds


def check_load_args(n_items: int, bands: Sequence[str], on_error: str, groupby: str) -> None:
    """LoadError for an unknown ``on_error`` or ``groupby``, no items or no bands."""
    if on_error not in ("fail", "skip"):
        raise LoadError(f"on_error={on_error!r}; use 'fail' or 'skip'")
    if groupby not in ("solar_day", "time"):
        raise LoadError(
            f"groupby={groupby!r}; use 'solar_day' (mosaic each pass) or 'time' (one step per scene)"
        )
    if not n_items:
        raise LoadError("no items to load; widen the search (dates, AOI, cloud cover) or check the catalog")
    if not bands:
        raise LoadError("no bands requested; name asset keys (B04) or common names (red, nir)")


def _usable(
    items: Sequence[pystac.Item],
    bands: Sequence[str],
    mask: bool,
    on_error: str,
    groupby: str,
    resolver: BandResolver | None = None,
    hrefs: _Hrefs | None = None,
) -> tuple[list[pystac.Item], list[str]]:
    """The items a load can use and the ids skipped (``on_error="skip"``); LoadError for bad arguments, no
    items or bands, items without times or footprints, or every item skipped."""
    items = list(items)
    check_load_args(len(items), bands, on_error, groupby)
    from orbitcube.pipeline.preflight import require_times_and_footprints

    require_times_and_footprints(items)
    items, skipped = check_items(items, on_error, bands, mask, resolver, hrefs)
    if not items:
        raise LoadError(f"every item was skipped ({len(skipped)}): none of their assets could be opened")
    return items, skipped


def _on_grid(items: list[pystac.Item], geobox: GeoBox) -> list[tuple[pystac.Item, BaseGeometry, np.ndarray]]:
    """The items that touch ``geobox`` (antimeridian- and pole-safe), with their footprints in the grid's CRS and
    (lon, lat, centre of the longitude span) of their footprints, in acquisition order (UTC; datetime null:
    start_datetime; ties by id). LoadError naming the grid's lon/lat bounds when none does."""
    shapes, centres = shapes_and_centroids([it.geometry for it in items])
    footprints = footprints_from_shapes(shapes, geobox)
    on_grid = [(it, fp, c) for it, fp, c in zip(items, footprints, centres, strict=True) if fp is not None]
    if not on_grid:
        raise no_item_on(geobox)
    on_grid.sort(key=lambda p: (timeaxis.acquisition_utc(p[0]), p[0].id))
    return on_grid


def no_item_on(geobox: GeoBox) -> LoadError:
    """The LoadError of a load whose grid meets no item (naming the grid's lon/lat bounds)."""
    extent = geobox.extent.to_crs(4326)
    return LoadError(
        f"the AOI/grid (lon/lat bounds {tuple(round(v, 5) for v in extent.boundingbox)}) intersects no item; "
        "check the AOI and its CRS or search the catalog with this AOI"
    )


def time_steps(
    items: Sequence[pystac.Item], groupby: str, centre_lons: np.ndarray | None = None
) -> tuple[list[list[int]], dict]:
    """The items of each time step and the time coordinates: one step per solar day (``"solar_day"``, days from
    the footprints' longitude-span centres, computed when not given) or per scene (``"time"``, with an
    ``item_id`` coordinate). ``items`` in acquisition order (UTC time, id), as load_cube and the plan sort them."""
    if groupby == "solar_day":
        if centre_lons is None:
            centre_lons = shapes_and_centroids([it.geometry for it in items])[1][:, 2]
        days = _solar_days(items, centre_lons)
        time = np.array(sorted(set(days)), dtype="datetime64[ns]")
        step_of = {d: i for i, d in enumerate(time)}
        members: list[list[int]] = [[] for _ in time]
        for n, d in enumerate(days):
            members[step_of[np.datetime64(d, "ns")]].append(n)
        return members, {"time": time}
    members = [[n] for n in range(len(items))]
    coords = {
        "time": np.array([timeaxis.scene_time(it) for it in items]),
        "item_id": ("time", [it.id for it in items]),
    }
    return members, coords


def _scenes(
    items: list[pystac.Item],
    bands: Sequence[str],
    mask: Sequence[str] | None,
    resampling,
    geobox: GeoBox,
    resolver: BandResolver,
    coarse: Coarsening | None = None,
    hrefs: _Hrefs | None = None,
) -> tuple[list[SceneSpec], list[tuple]]:
    """One SceneSpec per item, every band resolved for that item (scale, offset, nodata, band index, resampling
    onto ``geobox``; ``resolver`` works each layout out once); also the BandRefs per item (None where the item
    lacks a band of a mixed load)."""
    hrefs = _Hrefs() if hrefs is None else hrefs
    check = ResolvedCheck(bands, mask)
    out, all_refs = [], []
    for it in items:
        r = resolver(it)
        qref = check(it.id, it.collection_id, r)
        assets = tuple(
            None
            if ref is None
            else _asset_spec(it, ref, resampling_for(resampling, ref, it, geobox, coarse), hrefs)
            for ref in r.refs
        )
        quality = _asset_spec(it, qref, "nearest", hrefs) if qref is not None else None
        out.append(SceneSpec(it.id, assets, quality, check.decoder(r)))
        all_refs.append(r.refs)
    check.done()
    return out, all_refs


def _applied(items: Sequence[pystac.Item], bands: Sequence[str], refs: list[list]) -> dict:
    """Per band, which scale/offset was applied to which items and where it came from (JSON-ready)."""
    from collections import Counter

    per_coll = Counter(it.collection_id for it in items)
    out: dict = {}
    for n, band in enumerate(bands):
        groups: dict[tuple, list[str]] = {}
        for it, r in zip(items, refs, strict=True):
            if r[n] is not None:
                rec = (1.0, 0.0, "none") if r[n].is_quality else (r[n].scale, r[n].offset, r[n].source)
                groups.setdefault((it.collection_id, *rec), []).append(it.id)
        out[band] = [
            {
                "collection": c,
                "scale": sc,
                "offset": of,
                "source": src,
                **({} if len(ids) == per_coll[c] else {"items": ids}),
            }
            for (c, sc, of, src), ids in groups.items()
        ]
    return out


#: share of a worker's memory one read task's output may fill (bands x time steps x tile, float32): 32 MiB of
#: the default 2 GiB. Small on purpose: each date is read once whatever the chunking (open datasets and pixel
#: maps are cached per worker), so short time chunks cost little, while the output of a read task is held by
#: everything downstream of it (band slices, indices, the period-aligned chunks of composites, Zarr encoding)
#: and by the next tasks queued on the worker
READ_TASK_SHARE = 1 / 64
#: float32 tile planes the reader holds beside its output while it reads one scene (source values, validity,
#: cloud mask, a float32 copy, a bilinear gather of four neighbours), on top of the output budget
READER_WORKING_PLANES = 8


def auto_time_chunk(
    n_bands: int, tile_shape: tuple[int, int], n_steps: int, memory_per_worker: int | str | None = None
) -> int:
    """Time steps per read task so that its output (``n_bands`` float32 planes of ``tile_shape`` (y, x) pixels
    per step) stays within :data:`READ_TASK_SHARE` of ``memory_per_worker`` (bytes or a Dask size string such
    as ``"2GiB"``; None: :data:`orbitcube.pipeline.cluster.DEFAULT_WORKER_MEMORY`); the reader's working set
    while it reads one scene (:data:`READER_WORKING_PLANES` planes) comes on top. At least 1; balanced over
    ``n_steps`` (24 steps that allow 16 per task give two tasks of 12, not 16 + 8)."""
    from dask.utils import parse_bytes

    from orbitcube.pipeline.cluster import DEFAULT_WORKER_MEMORY

    mem = DEFAULT_WORKER_MEMORY if memory_per_worker is None else memory_per_worker
    try:
        mem = parse_bytes(mem) if isinstance(mem, str) else int(mem)
    except (ValueError, TypeError):
        raise LoadError(
            f"memory_per_worker={memory_per_worker!r}: give a number of bytes or a size such as '2GiB'"
        ) from None
    if mem <= 0:
        raise LoadError(f"memory_per_worker={memory_per_worker!r} must be positive, e.g. '2GiB'")
    plane = 4 * int(tile_shape[0]) * int(tile_shape[1])
    fit = max(1, int(mem * READ_TASK_SHARE // (max(n_bands, 1) * plane)))
    n_tasks = -(-max(n_steps, 1) // fit)
    return -(-max(n_steps, 1) // n_tasks)


def _check_chunks(chunks: Mapping[str, int | str | None] | None) -> dict[str, int | str | None]:
    """``{"time": n | "auto" | None, "y": px, "x": px}`` from the user's ``chunks`` (LoadError on unknown dims
    or sizes that are not positive integers; ``time`` None or -1: the whole time axis in one chunk, ``"auto"``
    or absent: from the memory budget, see :func:`auto_time_chunk`)."""
    out: dict[str, int | str | None] = {"time": "auto", "y": 512, "x": 512}
    for dim, n in (chunks or {}).items():
        if dim not in out:
            raise LoadError(
                f"chunks={dict(chunks or {})}: unknown dimension {dim!r}; chunk 'time', 'y' and 'x'"
            )
        if dim == "time" and (n is None or n == -1 or n == "auto"):
            out["time"] = None if n == -1 else n
            continue
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            unit = "time steps (or 'auto')" if dim == "time" else "pixels"
            raise LoadError(f"chunks[{dim!r}]={n!r} must be a positive whole number of {unit}")
        out[dim] = int(n)
    return out
