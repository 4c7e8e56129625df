"""Output grids: the GeoBox a cube is loaded onto, and its split into tiles aligned with the output chunks."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal, get_args

import pystac
from odc.geo import XY, xy_
from odc.geo.crs import CRS, norm_crs
from odc.geo.geobox import GeoBox, GeoboxTiles
from odc.geo.geom import Geometry, box
from shapely.geometry import mapping

from orbitcube.catalog.antimeridian import normalize_lonlat
from orbitcube.pipeline.bands import asset_crs
from orbitcube.pipeline.errors import GridError

log = logging.getLogger(__name__)

AOI = tuple[float, float, float, float] | dict | Geometry | str
#: named grid alignments of :func:`output_grid` (pixel edges, or pixel centres, on multiples of the resolution)
Anchor = Literal["edge", "center"]
ANCHORS: tuple[Anchor, ...] = get_args(Anchor)


def aoi_geometry(aoi: AOI, items: Sequence[pystac.Item] = ()) -> Geometry:
    """The AOI as an odc-geo Geometry.

    ``aoi`` is a (west, south, east, north) bbox in degrees (WGS84), a GeoJSON geometry / Feature /
    FeatureCollection (WGS84), an odc-geo Geometry in any CRS, or a tile id matched against the items' ``grid:code``
    or ``s2:mgrs_tile`` (their union footprint).
    """
    if isinstance(aoi, Geometry):
        return aoi
    if isinstance(aoi, str):
        hits = [
            Geometry(it.geometry, crs=4326)
            for it in items
            if aoi in (it.properties.get("s2:mgrs_tile"), it.properties.get("grid:code", "").split("-")[-1])
        ]
        if not hits:
            codes = sorted({it.properties.get("grid:code", "?") for it in items})
            raise GridError(f"AOI tile id {aoi!r} matches no item; the items' grid codes are {codes}")
        out = hits[0]
        for g in hits[1:]:
            out = out | g
        return out
    if isinstance(aoi, dict):
        kind = aoi.get("type")
        if kind == "FeatureCollection":
            geoms = [aoi_geometry(f) for f in aoi.get("features", [])]
            if not geoms:
                raise GridError("AOI FeatureCollection has no features; give at least one polygon")
            out = geoms[0]
            for g in geoms[1:]:
                out = out | g
            return out
        if kind == "Feature":
            return aoi_geometry(aoi["geometry"])
        if kind in ("Polygon", "MultiPolygon"):
            return Geometry(aoi, crs=4326)
        raise GridError(
            f"AOI GeoJSON of type {kind!r} is not an area; give a Polygon, MultiPolygon or Feature"
        )
    try:
        w, s, e, n = (float(v) for v in aoi)
    except (TypeError, ValueError) as exc:
        raise GridError(
            f"AOI {aoi!r} is not a (west, south, east, north) bbox, GeoJSON, Geometry or tile id"
        ) from exc
    if not (w < e and s < n and -180 <= w and e <= 180 and -90 <= s and n <= 90):
        raise GridError(
            f"AOI bbox {aoi!r} must be (west, south, east, north) in degrees with west < east, south < north"
        )
    return box(w, s, e, n, crs=4326)


def _native(items: Sequence[pystac.Item], bands: Sequence[str] | None) -> tuple[str, float]:
    crs_count: Counter[str] = Counter()
    resolutions: list[float] = []
    for it in items:
        for key, asset in it.assets.items():
            names = {key, *(b.get("common_name") for b in asset.extra_fields.get("eo:bands", []))}
            if bands and not names & set(bands):
                continue
            acode = asset_crs(asset.extra_fields, it.properties)
            if acode:
                crs_count[acode] += 1
            # USGS puts proj:transform on the item, not the assets
            tr = asset.extra_fields.get("proj:transform") or it.properties.get("proj:transform")
            if tr:
                resolutions.append(abs(float(tr[0])))
            elif asset.extra_fields.get("gsd"):
                resolutions.append(float(asset.extra_fields["gsd"]))
    if not crs_count or not resolutions:
        raise GridError(
            "cannot derive an output grid: the items carry no proj:code/proj:epsg or proj:transform for the "
            "requested bands; pass crs= and resolution= explicitly"
        )
    return crs_count.most_common(1)[0][0], min(resolutions)


#: tolerance (fraction of a pixel) within which two grids count as aligned
ALIGN_TOL = 1e-6


def _asset_grids(items: Sequence[pystac.Item], bands: Sequence[str] | None) -> list[tuple[str | None, list]]:
    """(CRS code, 6-term proj:transform) of every asset of ``items`` that holds one of ``bands`` (all assets
    with a transform when ``bands`` is empty); asset-level projection fields win over item-level ones."""
    out = []
    for it in items:
        p = it.properties
        for key, asset in it.assets.items():
            f = asset.extra_fields
            names = {key, *(b.get("common_name") for b in f.get("eo:bands", []))}
            if bands and not names & set(bands):
                continue
            code = asset_crs(f, p)
            tr = f.get("proj:transform") or p.get("proj:transform")
            if tr:
                out.append((code, [float(v) for v in tr[:6]]))
    return out


def _phase(v: float, res: float) -> float:
    """Where a grid line at ``v`` falls within a pixel of size ``res`` (0 <= phase < 1, ~1 folded to 0)."""
    ph = (v / res) % 1.0
    return 0.0 if min(ph, 1.0 - ph) < ALIGN_TOL * 10 else ph


def items_anchor(
    items: Sequence[pystac.Item], bands: Sequence[str] | None, crs: Any, resolution: float
) -> XY[float] | None:
    """The sub-pixel anchor (x, y fractions of a pixel, as odc-geo's ``GeoBox.from_geopolygon(anchor=)`` takes
    it) that puts the output grid's pixel edges on the pixel edges of the items' assets of ``bands``.

    Only assets in ``crs`` (the output CRS) whose north-up pixels are ``resolution`` (CRS units) wide count.
    None when no such asset exists or when their grids disagree (different sub-pixel phases): then no single
    grid is native and the caller snaps to multiples of the resolution.
    """
    try:
        want = norm_crs(crs)
    except Exception:  # noqa: BLE001 (pyproj raises several types; output_grid reports a bad crs)
        return None
    res = float(resolution)
    phases: set[tuple[float, float]] = set()
    for code, tr in _asset_grids(items, bands):
        a, b, c, d, e, f = tr
        if code is None or abs(b) > 0 or abs(d) > 0 or abs(abs(a) - res) > ALIGN_TOL * res:
            continue
        if abs(abs(e) - res) > ALIGN_TOL * res:
            continue
        try:
            if CRS(code) != want:
                continue
        except Exception:  # noqa: BLE001 (an unknown code cannot be the output CRS)
            continue
        phases.add((round(_phase(c, res), 6), round(_phase(f, res), 6)))
    if len(phases) != 1:
        if len(phases) > 1:
            log.info(
                "the items' %s m grids are not aligned with each other %s; snapping to multiples", res, phases
            )
        return None
    ax, ay = phases.pop()
    return xy_(ax, ay)


def output_grid(
    items: Sequence[pystac.Item] | None = None,
    *,
    crs: Any = None,
    resolution: float | None = None,
    aoi: AOI | None = None,
    bands: Sequence[str] | None = None,
    anchor: Anchor | XY[float] | None = None,
) -> GeoBox:
    """The output grid as an odc-geo GeoBox (north-up, square pixels, y decreasing).

    ``crs`` and ``resolution`` (in CRS units, metres for UTM) default to the items' most common CRS and the finest
    native resolution of ``bands``; ``aoi`` defaults to the union of the item footprints.

    Alignment (``anchor``): by default (None) the grid follows the items' own pixel grid -- when the assets of
    ``bands`` that are in the output CRS at the output resolution all share one sub-pixel phase (e.g. Landsat
    corners at odd multiples of 15 m), the output pixel edges are put on theirs, so a native load copies pixels
    exactly; this holds whether crs/resolution were derived or given. Otherwise (other resolution, no asset in
    that CRS, or items whose grids disagree) pixel edges sit on multiples of the resolution (``"edge"``), so grids
    of the same CRS and resolution always align. An explicit ``anchor`` wins: ``"edge"``, ``"center"``, or an
    odc-geo ``xy_(fx, fy)`` sub-pixel anchor (fractions of a pixel in [0, 1)).
    """
    items = list(items or [])
    if crs is None or resolution is None:
        if not items:
            raise GridError("output_grid needs items, or both crs= and resolution=")
        dcrs, dres = _native(items, bands)
        crs = crs or dcrs
        resolution = resolution or dres
    try:
        if resolution is None or float(resolution) <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise GridError(
            f"resolution {resolution!r} must be a positive number in CRS units (metres for UTM)"
        ) from None
    if anchor is None:
        anchor = items_anchor(items, bands, crs, float(resolution)) or "edge"
    geom = _extent(items, aoi)
    try:
        projected = geom.to_crs(crs)
    except Exception as exc:  # pyproj raises several types
        raise GridError(
            f"cannot project the AOI to CRS {crs!r}: {exc}; give an EPSG code like 'EPSG:32632'"
        ) from exc
    try:
        gbox = GeoBox.from_geopolygon(
            projected, resolution=float(resolution), crs=projected.crs, anchor=anchor
        )
    except (KeyError, AssertionError) as exc:
        raise GridError(
            f"anchor {anchor!r} is not one of {list(ANCHORS)} or xy_(fx, fy) with fractions in [0, 1)"
        ) from exc
    if gbox.shape.x == 0 or gbox.shape.y == 0:
        raise GridError(
            f"the AOI is smaller than one {resolution} pixel; use a finer resolution or a larger AOI"
        )
    return gbox


def _extent(items: list[pystac.Item], aoi: AOI | None) -> Geometry:
    """The AOI as a Geometry, or the union of the item footprints when no AOI is given."""
    if aoi is not None:
        return aoi_geometry(aoi, items)
    if not items:
        raise GridError("output_grid needs an aoi= or items to take the extent from")
    # footprints split at the antimeridian first: a ring jumping from 179 E to 179 W is not a band round the globe
    return aoi_geometry(
        {
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "geometry": mapping(normalize_lonlat(it.geometry))} for it in items
            ],
        }
    )


def tile_grid(geobox: GeoBox, tile_shape: tuple[int, int] = (512, 512)) -> GeoboxTiles:
    """Split ``geobox`` into tiles of ``tile_shape`` (y, x) pixels; tile (i, j) is output chunk (i, j)."""
    ty, tx = tile_shape
    if ty <= 0 or tx <= 0:
        raise GridError(f"tile_shape {tile_shape} must be positive (y, x) pixel counts, e.g. (512, 512)")
    return GeoboxTiles(geobox, (ty, tx))


__all__ = [
    "ANCHORS",
    "Anchor",
    "ALIGN_TOL",
    "AOI",
    "aoi_geometry",
    "items_anchor",
    "output_grid",
    "tile_grid",
]
