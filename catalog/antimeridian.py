"""Longitude/latitude footprints that cross the antimeridian or contain a pole, made safe for planar tests.

STAC geometries are GeoJSON in WGS84 and, per RFC 7946, an edge between two vertices takes the short way round:
a ring whose longitude jumps by more than 180 degrees between two vertices crosses the antimeridian. Real
catalogs serve both kinds: rings split into a MultiPolygon at +-180 (fine as they are) and single rings that jump
from 179.9 to -179.9 (the Planetary Computer's io-lulc tiles of UTM zone 60), which shapely reads as a band
around the whole globe. :func:`normalize_lonlat` turns either into pieces inside [-180, 180] that planar
geometry (shapely intersects, an STRtree) handles correctly; a ring that winds once around a pole is closed
through that pole. STAC bboxes with west > east cross the antimeridian (:func:`bbox_parts`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry import Polygon, box, shape
from shapely.geometry.base import BaseGeometry


def unwrap_lons(lons: np.ndarray) -> np.ndarray:
    """Longitudes (degrees) made continuous along a ring: each vertex is shifted by a multiple of 360 so that it
    lies within 180 degrees of the previous one (the short way round, as RFC 7946 reads an edge)."""
    lons = np.asarray(lons, dtype="f8")
    if lons.size < 2:
        return lons.copy()
    step = np.diff(lons)
    step = (step + 180.0) % 360.0 - 180.0  # each edge the short way round, in (-180, 180]
    return np.concatenate([[lons[0]], lons[0] + np.cumsum(step)])


def _ring(coords: np.ndarray) -> tuple[np.ndarray, bool]:
    """A ring's coordinates with continuous longitudes, closed through a pole when it winds round one;
    second: whether anything changed."""
    lon = unwrap_lons(coords[:, 0])
    lat = coords[:, 1]
    changed = not np.allclose(lon, coords[:, 0])
    if abs(lon[-1] - lon[0]) > 180.0:  # winds once round a pole: close the ring through it
        pole = -90.0 if np.nanmean(lat) < 0 else 90.0
        lon = np.r_[lon, lon[-1], lon[0]]
        lat = np.r_[lat, pole, pole]
        changed = True
    return np.column_stack([lon, lat]), changed


def _fold(geom: BaseGeometry) -> BaseGeometry:
    """``geom`` (any longitudes) cut into [-180, 180]: the parts beyond are moved by multiples of 360."""
    x0, _, x1, _ = geom.bounds
    parts = []
    for k in range(int(np.floor((x0 + 180.0) / 360.0)), int(np.floor((x1 + 180.0) / 360.0)) + 1):
        piece = geom.intersection(box(-180.0 + 360.0 * k, -90.0, 180.0 + 360.0 * k, 90.0))
        if not piece.is_empty:
            parts.append(shapely.affinity.translate(piece, xoff=-360.0 * k))
    return shapely.union_all(parts) if parts else geom


def normalize_lonlat(geom: dict | BaseGeometry) -> BaseGeometry:
    """A WGS84 footprint (GeoJSON dict or shapely geometry, lon/lat degrees) as a shapely geometry whose parts lie
    inside [-180, 180] x [-90, 90]: rings that cross the antimeridian are unwrapped and split at +-180, rings that
    wind round a pole are closed through it. Footprints that need neither come back unchanged."""
    g = shape(geom) if isinstance(geom, dict) else geom
    if g.is_empty or g.geom_type not in ("Polygon", "MultiPolygon"):
        return g
    polys = list(g.geoms) if g.geom_type == "MultiPolygon" else [g]
    out, changed = [], False
    for p in polys:
        ext, c = _ring(np.asarray(p.exterior.coords))
        changed |= c
        holes = []
        for h in p.interiors:
            hc, c2 = _ring(np.asarray(h.coords))
            shift = 360.0 * np.round((np.mean(hc[:, 0]) - np.mean(ext[:, 0])) / 360.0)
            holes.append(hc - [shift, 0.0])
            changed |= c2 or bool(shift)
        out.append(Polygon(ext, holes))
    x0, _, x1, _ = g.bounds
    if not changed and -180.0 <= x0 and x1 <= 180.0:
        return g
    return _areal(_fold(_areal(shapely.make_valid(shapely.union_all(out)))))


def _areal(g: BaseGeometry) -> BaseGeometry:
    """The polygonal parts of ``g`` (make_valid and cutting leave stray lines and points on the seam)."""
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    return shapely.union_all([p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")])


def bbox_parts(bbox: Sequence[float]) -> list[tuple[float, float, float, float]]:
    """A STAC bbox (west, south, east, north) as one or two boxes inside [-180, 180]: west > east crosses the
    antimeridian (STAC spec) and gives (west, s, 180, n) and (-180, s, east, n)."""
    w, s, e, n = (float(v) for v in bbox[:4]) if len(bbox) == 4 else (bbox[0], bbox[1], bbox[3], bbox[4])
    if w > e:
        return [(w, s, 180.0, n), (-180.0, s, e, n)]
    return [(w, s, e, n)]


def centre_lon(geometry: dict | BaseGeometry | None, bbox: Sequence[float] | None = None) -> float | None:
    """Longitude (degrees, in [-180, 180)) of the centre of a footprint's longitude span, antimeridian-safe: the
    middle of the shortest arc holding all of the footprint's vertices (or of its bbox when it has no geometry;
    a bbox with west > east crosses the antimeridian). None when neither is given."""
    lons: np.ndarray | None = None
    if geometry is not None:
        g = shape(geometry) if isinstance(geometry, dict) else geometry
        if not g.is_empty:
            lons = shapely.get_coordinates(g)[:, 0]
    if lons is None and bbox is not None:
        parts = bbox_parts(bbox)
        w, e = parts[0][0], parts[-1][2] + (360.0 if len(parts) == 2 else 0.0)
        return float(((w + e) / 2 + 180.0) % 360.0 - 180.0)
    if lons is None or lons.size == 0:
        return None
    s = np.sort(np.mod(lons + 180.0, 360.0) - 180.0)
    gaps = np.diff(np.r_[s, s[0] + 360.0])  # gap after each sorted longitude, the last one wrapping round
    i = int(np.argmax(gaps))  # the span is the circle minus its largest empty gap
    start, end = s[(i + 1) % s.size], s[i]
    end = end if end >= start else end + 360.0
    return float(((start + end) / 2 + 180.0) % 360.0 - 180.0)


__all__ = [
    "bbox_parts",
    "centre_lon",
    "normalize_lonlat",
    "unwrap_lons",
]
