"""Item footprints on an output grid, safe at the antimeridian and the poles.

The loader decides which items touch the grid and which tiles each item touches from the items' WGS84
footprints. Reprojecting a lon/lat polygon naively breaks in two places: a footprint that crosses the antimeridian
(as one jumping ring, or split in two) becomes a band round the globe or two far-apart pieces, and a grid that
contains a pole (polar stereographic) has no lon/lat polygon of its own (its boundary winds round the pole).
Here both sides meet in lon/lat, normalised by :func:`orbitcube.catalog.antimeridian.normalize_lonlat`: the grid's
boundary is traced in lon/lat (closed through the pole it contains), the footprint is cut to it, and only that
part -- near the grid, where the projection is well behaved -- is projected into the grid's CRS.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import shapely
from odc.geo.geobox import GeoBox, GeoboxTiles
from pyproj import Transformer
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from orbitcube.catalog.antimeridian import normalize_lonlat

__all__ = ["TILE_PAD_PX", "footprint_on", "grid_lonlat", "items_on_grid", "scenes_per_tile"]

#: points traced along each side of a grid's boundary
_SIDE_POINTS = 128
#: longest segment (degrees) of a lon/lat footprint before it is projected
_SEGMENT_DEG = 0.05


@lru_cache(maxsize=8)
def _to_lonlat(crs_wkt: str) -> Transformer:
    return Transformer.from_crs(crs_wkt, "EPSG:4326", always_xy=True)


@lru_cache(maxsize=8)
def _from_lonlat(crs_wkt: str) -> Transformer:
    return Transformer.from_crs("EPSG:4326", crs_wkt, always_xy=True)


@lru_cache(maxsize=32)
def grid_lonlat(gbox: GeoBox, pad_px: int = 2) -> BaseGeometry:
    """The area of ``gbox`` (grown by ``pad_px`` pixels) in lon/lat degrees as a shapely geometry inside
    [-180, 180] x [-90, 90]: its boundary traced at :data:`_SIDE_POINTS` points a side, split at the
    antimeridian, and closed through a pole when the grid contains one."""
    g = gbox.pad(pad_px)
    ny, nx = g.shape.yx
    t = np.linspace(0.0, 1.0, _SIDE_POINTS, endpoint=False)
    cols = np.r_[t * nx, np.full_like(t, nx), (1 - t) * nx, np.zeros_like(t)]
    rows = np.r_[np.zeros_like(t), t * ny, np.full_like(t, ny), (1 - t) * ny]
    a = g.transform
    xs, ys = a.c + cols * a.a + rows * a.b, a.f + cols * a.d + rows * a.e
    lon, lat = _to_lonlat(g.crs.to_wkt()).transform(xs, ys)
    ok = np.isfinite(lon) & np.isfinite(lat)
    ring = Polygon(np.column_stack([lon[ok], lat[ok]]))
    return normalize_lonlat(ring)


def footprint_on(geometry: dict | None, gbox: GeoBox) -> BaseGeometry | None:
    """The part of an item's WGS84 footprint (GeoJSON) that lies on ``gbox`` (grown by 2 pixels), as a shapely
    geometry in the grid's CRS; None when the item does not touch the grid (or has no geometry)."""
    if not geometry:
        return None
    part = normalize_lonlat(geometry).intersection(grid_lonlat(gbox))
    if part.is_empty or part.area == 0:
        return None
    part = shapely.segmentize(part, _SEGMENT_DEG)
    fwd = _from_lonlat(gbox.crs.to_wkt())
    projected = shapely.transform(part, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))
    projected = shapely.make_valid(projected)
    return None if projected.is_empty else projected


def items_on_grid(geometries: list[dict | None], gbox: GeoBox) -> list[BaseGeometry | None]:
    """:func:`footprint_on` for each of ``geometries`` (aligned; None where an item misses the grid)."""
    return [footprint_on(g, gbox) for g in geometries]


#: pixels a footprint is grown by before it is matched to tiles: resampling kernels (bilinear, cubic, average
#: over a coarser output pixel) reach a little beyond a scene's edge
TILE_PAD_PX = 2


def scenes_per_tile(
    footprints: list[BaseGeometry], tiles: GeoboxTiles, pad_px: float = TILE_PAD_PX
) -> list[tuple[int, ...]]:
    """Which scenes touch which tile: for each tile of ``tiles`` in row-major order (tile (i, j) at
    ``i * tiles.shape.x + j``), the sorted indices into ``footprints`` (shapely geometries in the tiles' CRS, as
    :func:`footprint_on` returns them) that intersect it once grown by ``pad_px`` output pixels. One STRtree
    query for all tiles: the one answer the loader's graph and the batch plan both use."""
    ny, nx = tiles.shape.yx
    hits: list[list[int]] = [[] for _ in range(ny * nx)]
    if not footprints:
        return [()] * (ny * nx)
    pad = pad_px * abs(tiles.base.resolution.x)
    tree = shapely.STRtree(shapely.buffer(np.asarray(footprints, dtype=object), pad))
    tile_polys = [tiles[i, j].extent.geom for i in range(ny) for j in range(nx)]
    tile_idx, scene_idx = tree.query(tile_polys, predicate="intersects")
    for t, s in zip(tile_idx.tolist(), scene_idx.tolist(), strict=True):
        hits[t].append(s)
    return [tuple(sorted(h)) for h in hits]


def footprints_on(geometries: Sequence[dict | None], gbox: GeoBox) -> list[BaseGeometry | None]:
    """:func:`footprint_on` for many items at once (aligned with ``geometries``; None where an item has no
    geometry or misses the grid), with the same result: WGS84 footprints (GeoJSON) cut to ``gbox`` (grown by 2
    pixels) in lon/lat, segmentised and projected into the grid's CRS. Vectorised: shapely array operations and
    one pyproj transform over the coordinates of all footprints (antimeridian normalisation stays per item)."""
    n = len(geometries)
    out: list[BaseGeometry | None] = [None] * n
    present = [i for i, g in enumerate(geometries) if g]
    if not present:
        return out
    lonlat = _lonlat_array([geometries[i] for i in present])
    parts = shapely.intersection(lonlat, grid_lonlat(gbox))
    keep = ~shapely.is_empty(parts) & (shapely.area(parts) > 0)
    if not keep.any():
        return out
    parts = shapely.segmentize(parts[keep], _SEGMENT_DEG)
    xy = shapely.get_coordinates(parts)
    x, y = _from_lonlat(gbox.crs.to_wkt()).transform(xy[:, 0], xy[:, 1])
    projected = shapely.make_valid(shapely.set_coordinates(parts, np.column_stack([x, y])))
    for i, geom in zip(np.asarray(present)[keep].tolist(), projected, strict=True):
        out[i] = None if geom.is_empty else geom
    return out


def _lonlat_array(geometries: Sequence[dict | BaseGeometry]) -> np.ndarray:
    """:func:`normalize_lonlat` of each geometry as a shapely array. A polygon inside [-180, 180] spanning less
    than 180 degrees of longitude can neither cross the antimeridian nor wind round a pole, and comes back
    unchanged: only the others go through ``normalize_lonlat`` one by one."""
    import json

    dicts = [i for i, g in enumerate(geometries) if isinstance(g, dict)]
    arr = np.empty(len(geometries), dtype=object)
    arr[:] = [None if isinstance(g, dict) else g for g in geometries]
    if dicts:
        arr[dicts] = shapely.from_geojson([json.dumps(geometries[i]) for i in dicts])
    x0, _, x1, _ = shapely.bounds(arr).T
    polygonal = np.isin(shapely.get_type_id(arr), (3, 6))  # Polygon, MultiPolygon
    for i in np.flatnonzero(~(polygonal & (x0 >= -180.0) & (x1 <= 180.0) & (x1 - x0 < 180.0))).tolist():
        arr[i] = normalize_lonlat(geometries[i])
    return arr


def tile_boxes(tiles: GeoboxTiles) -> np.ndarray:
    """The extents of all tiles of ``tiles`` (a north-up tiling, any CRS) as a shapely box array in row-major
    order (tile (i, j) at ``i * tiles.shape.x + j``), computed from the grid's affine transform (no per-tile
    GeoBox): the same boxes as ``tiles[i, j].extent``."""
    ny, nx = tiles.shape.yx
    ty, tx = tiles.chunk_shape((0, 0)).yx
    h, w = tiles.base.shape.yx
    a = tiles.base.transform
    rows = np.minimum(np.arange(ny + 1) * ty, h)
    cols = np.minimum(np.arange(nx + 1) * tx, w)
    ys, xs = a.f + rows * a.e, a.c + cols * a.a
    r0, c0 = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    x0, x1 = xs[c0.ravel()], xs[c0.ravel() + 1]
    y0, y1 = ys[r0.ravel()], ys[r0.ravel() + 1]
    return shapely.box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1))


def scenes_per_tile_box(
    footprints: Sequence[BaseGeometry], tiles: GeoboxTiles, pad_px: float = TILE_PAD_PX
) -> list[tuple[int, ...]]:
    """:func:`scenes_per_tile` with the tile extents from :func:`tile_boxes` (fast for 10^4-10^5 tiles): for
    each tile in row-major order the sorted indices into ``footprints`` (in the tiles' CRS) that intersect it
    once grown by ``pad_px`` output pixels."""
    ny, nx = tiles.shape.yx
    if len(footprints) == 0:
        return [()] * (ny * nx)
    pad = pad_px * abs(tiles.base.resolution.x)
    tree = shapely.STRtree(shapely.buffer(np.asarray(footprints, dtype=object), pad))
    tile_idx, scene_idx = tree.query(tile_boxes(tiles), predicate="intersects")
    order = np.lexsort((scene_idx, tile_idx))
    tile_idx, scene_idx = tile_idx[order], scene_idx[order]
    bounds = np.searchsorted(tile_idx, np.arange(ny * nx + 1))
    s = scene_idx.tolist()
    return [tuple(s[bounds[t] : bounds[t + 1]]) for t in range(ny * nx)]
