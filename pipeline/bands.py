"""Per item and band: which asset (and band inside it) holds a requested band, how to decode and resample it.

Everything here is decided per item, never per collection: Sentinel-2 L2A changed its encoding within one
collection (processing baseline 04.00, 25 January 2022), and the same Landsat scene must be resampled the same
way whatever other scenes share a tile. The order of precedence for scale/offset is the user's
``scale_offset`` (source ``"user"``), the asset's ``raster:bands`` (``"item"``), the product table of
:mod:`orbitcube.catalog.products` (``"product-table"``), else values as stored (``"none"``, with a warning).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import pystac
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry

from orbitcube.catalog.classes import BUILTIN_LAYERS, normalise_name
from orbitcube.catalog.products import band_encoding, is_class_product
from orbitcube.pipeline.errors import LoadError

log = logging.getLogger(__name__)

CLASS_RESAMPLING = ("nearest", "mode")


@dataclass(frozen=True)
class BandRef:
    """How one requested band is found in one item: asset key, band index, scale, offset, nodata, and why."""

    name: str
    key: str
    scale: float
    offset: float
    nodata: float | None
    is_quality: bool = False
    """A class or bit-flag layer (quality layers, land cover): never scaled, averaged or cloud-masked."""
    index: int = 1
    """1-based band index inside the asset's file (eo:bands position + 1 for multi-band assets)."""
    source: str = "item"
    """Where scale/offset come from: ``"item"``, ``"product-table"``, ``"user"`` or ``"none"``."""
    data_type: str | None = None
    bitfields: bool = False


def _band_list(asset: pystac.Asset) -> list[dict]:
    return asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []


def _common(b: dict) -> str | None:
    return b.get("common_name") or b.get("eo:common_name")


def asset_band(asset: pystac.Asset, index: int = 1) -> dict:
    """The ``raster:bands`` entry of band ``index`` (1-based) of ``asset`` ({} when the item says nothing)."""
    rb = asset.extra_fields.get("raster:bands") or asset.extra_fields.get("bands") or [{}]
    band = rb[index - 1] if len(rb) >= index else (rb[0] if len(rb) == 1 else {})
    # STAC 1.1 ``bands`` spell them raster:scale / raster:offset (raster extension v2)
    return {k.removeprefix("raster:"): v for k, v in band.items()}


def _find(item: pystac.Item, name: str) -> tuple[str, int] | None:
    """(asset key, band index) of ``name``: an asset key, else a single-band asset whose eo:bands common name
    or name matches, else the matching band of a multi-band asset (NAIP ``image``, Sentinel-2 ``visual``)."""
    if name in item.assets:
        return name, 1
    multi = None
    for k, a in item.assets.items():
        bands = _band_list(a)
        for i, b in enumerate(bands, start=1):
            if name in (_common(b), b.get("name")):
                if len(bands) == 1:
                    return k, 1
                multi = multi or (k, i)
    return multi


def _nodata_value(v) -> float | None:
    if v is None:
        return None
    try:
        return float(v)  # STAC writes NaN as "nan"
    except (TypeError, ValueError):
        raise LoadError(
            f"raster:bands nodata {v!r} is not a number; fix the item (use a number or 'nan')"
        ) from None


def resolve_band(item: pystac.Item, name: str) -> BandRef:
    """Find band ``name`` (asset key or eo common name) in ``item`` with its scale/offset/nodata for this item
    (raster:bands, else the product table of :mod:`orbitcube.catalog.products`); raise LoadError listing what exists."""
    ref, table = locate_band(item, name)
    return ref if table is None else encoded(ref, table, item.collection_id, item.properties, item_date(item))


def item_date(item: pystac.Item) -> dt.date | None:
    """The date the product table reads for ``item`` (``datetime``, else ``start_datetime``; None if neither)."""
    when = item.datetime or item.common_metadata.start_datetime
    return when.date() if when else None


def locate_band(item: pystac.Item, name: str) -> tuple[BandRef, tuple[str, str | None] | None]:
    """:func:`resolve_band` without the product table: the BandRef with the asset's own scale/offset (source
    ``"item"``) or none yet (``"none"``), and ``(asset key, common name)`` when the product table decides
    (:func:`encoded`), else None. Reads only the item's collection, :data:`~orbitcube.pipeline.layouts.PRODUCT_PROPERTIES` and the
    :data:`~orbitcube.pipeline.layouts.LAYOUT_FIELDS` of its assets (see :func:`~orbitcube.pipeline.layouts.item_layout`)."""
    found = _find(item, name)
    if found is None:
        common = sorted({c for a in item.assets.values() for b in _band_list(a) if (c := _common(b))})
        raise LoadError(
            f"item {item.id!r} has no band {name!r}; its assets are {sorted(item.assets)} and common names {common}"
        )
    key, index = found
    asset = item.assets[key]
    rb = asset_band(asset, index)
    builtin = BUILTIN_LAYERS.get(
        normalise_name(key)
    )  # SCL, QA_PIXEL, Fmask: orbitcube.catalog.classes knows them
    bitfields = (
        key.upper() == "BQA"
        or "classification:bitfields" in asset.extra_fields
        or (builtin is not None and builtin[1] == "classification:bitfields")
    )
    quality = (
        bitfields
        or builtin is not None
        or "classification:classes" in asset.extra_fields
        or is_class_product(item.collection_id, item.properties)
    )
    scale, offset, source, table = 1.0, 0.0, "none", None
    if "scale" in rb or "offset" in rb:
        scale, offset, source = float(rb.get("scale", 1.0)), float(rb.get("offset", 0.0)), "item"
    elif not quality:
        bands = _band_list(asset)
        table = (key, _common(bands[index - 1]) if len(bands) >= index else None)
    nodata = _nodata_value(rb.get("nodata"))
    ref = BandRef(name, key, scale, offset, nodata, quality, index, source, rb.get("data_type"), bitfields)
    return ref, table


def encoded(
    ref: BandRef, table: tuple[str, str | None], collection: str | None, props: Mapping, date: dt.date | None
) -> BandRef:
    """``ref`` (from :func:`locate_band`) with the product table's scale/offset for an item of ``collection``
    with properties ``props`` acquired on ``date`` (unchanged when the table knows nothing)."""
    enc = band_encoding(collection, props, date, *table)
    return ref if enc is None else replace(ref, scale=enc.scale, offset=enc.offset, source=enc.source)


def with_user_encoding(ref: BandRef, scale_offset: Mapping[str, tuple[float, float]] | None) -> BandRef:
    """``ref`` with the user's (scale, offset) for its band (by requested name or asset key), if given."""
    if not scale_offset:
        return ref
    for k in (ref.name, ref.key):
        if k in scale_offset:
            try:
                s, o = (float(v) for v in scale_offset[k])
            except (TypeError, ValueError):
                raise LoadError(
                    f"scale_offset[{k!r}]={scale_offset[k]!r}: give a (scale, offset) pair of numbers, "
                    "e.g. {'red': (0.0001, -0.1)}"
                ) from None
            return replace(ref, scale=s, offset=o, source="user")
    return ref


def _is_integer_type(data_type: str | None) -> bool | None:
    if not data_type:
        return None
    try:
        return bool(np.issubdtype(np.dtype(data_type), np.integer))
    except TypeError:
        return None


def check_encoding(item: pystac.Item, ref: BandRef, warned: set) -> None:
    """Log (once per collection and band, ``warned`` remembers) what cannot be right: integer data with no
    known scale/offset (loaded as stored), a nodata the data type cannot hold (ignored)."""
    _check_encoding(item.collection_id, ref, warned)


def _check_encoding(coll: str | None, ref: BandRef, warned: set) -> None:
    integer = _is_integer_type(ref.data_type)
    if (
        ref.source == "none"
        and not ref.is_quality
        and integer is not False
        and (coll, ref.name) not in warned
    ):
        warned.add((coll, ref.name))
        log.warning(
            "band %r of collection %r (asset %r): the items give no scale/offset (no raster:bands) and the "
            "product table does not know this product; loading the values as stored. If they are encoded, pass "
            "load_cube(..., scale_offset={%r: (scale, offset)}) (recipe: load.scale_offset)",
            ref.name,
            coll,
            ref.key,
            ref.name,
        )
    if ref.nodata is not None and integer:
        info = np.iinfo(np.dtype(ref.data_type))
        bad = not (ref.nodata == ref.nodata and float(ref.nodata).is_integer())
        if (bad or not info.min <= ref.nodata <= info.max) and (coll, ref.name, "nodata") not in warned:
            warned.add((coll, ref.name, "nodata"))
            log.warning(
                "band %r of collection %r: raster:bands nodata %s cannot occur in %s data; it is ignored (the "
                "file's nodata, if any, is used, and pixels outside each scene are invalid anyway)",
                ref.name,
                coll,
                ref.nodata,
                ref.data_type,
            )


# ----- resampling ---------------------------------------------------------------------------------------------------
def asset_crs(asset_fields: Mapping[str, Any], item_properties: Mapping[str, Any]) -> str | None:
    """The CRS of an asset's raster from STAC projection metadata: asset-level fields win over the item's, and
    on each level ``proj:code``, then ``EPSG:`` + ``proj:epsg``, then ``proj:wkt2``; None when neither level
    has one. The one precedence the loader, the grid, the screening and the columnar plan use."""
    for d in (asset_fields, item_properties):
        if d.get("proj:code"):
            return str(d["proj:code"])
        if d.get("proj:epsg"):
            return f"EPSG:{d['proj:epsg']}"
        if d.get("proj:wkt2"):
            return str(d["proj:wkt2"])
    return None


def _asset_crs(item: pystac.Item, key: str) -> str | None:
    return asset_crs(item.assets[key].extra_fields, item.properties)


def _native_res(item: pystac.Item, key: str) -> tuple[float, str | None] | None:
    """Native pixel size of asset ``key`` and the CRS it is measured in (None: metres, from ``gsd``)."""
    a = item.assets[key].extra_fields
    tr = a.get("proj:transform") or item.properties.get("proj:transform")
    crs = _asset_crs(item, key)
    if tr and crs:
        return abs(float(tr[0])), crs
    gsd = a.get("gsd") or item.properties.get("gsd")
    return (float(gsd), None) if gsd else None


@lru_cache(maxsize=1024)
def _pixel_size_in(src_crs: str | None, dst_crs: str, res: float, lon: float, lat: float) -> float:
    """Edge length (square root of the area) of an output pixel of size ``res`` (``dst_crs`` units) centred at
    (lon, lat), measured in ``src_crs`` units (metres on the ellipsoid when ``src_crs`` is None)."""
    from odc.geo.geom import box, point

    c = point(lon, lat, crs=4326).to_crs(dst_crs).coords[0]
    pix = box(c[0] - res / 2, c[1] - res / 2, c[0] + res / 2, c[1] + res / 2, crs=dst_crs)
    if src_crs is not None:
        return math.sqrt(pix.to_crs(src_crs).area)
    from pyproj import Geod

    area, _ = Geod(ellps="WGS84").geometry_area_perimeter(pix.to_crs(4326).geom)
    return math.sqrt(abs(area))


def coarsening(item: pystac.Item, key: str, geobox: GeoBox) -> float | None:
    """How many native pixels of asset ``key`` one output pixel spans (per side), comparing like with like: the
    footprint of an output pixel at the scene's centre, measured in the source CRS. None when unknown."""
    native = _native_res(item, key)
    if native is None or native[0] <= 0:
        return None
    return coarsening_at(native, Geometry(item.geometry, crs=4326).centroid.coords[0], geobox)


def coarsening_at(
    native: tuple[float, str | None], lonlat: tuple[float, float], geobox: GeoBox
) -> float | None:
    """:func:`coarsening` of an asset of native pixel size ``native`` (size, CRS; CRS None: metres from
    ``gsd``) for a scene centred at ``lonlat`` (its footprint's centroid, degrees)."""
    lon, lat = lonlat
    try:
        size = _pixel_size_in(
            native[1], str(geobox.crs), abs(float(geobox.resolution.x)), round(lon, 2), round(lat, 2)
        )
    except Exception:  # noqa: BLE001 (pyproj raises several types for points outside a projection's domain)
        return None
    return size / native[0] if math.isfinite(size) else None


def pixel_sizes_in(src_crs: str, dst_crs: str, res: float, lonlat: np.ndarray) -> np.ndarray:
    """:func:`_pixel_size_in` for many centres at once (``lonlat``: (n, 2) degrees, rounded as the caller wants;
    ``src_crs`` not None): the same polygons and areas, with one pyproj call per step for all of them."""
    import shapely
    from odc.geo.crs import CRS

    cx, cy = CRS("EPSG:4326").transformer_to_crs(CRS(dst_crs))(lonlat[:, 0], lonlat[:, 1])
    h = res / 2
    # odc.geo.geom.box's ring: (left, bottom), (left, top), (right, top), (right, bottom), (left, bottom)
    xs = np.stack([cx - h, cx - h, cx + h, cx + h, cx - h], axis=1)
    ys = np.stack([cy - h, cy + h, cy + h, cy - h, cy - h], axis=1)
    sx, sy = CRS(dst_crs).transformer_to_crs(CRS(src_crs))(xs.ravel(), ys.ravel())
    rings = np.stack([np.reshape(sx, xs.shape), np.reshape(sy, ys.shape)], axis=2)
    with np.errstate(invalid="ignore"):
        return np.sqrt(shapely.area(shapely.polygons(rings)))


class Coarsening:
    """:func:`coarsening` of every item of one load onto ``geobox``, computed per asset key for all items at
    once (a pyproj call per item was most of the time of a 100,000-item graph). ``centres``: each item's
    footprint centroid (lon, lat; NaN where unknown: then computed from the item as :func:`coarsening` does)."""

    def __init__(self, items: list[pystac.Item], geobox: GeoBox, centres: np.ndarray | None = None) -> None:
        self.items, self.geobox = items, geobox
        self.centres = np.full((len(items), 2), np.nan) if centres is None else centres
        self._done: dict[str, np.ndarray] = {}
        self._sizes_in: dict[tuple, np.ndarray] = {}
        self._row = {id(it): n for n, it in enumerate(items)}

    def __call__(self, item: pystac.Item, key: str) -> float | None:
        """How many native pixels of ``item``'s asset ``key`` one output pixel spans (None when unknown)."""
        n = self._row.get(id(item))
        if n is None:
            return coarsening(item, key, self.geobox)
        if key not in self._done:
            self._done[key] = self._compute(key)
        v = float(self._done[key][n])
        return None if v != v else v

    def _compute(self, key: str) -> np.ndarray:
        natives = [_native_res(it, key) if key in it.assets else None for it in self.items]
        sizes = np.array([math.nan if v is None else v[0] for v in natives], dtype="f8")
        crs = np.array([None if v is None else v[1] for v in natives], dtype=object)
        return coarsenings(
            sizes,
            crs,
            self.centres,
            self.geobox,
            lambda n: coarsening(self.items[n], key, self.geobox),
            self._sizes_in,
        )


def coarsenings(
    sizes: np.ndarray,
    crs: np.ndarray,
    centres: np.ndarray,
    geobox: GeoBox,
    single,
    memo: dict | None = None,
) -> np.ndarray:
    """:func:`coarsening` of many scenes' assets at once (NaN where unknown): per scene the native pixel size
    (``sizes``, NaN: unknown) and the CRS it is measured in (``crs``, object array; None: metres, from
    ``gsd``), and ``centres`` ((n, 2) lon/lat, NaN where unknown); one bulk projection per (size, CRS).
    ``single(n)`` computes scene ``n`` alone: sizes from ``gsd``, unknown centres, a failed bulk projection.
    ``memo``: a dict shared by the calls of one load (an output pixel's size in a CRS at the same centres does
    not depend on the asset: 10 m and 20 m bands of one grid project once)."""
    out = np.full(len(sizes), math.nan)
    with np.errstate(invalid="ignore"):
        known = np.isfinite(sizes) & (sizes > 0)
    has_crs = ~np.equal(crs, None).astype(bool)
    bulk = known & has_crs & np.isfinite(centres).all(axis=1)
    for n in np.flatnonzero(known & ~bulk).tolist():  # metres from gsd (geodesic), or no centre known
        v = single(n)
        out[n] = math.nan if v is None else v
    if not bulk.any():
        return out
    rows = np.flatnonzero(bulk)
    names, code = np.unique(crs[rows].astype(str), return_inverse=True)
    dst, res = str(geobox.crs), abs(float(geobox.resolution.x))
    for c, name in enumerate(names.tolist()):
        in_crs = rows[code.reshape(-1) == c]
        for size in np.unique(sizes[in_crs]).tolist():
            group = in_crs[sizes[in_crs] == size]
            at = _round2(centres[group])
            key = (name, dst, res, at.tobytes())
            try:
                got = memo[key] if memo is not None and key in memo else pixel_sizes_in(name, dst, res, at)
                if memo is not None:
                    memo[key] = got
            except Exception:  # noqa: BLE001 (as in coarsening: pyproj raises several types)
                got = np.array([(v or math.nan) * size for v in (single(n) for n in group.tolist())])
            with np.errstate(invalid="ignore"):
                out[group] = np.where(np.isfinite(got), got / size, math.nan)
    return out


def _round2(lonlat: np.ndarray) -> np.ndarray:
    """Python's round(v, 2) (correctly rounded, as :func:`coarsening` keys its cache) of each value: the nearest
    hundredth from the scaled value, and Python's own round where the scaled value is near a tie."""
    x = np.asarray(lonlat, dtype="f8").reshape(-1)
    y = x * 100.0
    out = np.rint(y) / 100.0
    with np.errstate(invalid="ignore"):
        near = ~(np.abs(np.abs(y - np.floor(y)) - 0.5) > 1e-6)
    if near.any():
        out[near] = [round(v, 2) for v in x[near].tolist()]
    return out.reshape(-1, 2)


def resampling_for(
    resampling: str | dict[str, str] | None,
    ref: BandRef,
    item: pystac.Item,
    geobox: GeoBox,
    coarse: Coarsening | None = None,
) -> str:
    """The resampling of band ``ref`` of ``item`` onto ``geobox``: bit-flag layers nearest; class layers nearest,
    or mode when the output is at least 1.5x coarser (never averaged); else the caller's choice (one name, or
    ``{band: name}``); else average when the output is at least 1.5x coarser than the band's native pixels
    (compared in the source CRS), bilinear otherwise. ``coarse``: the load's :class:`Coarsening` (computed for
    all its items at once); without it the item's is computed alone."""
    chosen = None
    if isinstance(resampling, dict):
        chosen = next((resampling[k] for k in (ref.name, ref.key) if k in resampling), None)
    if ref.is_quality:
        if chosen is not None and chosen not in CLASS_RESAMPLING:
            raise LoadError(
                f"resampling {chosen!r} for band {ref.name!r}: it holds classes or bit flags, which must not be "
                f"interpolated; use one of {CLASS_RESAMPLING}"
            )
        if ref.bitfields:
            return "nearest"
        if chosen is not None:
            return chosen
        c = coarse(item, ref.key) if coarse is not None else coarsening(item, ref.key, geobox)
        return "mode" if c is not None and c >= 1.5 else "nearest"
    if chosen is None and isinstance(resampling, str):
        chosen = resampling
    if chosen is not None:
        return chosen
    c = coarse(item, ref.key) if coarse is not None else coarsening(item, ref.key, geobox)
    return "average" if c is not None and c >= 1.5 else "bilinear"


__all__ = [
    "BandRef",
    "CLASS_RESAMPLING",
    "asset_band",
    "asset_crs",
    "check_encoding",
    "coarsening",
    "coarsening_at",
    "coarsenings",
    "encoded",
    "item_date",
    "locate_band",
    "resampling_for",
    "resolve_band",
    "with_user_encoding",
]
