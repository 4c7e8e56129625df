"""Zonal statistics: per polygon and per date summaries of a cube as a tidy pandas table.

Pixel coverage rule (the same for every statistic), evaluated exactly with shapely in the cube's CRS after the
polygon is reprojected there: a pixel belongs to a polygon when the polygon contains the pixel's centre (a centre
exactly on the outline does not count); with ``all_touched=True`` when the pixel's square shares any point with the
polygon (interior, outline or a corner). Pixels are not weighted by covered area. Polygons may overlap; a pixel
then counts for each polygon. Masked (NaN) pixels are left out of every statistic; ``count`` is the number of
clear pixels used and ``pixels`` the number of pixels the polygon covers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import dask
import numpy as np
import pandas as pd
import shapely
import xarray as xr
from odc.geo import CRS
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry

from orbitcube.pipeline.analytics._common import Data, nanreduce, quiet
from orbitcube.pipeline.errors import AnalyticsError

log = logging.getLogger(__name__)

#: the statistics :func:`zonal_stats` computes (all of them by default, as columns in this order)
ZonalStat = Literal["mean", "median", "std", "min", "max", "count"]
STATS: tuple[ZonalStat, ...] = get_args(ZonalStat)
Zones = str | Path | dict | Geometry | shapely.Geometry | Sequence[Any] | Any


def zonal_stats(
    data: Data,
    zones: Zones,
    *,
    id_column: str | None = None,
    crs: Any = None,
    stats: Sequence[ZonalStat] = STATS,
    all_touched: bool = False,
) -> pd.DataFrame:
    """Summaries of ``data`` inside each polygon of ``zones``, one row per polygon, date and variable.

    ``data`` is the cube (Dataset, every variable summarised) or one DataArray, dims (time, y, x) or (y, x), with
    a CRS (``spatial_ref``) that odc-geo reads. ``zones`` is a GeoJSON file (.geojson/.json; RFC 7946, so WGS84
    unless a legacy ``crs`` member says otherwise), a GeoParquet file (.parquet; CRS from its ``geo`` metadata), a
    GeoJSON dict (Feature, FeatureCollection or geometry), a GeoDataFrame, an odc-geo Geometry, a shapely geometry,
    or a list of these or of ``(zone_id, geometry)`` pairs; shapely geometries without a CRS take ``crs`` (default EPSG:4326). Polygons in any CRS are
    reprojected onto the cube grid. Zone ids come from ``id_column`` (a property / column), else a feature ``id``,
    else the position 0, 1, ...

    Coverage rule: a pixel belongs to a polygon when its centre is strictly inside (``all_touched=False``, default)
    or when its square shares any point with the polygon (``all_touched=True``); no partial-area weights; overlapping polygons each count
    a shared pixel; NaN (masked) pixels are skipped, ``count`` is the number of clear pixels and ``pixels`` the
    number of pixels covered. Statistics: mean, median, std (population, ddof=0), min, max, count.

    Returns a tidy DataFrame with columns ``zone``, ``time`` (when ``data`` has time), ``variable``, ``pixels``
    and the requested statistics (float64; NaN when no clear pixel). The reductions are computed (one pass over
    each polygon's bounding window of the cube); the result is small.
    """
    bad = [s for s in stats if s not in STATS]
    if bad or not stats:
        raise AnalyticsError(f"zonal_stats: unknown statistics {bad}; choose from {list(STATS)}")
    ds = data.to_dataset(name=str(data.name or "value")) if isinstance(data, xr.DataArray) else data
    gbox = _geobox(ds)
    ids, geoms = read_zones(zones, id_column=id_column, crs=crs)
    rows: list[pd.DataFrame] = []
    lazy = []
    meta = []
    for zid, geom in zip(ids, geoms, strict=True):
        mask, window = _zone_mask(geom, gbox, all_touched)
        if mask is None:
            log.info("zonal_stats: zone %r does not overlap the cube; its statistics are NaN", zid)
            meta.append((zid, 0, None))
            continue
        sub = ds.isel(y=window[0], x=window[1]).where(xr.DataArray(mask, dims=("y", "x")))
        lazy.append(_reduce(sub, stats))
        meta.append((zid, int(mask.sum()), len(lazy) - 1))
    (computed,) = dask.compute(lazy) if lazy else ([],)
    for zid, npix, k in meta:
        rows.append(_table(zid, npix, computed[k] if k is not None else None, ds, stats))
    out = pd.concat(rows, ignore_index=True)
    return out


def read_zones(
    zones: Zones, *, id_column: str | None = None, crs: Any = None
) -> tuple[list[Any], list[Geometry]]:
    """Zone ids and odc-geo Geometries (with CRS) from any of the inputs :func:`zonal_stats` accepts."""
    default_crs = CRS(crs) if crs is not None else CRS("EPSG:4326")
    if isinstance(zones, str | Path):
        path = Path(zones)
        if not path.exists():
            raise AnalyticsError(f"zonal_stats: zones file {path} does not exist")
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            return _read_geoparquet(path, id_column)
        if path.suffix.lower() in (".geojson", ".json"):
            try:
                doc = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise AnalyticsError(f"zonal_stats: {path} is not valid JSON ({exc})") from None
            return read_zones(doc, id_column=id_column, crs=crs)
        raise AnalyticsError(
            f"zonal_stats: cannot read zones from {path}; give a .geojson/.json or .parquet (GeoParquet) file"
        )
    if isinstance(zones, dict):
        return _from_geojson(zones, id_column, default_crs)
    if isinstance(zones, Geometry):
        return [0], [zones]
    if isinstance(zones, shapely.Geometry):
        return [0], [Geometry(zones, crs=default_crs)]
    if hasattr(zones, "geometry") and hasattr(zones, "crs") and hasattr(zones, "columns"):  # GeoDataFrame
        gcrs = CRS(zones.crs.to_wkt()) if zones.crs is not None else default_crs
        ids = _ids(zones[id_column].tolist() if id_column else None, list(zones.index), id_column)
        return ids, [Geometry(g, crs=gcrs) for g in zones.geometry]
    if isinstance(zones, Iterable):
        ids, geoms = [], []
        for i, z in enumerate(zones):
            if (
                isinstance(z, tuple)
                and len(z) == 2
                and not isinstance(z[0], Geometry | shapely.Geometry | dict)
            ):
                _, zg = read_zones(z[1], id_column=id_column, crs=crs)
                ids.extend([z[0]] * len(zg))
                geoms.extend(zg)
                continue
            zi, zg = read_zones(z, id_column=id_column, crs=crs)
            ids.extend(zi if len(zg) > 1 or zi != [0] else [i])
            geoms.extend(zg)
        return ids, geoms
    raise AnalyticsError(
        f"zonal_stats: cannot use zones of type {type(zones).__name__}; give a GeoJSON/GeoParquet path, a GeoJSON "
        "dict, a GeoDataFrame or shapely/odc-geo geometries"
    )


def _ids(values: list[Any] | None, fallback: list[Any], id_column: str | None) -> list[Any]:
    if values is None:
        return fallback
    if any(v is None for v in values):
        raise AnalyticsError(f"zonal_stats: some zones have no {id_column!r}; every zone needs an id")
    return values


def _from_geojson(doc: dict, id_column: str | None, crs: CRS) -> tuple[list[Any], list[Geometry]]:
    legacy = (
        doc.get("crs", {}).get("properties", {}).get("name") if isinstance(doc.get("crs"), dict) else None
    )
    crs = CRS(legacy) if legacy else crs
    kind = doc.get("type")
    if kind == "FeatureCollection":
        feats = doc.get("features", [])
    elif kind == "Feature":
        feats = [doc]
    elif kind in ("Polygon", "MultiPolygon", "GeometryCollection"):
        feats = [{"type": "Feature", "geometry": doc, "properties": {}}]
    else:
        raise AnalyticsError(
            f"zonal_stats: GeoJSON of type {kind!r} has no polygons; give a Feature(Collection) or Polygon"
        )
    ids, geoms = [], []
    for i, f in enumerate(feats):
        props = f.get("properties") or {}
        if id_column is not None and id_column not in props:
            raise AnalyticsError(
                f"zonal_stats: feature {i} has no property {id_column!r}; its properties are {sorted(props)}"
            )
        ids.append(props[id_column] if id_column else f.get("id", i))
        geoms.append(Geometry(f["geometry"], crs=crs))
    return ids, geoms


def _read_geoparquet(path: Path, id_column: str | None) -> tuple[list[Any], list[Geometry]]:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(b"geo", b"{}"))
    col = meta.get("primary_column", "geometry")
    if col not in table.column_names:
        raise AnalyticsError(f"zonal_stats: {path} has no geometry column {col!r}; is it GeoParquet?")
    crs_meta = meta.get("columns", {}).get(col, {}).get("crs", "OGC:CRS84")
    gcrs = CRS(crs_meta if crs_meta is not None else "OGC:CRS84")
    geoms = [Geometry(g, crs=gcrs) for g in shapely.from_wkb(table.column(col).to_pylist())]
    if id_column is not None and id_column not in table.column_names:
        raise AnalyticsError(
            f"zonal_stats: {path} has no column {id_column!r}; columns: {table.column_names}"
        )
    ids = table.column(id_column).to_pylist() if id_column else list(range(len(geoms)))
    return _ids(ids, ids, id_column), geoms


def _geobox(ds: xr.Dataset) -> GeoBox:
    try:
        gbox = ds.odc.geobox
    except Exception:  # odc-geo raises several kinds when it finds no grid
        gbox = None
    if not isinstance(gbox, GeoBox) or gbox.crs is None:
        raise AnalyticsError(
            "zonal_stats: the cube has no CRS/grid odc-geo can read; give it a spatial_ref coordinate, e.g. "
            "ds.odc.assign_crs('EPSG:32632')"
        )
    return gbox


def _zone_mask(
    geom: Geometry, gbox: GeoBox, all_touched: bool
) -> tuple[np.ndarray | None, tuple[slice, slice]]:
    """Coverage of ``geom`` on ``gbox`` inside its bounding window: (mask (y, x) or None, (row slice, col slice)).

    Exact geometry with shapely: pixel centre strictly inside the polygon, or (``all_touched``) pixel square
    sharing any point with it.
    """
    if geom.geom_type not in ("Polygon", "MultiPolygon", "GeometryCollection"):
        raise AnalyticsError(f"zonal_stats: zones must be polygons; got a {geom.geom_type}")
    g = geom.to_crs(gbox.crs).geom
    if g.is_empty:
        return None, (slice(0, 0), slice(0, 0))
    shapely.prepare(g)
    inv = ~gbox.transform
    x0, y0, x1, y1 = g.bounds
    corners = [inv * (x, y) for x in (x0, x1) for y in (y0, y1)]
    cols = [c for c, _ in corners]
    rows = [r for _, r in corners]
    ny, nx = gbox.shape.yx
    r0, r1 = max(int(np.floor(min(rows))) - 1, 0), min(int(np.ceil(max(rows))) + 1, ny)
    c0, c1 = max(int(np.floor(min(cols))) - 1, 0), min(int(np.ceil(max(cols))) + 1, nx)
    if r0 >= r1 or c0 >= c1:
        return None, (slice(0, 0), slice(0, 0))
    cc, rr = np.meshgrid(np.arange(c0, c1, dtype=np.float64), np.arange(r0, r1, dtype=np.float64))
    aff = gbox.transform
    if all_touched:
        px = [aff.c + aff.a * (cc + i) + aff.b * (rr + j) for i, j in ((0, 0), (1, 0), (1, 1), (0, 1))]
        py = [aff.f + aff.d * (cc + i) + aff.e * (rr + j) for i, j in ((0, 0), (1, 0), (1, 1), (0, 1))]
        ring = np.stack([np.stack(px, -1), np.stack(py, -1)], -1)  # (rows, cols, 4 corners, xy)
        squares = shapely.polygons(ring)
        mask = shapely.intersects(squares, g)
    else:
        xs = aff.c + aff.a * (cc + 0.5) + aff.b * (rr + 0.5)
        ys = aff.f + aff.d * (cc + 0.5) + aff.e * (rr + 0.5)
        mask = shapely.contains_xy(g, xs, ys)
    if not mask.any():
        return None, (slice(0, 0), slice(0, 0))
    return mask, (slice(r0, r1), slice(c0, c1))


_FUNCS = {
    "mean": np.nanmean,
    "median": np.nanmedian,
    "std": np.nanstd,
    "min": np.nanmin,
    "max": np.nanmax,
    "count": "count",
}


def _count(v: np.ndarray, axis: int) -> np.ndarray:
    return np.sum(~np.isnan(v), axis=axis)


def _reduce(sub: xr.Dataset, stats: Sequence[str]) -> dict[str, xr.Dataset]:
    """NaN-skipping statistics over the pixels of ``sub`` (float64), quiet about all-NaN zones."""
    flat = sub.stack(pixel=("y", "x"))
    if flat.chunks:
        flat = flat.chunk({"pixel": -1})

    def one(func):
        def run(v: np.ndarray) -> np.ndarray:
            v = v.astype(np.float64)
            if func is _count:
                return _count(v, axis=-1).astype(np.float64)
            return np.asarray(nanreduce(func, v, axis=-1), dtype=np.float64)

        return lambda da: xr.apply_ufunc(
            quiet(run), da, input_core_dims=[["pixel"]], dask="parallelized", output_dtypes=[np.float64]
        )

    return {s: flat.map(one(_count if s == "count" else _FUNCS[s])) for s in stats}


def _table(zid: Any, npix: int, red: dict[str, xr.Dataset] | None, ds: xr.Dataset, stats: Sequence[str]):
    has_time = "time" in ds.dims
    frames = []
    for v in ds.data_vars:
        cols: dict[str, Any] = {}
        n = ds.sizes["time"] if has_time and "time" in ds[v].dims else 1
        if has_time and "time" in ds[v].dims:
            cols["time"] = ds["time"].values
        for s in stats:
            if red is None:
                cols[s] = np.full(n, 0 if s == "count" else np.nan)
            else:
                cols[s] = np.asarray(red[s][v].values, dtype=np.float64).reshape(n)
        df = pd.DataFrame(cols)
        df.insert(0, "zone", [zid] * n)
        df.insert(1 + int("time" in cols), "variable", str(v))
        df.insert(2 + int("time" in cols), "pixels", npix)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


__all__ = [
    "ZonalStat",
    "STATS",
    "Zones",
    "read_zones",
    "zonal_stats",
]
