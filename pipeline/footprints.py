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

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import shapely
from odc.geo.geobox import GeoBox, GeoboxTiles
from pyproj import Transformer
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

from orbitcube.catalog.antimeridian import normalize_lonlat

__all__ = [
    "THREADS",
    "TILE_PAD_PX",
    "footprint_on",
    "footprints_from_shapes",
    "grid_lonlat",
    "items_on_grid",
    "lonlat_shapes",
    "scenes_per_tile",
    "shapes_and_centroids",
    "tile_scene_pairs",
    "tile_scenes",
]

#: points traced along each side of a grid's boundary
_SIDE_POINTS = 128
#: shortest and longest segment (degrees) a lon/lat footprint is cut into before it is projected
_SEGMENT_DEG = 0.05
_MAX_SEGMENT_DEG = 0.5
#: the projected footprint's edges stay within this many output pixels of the true projected curve
_CURVE_TOL_PX = 0.25


@lru_cache(maxsize=8)
def _to_lonlat(crs_wkt: str) -> Transformer:
    return Transformer.from_crs(crs_wkt, "EPSG:4326", always_xy=True)


#: idle lon/lat -> CRS transformers by target WKT (a pyproj transformer serves one thread at a time, and
#: building one for a WKT takes ~50 ms: each thread of each call used to build its own)
_IDLE: dict[str, list[Transformer]] = {}
_IDLE_LOCK = threading.Lock()


@contextmanager
def _from_lonlat(crs_wkt: str) -> Iterator[Transformer]:
    """A lon/lat -> ``crs_wkt`` transformer for this thread's use, returned to the idle pool after."""
    with _IDLE_LOCK:
        idle = _IDLE.get(crs_wkt)
        fwd = idle.pop() if idle else None
    if fwd is None:
        fwd = Transformer.from_crs("EPSG:4326", crs_wkt, always_xy=True)
    try:
        yield fwd
    finally:
        with _IDLE_LOCK:
            if crs_wkt not in _IDLE and len(_IDLE) >= 8:
                _IDLE.pop(next(iter(_IDLE)))  # the oldest CRS's transformers
            _IDLE.setdefault(crs_wkt, []).append(fwd)


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
    """The item's WGS84 footprint (GeoJSON) on ``gbox``, as a shapely geometry in the grid's CRS (see
    :func:`footprints_from_shapes`); None when the item does not touch the grid (or has no geometry)."""
    if not geometry:
        return None
    return footprints_from_shapes([normalize_lonlat(geometry)], gbox)[0]


def items_on_grid(geometries: Sequence[dict | None], gbox: GeoBox) -> list[BaseGeometry | None]:
    """:func:`footprint_on` for each of ``geometries`` (aligned; None where an item misses the grid), the same
    geometries computed on arrays: one shapely call per step for all items and one pyproj call for all their
    vertices (about 50x faster than one :func:`footprint_on` per item on 100,000 items)."""
    return footprints_from_shapes(lonlat_shapes(geometries), gbox)


def footprints_from_shapes(shapes: Sequence[BaseGeometry | None], gbox: GeoBox) -> list[BaseGeometry | None]:
    """:func:`items_on_grid` from footprints already normalised by :func:`lonlat_shapes`: None for a footprint
    whose interior does not meet the grid's lon/lat area (:func:`grid_lonlat`, the grid grown by 2 pixels), else
    the footprint projected into the grid's CRS (edges cut to the curvature the grid's pixel needs,
    :func:`_segment_lengths`), made valid. A footprint is cut to the area first where projecting it whole
    could fail: when it reaches more than :data:`_WHOLE_MARGIN_DEG` beyond the area's lon/lat box, when the
    area contains a pole or crosses the antimeridian, or when its projection is not finite. Elsewhere it is
    projected whole (cutting 10^5 footprints to the area was most of the time of a large load); the tiles it
    is matched to lie on the grid either way."""
    out: list[BaseGeometry | None] = [None] * len(shapes)
    idx = np.array([i for i, g in enumerate(shapes) if g is not None], dtype=np.int64)
    if idx.size == 0:
        return out
    given = np.array([shapes[i] for i in idx], dtype=object)
    area = grid_lonlat(gbox)
    wkt, tol = gbox.crs.to_wkt(), _curve_tol(gbox)
    chunks = [given[lo : lo + _BAND_BATCH] for lo in range(0, len(given), _BAND_BATCH)]
    own = len(chunks) > 1
    projected = np.concatenate(_threaded(lambda c: _on_grid(c, area, wkt, tol, own), chunks))
    for i, g in zip(idx.tolist(), projected.tolist(), strict=True):
        out[i] = None if g is None or g.is_empty else g
    return out


#: a footprint that crosses the edge of the grid's lon/lat area is projected whole when it stays within this
#: many degrees of the area's lon/lat box (and the area holds no pole and does not cross the antimeridian)
_WHOLE_MARGIN_DEG = 3.0


def _on_grid(given: np.ndarray, area: BaseGeometry, crs_wkt: str, tol: float, own: bool) -> np.ndarray:
    """:func:`footprints_from_shapes` of one chunk (None: off the grid). ``own``: a copy of ``area`` of its own
    (a prepared GEOS geometry is not shared between threads)."""
    if own:
        area = shapely.from_wkb(shapely.to_wkb(area))
    shapely.prepare(area)
    part = given.copy()
    cut = ~shapely.contains_properly(area, given)  # nearly every scene of a large grid: nothing to cut
    whole = np.zeros(len(given), bool)
    box = _whole_box(area)
    if box is not None and cut.any():
        b = shapely.bounds(given)
        near = cut & (b[:, 0] >= box[0]) & (b[:, 1] >= box[1]) & (b[:, 2] <= box[2]) & (b[:, 3] <= box[3])
        k = np.flatnonzero(near)
        meets = shapely.intersects(area, given[k]) & ~shapely.touches(area, given[k])  # interiors meet
        whole[k[meets]] = True
        part[k[~meets]] = None
        cut &= ~near
    part[cut] = _cut(given[cut], area)
    out = _project(part, crs_wkt, tol)
    if whole.any():  # projected whole: cut and project again where the projection is not finite
        k = np.flatnonzero(whole & (out != None))  # noqa: E711 (element-wise)
        bad = k[~np.isfinite(shapely.bounds(out[k])).all(axis=1)]
        if bad.size:
            out[bad] = _project(_cut(given[bad], area), crs_wkt, tol)
    return out


def _whole_box(area: BaseGeometry) -> tuple[float, float, float, float] | None:
    """The lon/lat box within which footprints crossing ``area``'s edge are projected whole (None: the area
    contains a pole or is split at the antimeridian: always cut)."""
    if shapely.get_type_id(area) != 3:
        return None
    x0, y0, x1, y1 = area.bounds
    if y0 <= -89.0 or y1 >= 89.0:
        return None
    m = _WHOLE_MARGIN_DEG
    return x0 - m, max(y0 - m, -90.0), x1 + m, min(y1 + m, 90.0)


def _cut(given: np.ndarray, area: BaseGeometry) -> np.ndarray:
    """The lon/lat footprints ``given`` cut to ``area`` (None where nothing with an area is left)."""
    part = shapely.intersection(given, area)
    keep = ~shapely.is_empty(part)
    keep[keep] = shapely.area(part[keep]) != 0
    part[~keep] = None
    return part


def _project(part: np.ndarray, crs_wkt: str, tol: float) -> np.ndarray:
    """Lon/lat polygons (None: skipped) segmentized (:func:`_segment_lengths` for ``tol``) and projected into
    ``crs_wkt`` (a transformer from the idle pool, :func:`_from_lonlat`), made valid."""
    out = np.full(len(part), None, dtype=object)
    some = np.flatnonzero(part != None)  # noqa: E711 (element-wise)
    if not some.size:
        return out
    part = part[some]
    with _from_lonlat(crs_wkt) as fwd:
        part = shapely.segmentize(part, _segment_lengths(part, fwd, tol))
        xy = shapely.get_coordinates(part)
        x, y = fwd.transform(xy[:, 0], xy[:, 1])
    projected = shapely.set_coordinates(part, np.column_stack([x, y]))
    bad = ~shapely.is_valid(projected)  # make_valid returns a valid geometry as it is
    projected[bad] = shapely.make_valid(projected[bad])
    out[some] = projected
    return out


def _curve_tol(gbox: GeoBox) -> float:
    """:data:`_CURVE_TOL_PX` output pixels of ``gbox``, in its CRS units."""
    return _CURVE_TOL_PX * abs(float(gbox.resolution.x))


def _segment_lengths(part: np.ndarray, fwd: Transformer, tol: float) -> np.ndarray:
    """Per lon/lat polygon of ``part``, the longest segment (degrees) that keeps its edges, once projected by
    ``fwd``, within about ``tol`` (target CRS units) of the true projected curve. A straight lon/lat edge
    projects to a curve whose deviation from its chord (a sagitta) falls with the square of the edge's length:
    an edge of length L whose projected midpoint lies d from the projected chord is cut into pieces of
    L sqrt(tol / d), the shortest over the polygon's edges, clamped to [:data:`_SEGMENT_DEG`,
    :data:`_MAX_SEGMENT_DEG`] (a fixed 0.05 degrees used to give a 1-degree scene ~80 vertices; a curved
    parallel at 20 m needs ~30, a meridian a handful)."""
    xy, which = shapely.get_coordinates(part, return_index=True)
    out = np.full(len(part), _MAX_SEGMENT_DEG)
    if len(xy) < 2:
        return out
    lon, lat = xy[:, 0], xy[:, 1]
    px, py = fwd.transform(lon, lat)
    e = np.flatnonzero(
        which[1:] == which[:-1]
    )  # edge e -> e + 1 within a polygon (across rings: only shorter)
    mx, my = fwd.transform((lon[e] + lon[e + 1]) / 2, (lat[e] + lat[e + 1]) / 2)
    ax, ay, dx, dy = px[e], py[e], px[e + 1] - px[e], py[e + 1] - py[e]
    cx, cy = mx - ax, my - ay
    den = dx * dx + dy * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip(np.where(den > 0, (cx * dx + cy * dy) / den, 0.0), 0.0, 1.0)
        ex, ey = cx - t * dx, cy - t * dy
        d = np.sqrt(ex * ex + ey * ey)  # the projected midpoint's distance from the projected chord
        length = np.sqrt((lon[e + 1] - lon[e]) ** 2 + (lat[e + 1] - lat[e]) ** 2)
        piece = np.where(d > 0, length * np.sqrt(tol / d), np.inf)
    piece = np.where(np.isfinite(d), piece, _SEGMENT_DEG)  # outside the projection's domain: the densest
    np.minimum.at(out, which[e], piece)
    return np.clip(out, _SEGMENT_DEG, _MAX_SEGMENT_DEG)


def _threaded(fn, chunks: list) -> list:
    """``[fn(c) for c in chunks]``, on up to :data:`THREADS` threads when there are several chunks (shapely,
    pyproj and numpy release the GIL in their array calls: a continent's footprints use every core)."""
    if len(chunks) < 2:
        return [fn(c) for c in chunks]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(chunks), THREADS)) as pool:
        return list(pool.map(fn, chunks))


#: threads of the array steps on 20,000 footprints or more (:func:`footprints_from_shapes`, :func:`tile_scene_pairs`)
THREADS = max(1, min(4, os.cpu_count() or 1))


def shapes_and_centroids(geometries: Sequence[dict | None]) -> tuple[list[BaseGeometry | None], np.ndarray]:
    """:func:`lonlat_shapes` and, per footprint, (n, 3): the centroid (lon, lat degrees) of the GeoJSON as shapely
    reads it unchanged (what ``odc.geo.geom.Geometry(geometry, crs=4326).centroid`` gives) and the centre of its
    longitude span (:func:`~orbitcube.catalog.antimeridian.centre_lon`); NaN where it had to be normalised
    (antimeridian, poles) or is missing."""
    shapes, as_given = _shapes(geometries)
    out = np.full((len(geometries), 3), np.nan)
    if as_given.any():
        given = np.array(shapes, dtype=object)[as_given]
        out[as_given, :2] = shapely.get_coordinates(shapely.centroid(given))
        out[as_given, 2] = _centre_lons(given)
    return shapes, out


def _centre_lons(polys: np.ndarray) -> np.ndarray:
    """:func:`orbitcube.catalog.antimeridian.centre_lon` of polygons that do not cross the antimeridian, on arrays
    (the same float operations); NaN where the vertices span 180 degrees or more (left to that function)."""
    xy, which = shapely.get_coordinates(polys, return_index=True)
    s = np.mod(xy[:, 0] + 180.0, 360.0) - 180.0
    n = len(polys)
    lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(lo, which, s)
    np.maximum.at(hi, which, s)
    centre = ((lo + hi) / 2 + 180.0) % 360.0 - 180.0
    return np.where(hi - lo < 180.0, centre, np.nan)


def lonlat_shapes(geometries: Sequence[dict | None]) -> list[BaseGeometry | None]:
    """Each GeoJSON footprint (lon/lat degrees) as :func:`~orbitcube.catalog.antimeridian.normalize_lonlat` gives
    it (None stays None). Single-ring polygons that stay inside +-180 and do not cross the antimeridian -- nearly
    every scene -- are built in one shapely call (normalising leaves them as they are); the others one by one."""
    return _shapes(geometries)[0]


def _shapes(geometries: Sequence[dict | None]) -> tuple[list[BaseGeometry | None], np.ndarray]:
    """:func:`lonlat_shapes`, and which of them are the GeoJSON as given (built in bulk, not normalised)."""
    out: list[BaseGeometry | None] = [None] * len(geometries)
    as_given = np.zeros(len(geometries), bool)
    simple: list[int] = []
    rings: list[list] = []
    for i, g in enumerate(geometries):
        if not g:
            continue
        c = g.get("coordinates") if g.get("type") == "Polygon" else None
        if c is not None and len(c) == 1 and len(c[0]) >= 4 and all(len(p) == 2 for p in c[0]):
            simple.append(i)
            rings.append(c[0])
        else:
            out[i] = normalize_lonlat(g)
    if not simple:
        return out, as_given
    sizes = np.fromiter((len(r) for r in rings), np.int64, len(rings))
    xy = np.array([p for r in rings for p in r], dtype="f8")
    ring_of = np.repeat(np.arange(len(rings)), sizes)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    lon = xy[:, 0]
    jump = np.zeros(len(lon), bool)
    jump[1:] = np.abs(np.diff(lon)) >= 180.0  # 180 exactly: normalising would rewrite it
    jump[starts] = False  # the step between two rings is no edge
    ends = starts + sizes - 1
    bad = np.any(xy[starts] != xy[ends], axis=1)  # an open ring: left to normalize_lonlat
    np.logical_or.at(bad, ring_of, jump | (lon < -180.0) | (lon > 180.0) | ~np.isfinite(xy).all(axis=1))
    good = np.flatnonzero(~bad)
    sel = ~bad[ring_of]
    polys = (
        []
        if good.size == 0
        else shapely.polygons(shapely.linearrings(xy[sel], indices=np.searchsorted(good, ring_of[sel])))
    )
    for k, p in zip(good.tolist(), list(polys), strict=True):
        out[simple[k]] = p
        as_given[simple[k]] = True
    for k in np.flatnonzero(bad).tolist():
        out[simple[k]] = normalize_lonlat(geometries[simple[k]])
    return out, as_given


#: pixels a footprint is grown by before it is matched to tiles: resampling kernels (bilinear, cubic, average
#: over a coarser output pixel) reach a little beyond a scene's edge
TILE_PAD_PX = 2


def scenes_per_tile(
    footprints: list[BaseGeometry], tiles: GeoboxTiles, pad_px: float = TILE_PAD_PX
) -> list[tuple[int, ...]]:
    """Which scenes touch which tile: for each tile of ``tiles`` in row-major order (tile (i, j) at
    ``i * tiles.shape.x + j``), the sorted indices into ``footprints`` (shapely geometries in the tiles' CRS, as
    :func:`footprint_on` returns them) that intersect it once grown by ``pad_px`` output pixels. The one answer
    the loader's graph and the batch plan both use (see :func:`tile_scene_pairs`)."""
    ny, nx = tiles.shape.yx
    bounds, scene_idx = tile_scenes(footprints, tiles, pad_px)
    b, hits = bounds.tolist(), scene_idx.tolist()
    return [tuple(hits[b[q] : b[q + 1]]) for q in range(ny * nx)]


def tile_scenes(
    footprints: Sequence[BaseGeometry], tiles: GeoboxTiles, pad_px: float = TILE_PAD_PX
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tile_scene_pairs` in compressed form, as the loader's graph and the plan keep it: ``bounds``
    (int64, one more than the tiles) and ``scene_idx`` (int32): tile q (row-major) is touched by the scenes
    ``scene_idx[bounds[q]:bounds[q + 1]]``, in increasing order. No tile number per pair (8.5 million pairs of
    100,000 scenes are 34 MB, not 136)."""
    ny, nx = tiles.shape.yx
    key, n = _pair_keys(footprints, tiles, pad_px)
    bounds = np.searchsorted(key, np.arange(ny * nx + 1, dtype=np.int64) * max(n, 1))
    np.remainder(key, max(n, 1), out=key)
    return bounds, key.astype(np.int32)


def tile_scene_pairs(
    footprints: Sequence[BaseGeometry], tiles: GeoboxTiles, pad_px: float = TILE_PAD_PX
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`scenes_per_tile` as two aligned int64 arrays (row-major tile number, scene index), sorted by tile
    then scene: the pairs whose footprint comes within ``pad_px`` output pixels of the tile's box (distance <=
    pad: the footprint grown by an exact disc, not ``shapely.buffer``'s polygonal one). No Python object per
    pair (100,000 scenes x 10,000 tiles are millions of pairs).

    On a north-up grid, polygonal footprints are matched on arrays (:func:`_crossed`), from their boundaries
    simplified to within one output pixel (:func:`_thinned_segments`): a tile's box shrunk by that pixel and
    crossed by a simplified boundary meets the footprint; a box grown by the pad and the pixel that no
    simplified boundary crosses lies wholly inside the footprint (one point test per run of such tiles) or
    farther than the pad from it; only the tiles between -- within about a pixel of a footprint without
    touching it -- are tested by distance (``shapely.dwithin``). Rotated grids and other geometries: one
    STRtree query (:func:`_strtree_pairs`, the reference the array path is tested against)."""
    key, n = _pair_keys(footprints, tiles, pad_px)
    return np.divmod(key, n) if n else (key, key.copy())


def _pair_keys(
    footprints: Sequence[BaseGeometry], tiles: GeoboxTiles, pad_px: float
) -> tuple[np.ndarray, int]:
    """The pairs of :func:`tile_scene_pairs` as sorted int64 keys ``tile * n + scene``, and ``n``."""
    n = len(footprints)
    if not n:
        return np.zeros(0, np.int64), 0
    a = tiles.base.transform
    geoms = np.asarray(footprints, dtype=object)
    if abs(a.b) > 0 or abs(a.d) > 0 or a.a <= 0 or a.e >= 0:
        t, k = _strtree_pairs(geoms, tiles, pad_px)
        return t * n + k, n
    polygonal = np.isin(shapely.get_type_id(geoms), (3, 6))  # Polygon, MultiPolygon
    pad = pad_px * abs(tiles.base.resolution.x)
    tol = abs(tiles.base.resolution.x)
    xe, ye = _tile_edges(tiles)
    batches = [
        np.flatnonzero(polygonal[lo : lo + _BAND_BATCH]) + lo for lo in range(0, len(geoms), _BAND_BATCH)
    ]
    batches = [b for b in batches if b.size]

    def keys(sel: np.ndarray) -> np.ndarray:  # tile * n + scene of a batch, sorted
        q, k = _batch_pairs(geoms[sel], xe, ye, pad, tol)
        q *= n
        q += sel[k]
        q.sort()
        return q

    found = _threaded(keys, batches)
    rest = np.flatnonzero(~polygonal)
    if rest.size:
        t, k = _strtree_pairs(geoms[rest], tiles, pad_px)
        found.append(np.sort(t * n + rest[k]))
    if len(found) == 1:
        return found[0], n
    key = np.concatenate(found)
    del found
    key.sort(kind="stable")  # merges the sorted runs (timsort): by tile, then scene
    return key, n


#: footprints matched per batch (bounds the memory of the segment arrays)
_BAND_BATCH = 10_000


def _batch_pairs(
    geoms: np.ndarray, xe: np.ndarray, ye: np.ndarray, pad: float, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """(tile, index into ``geoms``) of the polygons ``geoms`` within ``pad`` of a tile's box."""
    nx, ny = len(xe) - 1, len(ye) - 1
    segs = _thinned_segments(geoms, tol)
    # crossed by a thinned boundary once shrunk by tol: meets the footprint
    hit = _expand(_crossed(segs, xe, ye, -tol)[0], nx, ny)
    # grown by pad + tol: crossed by a thinned boundary (decided below), or wholly inside or outside
    runs, gaps = _crossed(segs, xe, ye, pad + tol)
    cand = _expand(runs, nx, ny)
    k, row, j0, _ = gaps
    inside = shapely.contains_xy(geoms[k], (xe[j0] + xe[j0 + 1]) / 2, (ye[row] + ye[row + 1]) / 2)
    found = [hit, _expand(tuple(g[inside] for g in gaps), nx, ny)]
    maybe = cand[~_member(cand, hit)]
    if maybe.size:  # near the footprint's edge: its distance to the box decides
        kq, q = np.divmod(maybe, ny * nx)
        i, j = np.divmod(q, nx)
        box = shapely.box(xe[j], ye[i + 1], xe[j + 1], ye[i])
        found.append(maybe[shapely.dwithin(geoms[kq], box, pad)])
    k, q = np.divmod(np.concatenate(found), ny * nx)
    return q, k


def _thinned_segments(geoms: np.ndarray, tol: float) -> tuple[np.ndarray, ...]:
    """Boundary segments (x1, y1, x2, y2, polygon index) of the polygons ``geoms``, each polygon simplified by
    Douglas-Peucker to ``tol`` (``shapely.simplify``: every dropped vertex within ``tol`` of the chord that
    replaces it, so the segments lie within ``tol`` of the true boundary both ways). A polygon that simplifying
    empties or changes (type, holes) and multipolygons keep every vertex."""
    polygon = shapely.get_type_id(geoms) == 3
    thin = geoms.copy()
    if polygon.any():
        simple = shapely.simplify(geoms[polygon], tol, preserve_topology=False)
        same = (shapely.get_type_id(simple) == 3) & ~shapely.is_empty(simple)
        same[same] = shapely.get_num_interior_rings(simple[same]) == shapely.get_num_interior_rings(
            geoms[polygon][same]
        )
        same[same] = shapely.get_num_coordinates(simple[same]) >= 4
        thin[np.flatnonzero(polygon)[same]] = simple[same]
    if polygon.all() and not shapely.get_num_interior_rings(thin).any():
        xy, ring = shapely.get_coordinates(thin, return_index=True)  # one ring per polygon
        owner_v = ring
    else:
        parts, part_owner = shapely.get_parts(thin, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        xy, ring = shapely.get_coordinates(rings, return_index=True)
        owner_v = part_owner[ring_part[ring]]
    i1 = np.flatnonzero(ring[1:] == ring[:-1])  # vertex i1 -> i1 + 1 within a ring
    return xy[i1, 0], xy[i1, 1], xy[i1 + 1, 0], xy[i1 + 1, 1], owner_v[i1]


def _point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of points ``p`` (n, 2) to segments ``a``-``b`` (n, 2 each)."""
    ax, ay = a[:, 0], a[:, 1]
    dx, dy = b[:, 0] - ax, b[:, 1] - ay
    px, py = p[:, 0] - ax, p[:, 1] - ay
    den = dx * dx + dy * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip(np.where(den > 0, (px * dx + py * dy) / den, 0.0), 0.0, 1.0)
    ex, ey = px - t * dx, py - t * dy
    return np.sqrt(ex * ex + ey * ey)  # np.hypot is several times slower here


def _tile_edges(tiles: GeoboxTiles) -> tuple[np.ndarray, np.ndarray]:
    """The x of the tiles' column edges (increasing, nx + 1) and the y of their row edges (decreasing, ny + 1)."""
    ny, nx = tiles.shape.yx
    a = tiles.base.transform
    ys = np.cumsum([0] + [tiles[i, 0].shape.y for i in range(ny)])
    xs = np.cumsum([0] + [tiles[0, j].shape.x for j in range(nx)])
    return a.c + a.a * xs, a.f + a.e * ys


def _crossed(
    segs: tuple[np.ndarray, ...], xe: np.ndarray, ye: np.ndarray, grow: float
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Where boundary segments ``segs`` cross the tiles' boxes grown by ``grow`` (CRS units; negative: shrunk)
    on every side: per polygon k and tile row, the runs of columns whose box a segment crosses (segments clipped
    to the row's band of y, their x-range mapped to columns), and the runs between them, which no segment
    crosses (each wholly inside or outside the polygon when ``grow`` >= 0: neighbouring boxes overlap). Both as
    (k, row, first column, last column), sorted by (k, row, column). North-up tiles: column edges ``xe``
    (x increasing), row edges ``ye`` (y decreasing)."""
    nx, ny = len(xe) - 1, len(ye) - 1
    x1, y1, x2, y2, owner = segs
    # rows i whose band [ye[i + 1] - grow, ye[i] + grow] meets the segment's y-range [ylo, yhi]
    ylo, yhi = np.minimum(y1, y2), np.maximum(y1, y2)
    r0 = np.maximum(np.searchsorted(-ye[1:], -(yhi + grow), side="left"), 0)
    r1 = np.minimum(np.searchsorted(-ye[:-1], grow - ylo, side="right") - 1, ny - 1)
    seg, row = _ranges(r0, r1)
    blo, bhi = ye[row + 1] - grow, ye[row] + grow
    sx1, sy1, sx2, sy2 = x1[seg], y1[seg], x2[seg], y2[seg]
    dy = sy2 - sy1
    with np.errstate(divide="ignore", invalid="ignore"):
        ta, tb = (blo - sy1) / dy, (bhi - sy1) / dy
    flat = dy == 0
    t0 = np.where(flat, 0.0, np.clip(np.minimum(ta, tb), 0.0, 1.0))
    t1 = np.where(flat, 1.0, np.clip(np.maximum(ta, tb), 0.0, 1.0))
    xa, xb = sx1 + t0 * (sx2 - sx1), sx1 + t1 * (sx2 - sx1)
    # columns j whose x-range [xe[j] - grow, xe[j + 1] + grow] meets [u, v]; -1 and nx: beyond the grid
    j0 = np.searchsorted(xe[1:] + grow, np.minimum(xa, xb), side="left")
    j1 = np.searchsorted(xe[:-1] - grow, np.maximum(xa, xb), side="right") - 1
    j0 = np.where(j1 < 0, -1, j0)
    j1 = np.where(j0 >= nx, nx, j1)
    group = owner[seg] * ny + row
    if not group.size:
        empty = np.zeros(0, np.int64)
        return (empty,) * 4, (empty,) * 4
    order = np.argsort(group * (nx + 3) + (j0 + 1), kind="stable")
    group, j0, j1 = group[order], j0[order], j1[order]
    # merge overlapping or neighbouring column ranges within each (polygon, row)
    reach = np.maximum.accumulate(group * (nx + 3) + (j1 + 1)) - group * (nx + 3) - 1
    first = np.flatnonzero(np.r_[True, (group[1:] != group[:-1]) | (j0[1:] > reach[:-1] + 1)])
    last = np.r_[first[1:], len(group)] - 1
    g, a, b = group[first], j0[first], reach[last]
    inner = np.flatnonzero(g[1:] == g[:-1])  # the run between two crossed runs of one (polygon, row)
    gaps = (g[inner + 1], b[inner] + 1, a[inner + 1] - 1)
    a, b = np.maximum(a, 0), np.minimum(b, nx - 1)
    keep = a <= b
    return (*np.divmod(g[keep], ny), a[keep], b[keep]), (*np.divmod(gaps[0], ny), gaps[1], gaps[2])


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every i and every v in [lo[i], hi[i]] (empty ranges skipped): (i, v), in order."""
    cnt = np.maximum(hi - lo + 1, 0)
    idx = np.repeat(np.arange(cnt.size), cnt)
    return idx, np.repeat(lo, cnt) + (np.arange(idx.size) - np.repeat(np.cumsum(cnt) - cnt, cnt))


def _expand(runs: tuple[np.ndarray, ...], nx: int, ny: int) -> np.ndarray:
    """Keys ``(k * ny + row) * nx + column`` of every tile of the runs (k, row, first column, last column):
    sorted when the runs are sorted and disjoint."""
    k, row, j0, j1 = runs
    idx, j = _ranges(j0, j1)
    return (k[idx] * ny + row[idx]) * nx + j


def _member(a: np.ndarray, sorted_b: np.ndarray) -> np.ndarray:
    """Which values of ``a`` are in the sorted unique array ``sorted_b``."""
    if not sorted_b.size:
        return np.zeros(a.shape, bool)
    pos = np.minimum(np.searchsorted(sorted_b, a), sorted_b.size - 1)
    return sorted_b[pos] == a


def _strtree_pairs(geoms: np.ndarray, tiles: GeoboxTiles, pad_px: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`tile_scene_pairs` by one STRtree ``dwithin`` query of the footprints against the tiles' boxes (any
    grid, any geometry)."""
    ny, nx = tiles.shape.yx
    pad = pad_px * abs(tiles.base.resolution.x)
    a = tiles.base.transform
    if abs(a.b) > 0 or abs(a.d) > 0:  # a rotated grid: the tiles' own polygons
        boxes = np.array([tiles[i, j].extent.geom for i in range(ny) for j in range(nx)], dtype=object)
    else:
        xe, ye = _tile_edges(tiles)
        ii, jj = np.divmod(np.arange(ny * nx), nx)
        x0, x1 = xe[jj], xe[jj + 1]
        y0, y1 = ye[ii], ye[ii + 1]
        boxes = shapely.box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1))
    scene_idx, tile_idx = shapely.STRtree(boxes).query(geoms, predicate="dwithin", distance=pad)
    order = np.lexsort((scene_idx, tile_idx))
    return tile_idx[order].astype(np.int64), scene_idx[order].astype(np.int64)
