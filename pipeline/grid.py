"""Output grids: the GeoBox a cube is loaded onto, and its split into tiles aligned with the output chunks."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pystac
from odc.geo.geobox import GeoBox, GeoboxTiles
from odc.geo.geom import Geometry, box

from pipeline.errors import GridError

log = logging.getLogger(__name__)

AOI = tuple[float, float, float, float] | dict | Geometry | str


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
        code = it.properties.get("proj:code") or (
            f"EPSG:{it.properties['proj:epsg']}" if it.properties.get("proj:epsg") else None
        )
        for key, asset in it.assets.items():
            names = {key, *(b.get("common_name") for b in asset.extra_fields.get("eo:bands", []))}
            if bands and not names & set(bands):
                continue
            acode = asset.extra_fields.get("proj:code") or code
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


def output_grid(
    items: Sequence[pystac.Item] | None = None,
    *,
    crs: Any = None,
    resolution: float | None = None,
    aoi: AOI | None = None,
    bands: Sequence[str] | None = None,
    anchor: str = "edge",
) -> GeoBox:
    """The output grid as an odc-geo GeoBox (north-up, square pixels, y decreasing).

    ``crs`` and ``resolution`` (in CRS units, metres for UTM) default to the items' most common CRS and the finest
    native resolution of ``bands``; ``aoi`` defaults to the union of the item footprints. With ``anchor="edge"``
    pixel edges sit on multiples of the resolution, so grids of the same CRS and resolution always align.
    """
    items = list(items or [])
    if crs is None or resolution is None:
        if not items:
            raise GridError("output_grid needs items, or both crs= and resolution=")
        dcrs, dres = _native(items, bands)
        crs = crs or dcrs
        resolution = resolution or dres
    if resolution is None or float(resolution) <= 0:
        raise GridError(f"resolution {resolution!r} must be a positive number in CRS units (metres for UTM)")
    if aoi is None:
        if not items:
            raise GridError("output_grid needs an aoi= or items to take the extent from")
        geom = aoi_geometry(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "geometry": it.geometry} for it in items],
            }
        )
    else:
        geom = aoi_geometry(aoi, items)
    try:
        projected = geom.to_crs(crs)
    except Exception as exc:  # pyproj raises several types
        raise GridError(
            f"cannot project the AOI to CRS {crs!r}: {exc}; give an EPSG code like 'EPSG:32632'"
        ) from exc
    gbox = GeoBox.from_geopolygon(projected, resolution=float(resolution), crs=projected.crs, anchor=anchor)
    if gbox.shape.x == 0 or gbox.shape.y == 0:
        raise GridError(
            f"the AOI is smaller than one {resolution} pixel; use a finer resolution or a larger AOI"
        )
    return gbox


def tile_grid(geobox: GeoBox, tile_shape: tuple[int, int] = (512, 512)) -> GeoboxTiles:
    """Split ``geobox`` into tiles of ``tile_shape`` (y, x) pixels; tile (i, j) is output chunk (i, j)."""
    ty, tx = tile_shape
    if ty <= 0 or tx <= 0:
        raise GridError(f"tile_shape {tile_shape} must be positive (y, x) pixel counts, e.g. (512, 512)")
    return GeoboxTiles(geobox, (ty, tx))
