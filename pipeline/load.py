"""Items -> a lazy, masked, mosaicked, analysis-ready cube on a common grid.

Client side (here): resolve bands per collection, strip items to small :class:`pipeline.reader.SceneSpec`
records, decide the time axis (solar days or scenes), split the grid into tiles aligned with the chunks and find
the scenes that intersect each tile. Worker side (:func:`pipeline.reader.read_tile`): one task per tile reads,
masks, scales and mosaics all bands of all its scenes. Masks are applied per scene *before* the mosaic, so a
cloudy pixel of one tile never hides a clear pixel of the overlapping tile of the same pass.

Graph keys are named after what they hold: ``load-tile-<token>`` (one per tile) and ``<band>-<token>`` (the
band's chunks), so the Dask dashboard reads ``load-tile`` and ``red`` rather than anonymous names.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox, GeoboxTiles
from odc.geo.geom import Geometry
from odc.geo.xr import xr_coords

from pipeline.errors import LoadError
from pipeline.grid import output_grid
from pipeline.masks import DEFAULT_MASK
from pipeline.reader import AssetSpec, ReadSpec, SceneSpec, read_tile

log = logging.getLogger(__name__)

QUALITY_KEYS = ("SCL", "QA_PIXEL", "scl", "qa_pixel")


@dataclass(frozen=True)
class BandRef:
    """How one requested band is found in one collection: asset key, scale, offset, nodata."""

    name: str
    key: str
    scale: float
    offset: float
    nodata: float | None
    is_quality: bool = False


def _asset_band(asset: pystac.Asset) -> dict:
    rb = asset.extra_fields.get("raster:bands") or [{}]
    return rb[0]


def resolve_band(item: pystac.Item, name: str) -> BandRef:
    """Find band ``name`` (asset key or eo common name) in ``item``; raise LoadError listing what exists."""
    asset, key = item.assets.get(name), name
    if asset is None:
        for k, a in item.assets.items():
            if any(b.get("common_name") == name for b in a.extra_fields.get("eo:bands", [])):
                asset, key = a, k
                break
    if asset is None:
        common = sorted(
            {
                b.get("common_name")
                for a in item.assets.values()
                for b in a.extra_fields.get("eo:bands", [])
                if b.get("common_name")
            }
        )
        raise LoadError(
            f"item {item.id!r} has no band {name!r}; its assets are {sorted(item.assets)} and common names {common}"
        )
    rb = _asset_band(asset)
    quality = (
        key in QUALITY_KEYS
        or "classification:classes" in asset.extra_fields
        or "classification:bitfields" in asset.extra_fields
    )
    return BandRef(
        name, key, float(rb.get("scale", 1.0)), float(rb.get("offset", 0.0)), rb.get("nodata"), quality
    )


def quality_band(item: pystac.Item) -> BandRef | None:
    """The scene's quality layer (SCL or QA_PIXEL), or None when it has none."""
    for k, a in item.assets.items():
        if (
            k in QUALITY_KEYS
            or "classification:bitfields" in a.extra_fields
            or "classification:classes" in a.extra_fields
        ):
            return resolve_band(item, k)
    return None


def solar_day(item: pystac.Item) -> np.datetime64:
    """Local solar date of the acquisition (UTC time + longitude / 15 h), as datetime64[ns] at midnight."""
    lon = (item.bbox[0] + item.bbox[2]) / 2 if item.bbox else 0.0
    t = np.datetime64(item.datetime.replace(tzinfo=None), "ns") + np.timedelta64(int(lon / 15 * 3600), "s")
    return t.astype("datetime64[D]").astype("datetime64[ns]")


def check_items(items: list[pystac.Item], on_error: str) -> tuple[list[pystac.Item], list[str]]:
    """Drop items whose local assets are missing (``on_error="skip"``, their ids returned second) or raise
    LoadError naming the item, asset and path (``"fail"``). Remote hrefs are checked when read."""
    keep, skipped = [], []
    for it in items:
        missing = []
        for k, a in it.assets.items():
            href = a.get_absolute_href() or a.href
            if "://" not in href and not Path(href).exists():
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


_check_items = check_items  # the batch runner's historical name


def _gdal_href(href: str) -> str:
    """What GDAL opens for an asset href: local paths as they are, URLs through GDAL's virtual file systems."""
    if "://" not in href or href.startswith("file://"):
        return href.removeprefix("file://")
    try:
        from catalog.storage import to_gdal_path
    except ImportError:  # object storage support not installed: plain HTTP(S) still works through /vsicurl/
        return f"/vsicurl/{href}" if href.startswith(("http://", "https://")) else href
    return to_gdal_path(href)


def _has_proj(item: pystac.Item, asset: pystac.Asset) -> bool:
    def has(d: dict, *keys: str) -> bool:
        return any(d.get(k) for k in keys)

    crs = has(asset.extra_fields, "proj:code", "proj:epsg", "proj:wkt2") or has(
        item.properties, "proj:code", "proj:epsg", "proj:wkt2"
    )
    grid = has(asset.extra_fields, "proj:transform") or has(item.properties, "proj:transform")
    return crs and grid


def fill_proj_from_headers(items: Sequence[pystac.Item], bands: Sequence[str]) -> list[pystac.Item]:
    """Items whose requested assets lack projection metadata (``proj:code``/``proj:epsg`` and ``proj:transform``)
    get it from the file header (a copy of the item is changed; a warning names each such item)."""
    import rasterio

    out = []
    for it in items:
        missing = []
        for b in bands:
            try:
                ref = resolve_band(it, b)
            except LoadError:
                continue  # reported by the caller, per collection
            if not _has_proj(it, it.assets[ref.key]):
                missing.append(ref.key)
        if not missing:
            out.append(it)
            continue
        it = it.clone()
        for key in missing:
            asset = it.assets[key]
            href = asset.get_absolute_href() or asset.href
            try:
                with rasterio.open(_gdal_href(href)) as src:
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


def _native_res(item: pystac.Item, key: str) -> float | None:
    a = item.assets[key].extra_fields
    tr = a.get("proj:transform") or item.properties.get("proj:transform")
    if tr:
        return abs(float(tr[0]))
    gsd = a.get("gsd") or item.properties.get("gsd")
    return float(gsd) if gsd else None


def _resampling_for(resampling, ref: BandRef, item: pystac.Item, geobox: GeoBox) -> str:
    """Nearest for quality bands; the caller's choice (one name, or per band); else average when the output is
    at least 1.5x coarser than the band's native pixels, bilinear otherwise."""
    if ref.is_quality:
        return "nearest"
    if isinstance(resampling, str):
        return resampling
    if isinstance(resampling, dict):
        for k in (ref.name, ref.key):
            if k in resampling:
                return resampling[k]
    native = _native_res(item, ref.key)
    if native and abs(geobox.resolution.x) >= 1.5 * native:
        return "average"
    return "bilinear"


def _scene(item: pystac.Item, refs: list[BandRef], qref: BandRef | None, mask) -> SceneSpec:
    def spec(r: BandRef) -> AssetSpec:
        a = item.assets[r.key]
        return AssetSpec(_gdal_href(a.get_absolute_href() or a.href), r.nodata, r.scale, r.offset)

    kind = None
    if qref is not None:
        kind = "scl" if qref.key.upper() == "SCL" else "qa_pixel"
    return SceneSpec(
        item.id,
        tuple(spec(r) for r in refs),
        spec(qref) if (qref is not None and mask) else None,
        kind,
    )


def load_cube(
    items: Sequence[pystac.Item],
    bands: Sequence[str],
    *,
    geobox: GeoBox | None = None,
    crs: str | int | None = None,
    resolution: float | None = None,
    aoi=None,
    mask: Sequence[str] | None = DEFAULT_MASK,
    dilate_m: float = 0.0,
    groupby: str = "solar_day",
    resampling: str | dict | None = None,
    chunks: dict | None = None,
    on_error: str = "fail",
    gdal_env: dict[str, str] | None = None,
) -> xr.Dataset:
    """Load ``bands`` of ``items`` into a lazy cube on one grid.

    Returns an ``xarray.Dataset`` with one float32 variable per requested band (named as requested: asset key
    like ``B04`` or common name like ``red``), dims ``(time, y, x)`` with ``y`` decreasing, surface reflectance
    after scale/offset, NaN where nodata or masked; coordinate ``spatial_ref`` carries the CRS (CF grid mapping).
    The grid is ``geobox``, or one built by :func:`pipeline.grid.output_grid` from ``crs``, ``resolution`` (CRS
    units) and ``aoi``. ``mask`` names quality classes to remove (see :mod:`pipeline.masks`), grown by
    ``dilate_m`` metres. ``groupby="solar_day"`` mosaics the scenes of one pass (first valid observation);
    ``"time"`` keeps every scene. ``resampling``: one method for every reflectance band or ``{band: method}``;
    default bilinear, average when the output is coarser (COG overviews are read when they suffice); quality
    bands always nearest. ``chunks`` (pixels, default 512 x 512) sets the tiles, one read task each, with the
    whole time axis per chunk. ``on_error="skip"`` skips scenes whose assets are missing (listed in
    ``attrs["skipped_items"]``) or fail to read (logged). ``gdal_env``: extra GDAL config options for the reads.
    """
    if on_error not in ("fail", "skip"):
        raise LoadError(f"on_error={on_error!r}; use 'fail' or 'skip'")
    if groupby not in ("solar_day", "time"):
        raise LoadError(
            f"groupby={groupby!r}; use 'solar_day' (mosaic each pass) or 'time' (one step per scene)"
        )
    items = list(items)
    if not items:
        raise LoadError("no items to load; widen the search (dates, AOI, cloud cover) or check the catalog")
    if not bands:
        raise LoadError("no bands requested; name asset keys (B04) or common names (red, nir)")
    from pipeline.preflight import require_times_and_footprints

    require_times_and_footprints(items)
    items, skipped = check_items(items, on_error)
    if not items:
        raise LoadError(f"every item was skipped ({len(skipped)}): none of their assets could be opened")
    items = fill_proj_from_headers(items, bands)
    if geobox is None:
        geobox = output_grid(items, crs=crs, resolution=resolution, aoi=aoi, bands=list(bands))
    extent = geobox.extent.to_crs(4326)
    items = [it for it in items if Geometry(it.geometry, crs=4326).intersects(extent)]
    if not items:
        raise LoadError(
            f"the AOI/grid (lon/lat bounds {tuple(round(v, 5) for v in extent.boundingbox)}) intersects no item; "
            "check the AOI and its CRS or search the catalog with this AOI"
        )
    items.sort(key=lambda i: (i.datetime, i.id))
    chunks = {"y": 512, "x": 512, **(chunks or {})}
    scenes, resamplings = _scenes(items, bands, mask, resampling, geobox)
    if groupby == "solar_day":
        days = [solar_day(it) for it in items]
        time = np.array(sorted(set(days)), dtype="datetime64[ns]")
        step_of = {d: i for i, d in enumerate(time)}
        members: list[list[int]] = [[] for _ in time]
        for n, d in enumerate(days):
            members[step_of[np.datetime64(d, "ns")]].append(n)
        coords: dict = {"time": time}
    else:
        members = [[n] for n in range(len(items))]
        coords = {
            "time": np.array([np.datetime64(it.datetime.replace(tzinfo=None), "ns") for it in items]),
            "item_id": ("time", [it.id for it in items]),
        }
    first_ref = next(iter(resamplings.values()))
    spec = ReadSpec(
        bands=tuple(bands),
        resampling=tuple(first_ref[0]),
        is_quality=tuple(first_ref[1]),
        mask=tuple(mask or ()),
        dilate_m=float(dilate_m),
        pixel_size=abs(float(geobox.resolution.x)),
        on_error=on_error,
        gdal_env=tuple(sorted((gdal_env or {}).items())),
    )
    data = _tile_graph(items, scenes, members, geobox, (chunks["y"], chunks["x"]), spec)
    ds = xr.Dataset(
        {
            b: (("time", "y", "x"), arr, {"units": "1", "grid_mapping": "spatial_ref"})
            for b, arr in data.items()
        },
        coords={**coords, **xr_coords(geobox, crs_coord_name="spatial_ref")},
    )
    ds.attrs.update(
        items=[it.id for it in items],
        skipped_items=skipped,
        masked_classes=list(mask or []),
        groupby=groupby,
    )
    return ds


def _scenes(items, bands, mask, resampling, geobox) -> tuple[list[SceneSpec], dict]:
    """One SceneSpec per item, resolving bands once per collection; also (resampling, is_quality) per band."""
    per_coll: dict[str | None, tuple[list[BandRef], BandRef | None]] = {}
    resamplings: dict[str | None, tuple[list[str], list[bool]]] = {}
    out = []
    for it in items:
        coll = it.collection_id
        if coll not in per_coll:
            refs = [resolve_band(it, b) for b in bands]
            qref = quality_band(it) if mask else None
            if mask and qref is None:
                raise LoadError(
                    f"collection {coll!r} has no quality band (SCL or QA_PIXEL) to apply mask={list(mask)}; "
                    "pass mask=None"
                )
            per_coll[coll] = (refs, qref)
            resamplings[coll] = (
                [_resampling_for(resampling, r, it, geobox) for r in refs],
                [r.is_quality for r in refs],
            )
        refs, qref = per_coll[coll]
        out.append(_scene(it, refs, qref, mask))
    kinds = {tuple(v[0]) for v in resamplings.values()}
    if len(kinds) > 1:
        log.info("collections resample differently: %s; using the first collection's choice", resamplings)
    return out, resamplings


def _tile_graph(items, scenes, members, geobox: GeoBox, tile_shape, spec: ReadSpec) -> dict:
    """Dask arrays (time, y, x) per band, backed by one ``read_tile`` task per tile of ``geobox``."""
    import operator

    import dask.array as da
    import shapely
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    tiles = GeoboxTiles(geobox, tile_shape)
    ny, nx = tiles.shape.yx
    pad = 2 * abs(geobox.resolution.x)  # resampling kernels reach a little beyond a footprint
    footprints = [Geometry(it.geometry, crs=4326).to_crs(geobox.crs).geom.buffer(pad) for it in items]
    tree = shapely.STRtree(footprints)
    tile_polys = [tiles[i, j].extent.geom for i in range(ny) for j in range(nx)]
    tile_idx, scene_idx = tree.query(tile_polys, predicate="intersects")
    hits: list[set[int]] = [set() for _ in tile_polys]
    for t, s in zip(tile_idx.tolist(), scene_idx.tolist(), strict=True):
        hits[t].add(s)
    token = tokenize(geobox, tile_shape, spec, scenes, members)
    load_name = f"load-tile-{token}"
    layer = {}
    for i in range(ny):
        for j in range(nx):
            h = hits[i * nx + j]
            steps = tuple(tuple(scenes[n] for n in step if n in h) for step in members)
            layer[(load_name, i, j)] = (read_tile, tiles[i, j], steps, spec)
    chunks = (
        (len(members),),
        tuple(tiles[i, 0].shape.y for i in range(ny)),
        tuple(tiles[0, j].shape.x for j in range(nx)),
    )
    layers: dict = {load_name: layer}
    deps: dict = {load_name: set()}
    out = {}
    for b, band in enumerate(spec.bands):
        name = f"{band}-{token}"
        layers[name] = {
            (name, 0, i, j): (operator.getitem, (load_name, i, j), b) for i in range(ny) for j in range(nx)
        }
        deps[name] = {load_name}
        graph = HighLevelGraph(
            {load_name: layers[load_name], name: layers[name]}, {load_name: set(), name: {load_name}}
        )
        out[band] = da.Array(graph, name, chunks, dtype=np.float32)
    return out
