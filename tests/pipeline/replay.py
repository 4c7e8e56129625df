"""Replay of real STAC items: small local rasters written exactly on each asset's real grid, filled with an
analytic field of longitude/latitude, so the right value at any output pixel centre is known.

The items in ../shared/data/real-stac-items are real Planetary Computer metadata (see its README). For each
item, :func:`replay` takes a window of the asset's real pixel grid (same CRS, origin alignment, pixel size,
dtype, nodata; the window is aligned to the coarsest written asset so every band covers the same ground),
writes a tiled GeoTIFF with internal overviews (COG-like) per asset, and rewrites the item consistently:
hrefs, ``proj:shape``/``proj:transform``/``proj:bbox`` (where the item keeps them: on the asset or on the item,
6- or 9-element transforms as the original), ``bbox`` and ``geometry`` (split at the antimeridian, bbox -180..180
as the Planetary Computer does). Assets that were not written are dropped.

Values: reflectance-like bands hold ``round((f(lon, lat) - offset) / scale)`` in the band's dtype, where
``f`` is :class:`Field` (smooth on the sphere, so continuous across the antimeridian and at the poles) and
scale/offset are what the item says (raster:bands) or what the product encodes when the item is silent
(Sentinel-2 L2A baseline >= 04.00: DN / 10000 - 0.1). Quality layers and nodata are planted in known boxes
(fractions of the window): :data:`NODATA_BOX` (nodata in every band, fill in QA_PIXEL, 0 in SCL),
:data:`CLOUD_BOX` and :data:`SHADOW_BOX`. Land cover holds classes of ``file:values`` from thresholds of ``f``.

Truth on any output grid (:func:`expected`): the field at the output pixel centres, where at least one item
is valid (nearest-source-pixel sense) and unmasked, and "strict" masks that keep away from every validity
boundary by a margin (in source pixels), so NaN/valid can be asserted without arguing about edge pixels.

References the project did not write: :func:`gdal_reference` (``rasterio.warp.reproject`` per item, decoded
and mosaicked first-valid-wins in (datetime, id) order) and :func:`odc_reference` (``odc.stac.load``).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pystac
import rasterio
from affine import Affine
from odc.geo.geom import box
from pyproj import CRS, Transformer
from rasterio.enums import Resampling

REAL_ITEMS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real-stac-items"
EARTH_RADIUS_M = 6_371_000.0

#: planted boxes, (row0, row1, col0, col1) as fractions of the window
NODATA_BOX = (0.8, 1.0, 0.0, 0.3)
CLOUD_BOX = (0.1, 0.35, 0.55, 0.85)
SHADOW_BOX = (0.45, 0.6, 0.1, 0.35)
SCL_VALUES = {"base": 4, "cloud": 9, "shadow": 3, "nodata": 0}
QA_CLEAR = 21824  # Landsat C2 QA_PIXEL of clear land (clear bit 6 + low confidences), as USGS writes it
QA_VALUES = {"base": QA_CLEAR, "cloud": 22280, "shadow": 23888, "nodata": 1}  # cloud: bits 1+3; shadow: bit 4
#: what the harness itself takes each mask name to mean (independent of orbitcube.pipeline.masks)
SCL_MASK = {"cloud": {8, 9}, "shadow": {3}, "nodata": {0}, "cirrus": {10}, "saturated": {1}}
QA_MASK_BITS = {
    "cloud": 3,
    "shadow": 4,
    "cloud_shadow": 4,
    "nodata": 0,
    "fill": 0,
    "cirrus": 2,
    "dilated_cloud": 1,
}


@dataclass(frozen=True)
class Field:
    """A smooth field on the sphere: ``base + amp * (0.6 sin(k1.p + 0.3) + 0.4 cos(k2.p + 1.1))`` with ``p``
    the unit vector of (lon, lat) and wave vectors of length 2 pi R / wavelength_m (two directions)."""

    base: float
    amp: float
    wavelength_m: float

    def __call__(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        lam, phi = np.radians(lon), np.radians(lat)
        p = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])
        k = 2 * math.pi * EARTH_RADIUS_M / self.wavelength_m
        k1 = np.array([0.6, 0.3, 0.74]) / np.linalg.norm([0.6, 0.3, 0.74])
        k2 = np.array([-0.5, 0.8, 0.33]) / np.linalg.norm([-0.5, 0.8, 0.33])
        a = k * np.tensordot(k1, p, axes=1)
        b = k * np.tensordot(k2, p, axes=1)
        return self.base + self.amp * (0.6 * np.sin(a + 0.3) + 0.4 * np.cos(b + 1.1))


@dataclass(frozen=True)
class Product:
    """How one collection's items are replayed: which assets, which field, window size, sites."""

    file: str
    assets: tuple[str, ...]
    field: Field
    window_px: int
    """Window size in pixels of the coarsest written asset."""
    sites: tuple[tuple[float, float], ...]
    """(lon, lat) window centres: an item's window is centred on the first site inside its footprint."""
    tol: float
    """Tolerance of interpolated values against the truth (p99), in physical units."""
    kinds: dict = field(default_factory=dict)
    """Asset key -> 'scl', 'qa_pixel' or 'classes' (default: 'field')."""


PRODUCTS: dict[str, Product] = {
    "sentinel-2-l2a": Product(
        "sentinel-2-l2a-pc.json",
        ("B04", "B08", "B11", "SCL"),
        Field(0.25, 0.15, 2500.0),
        120,
        ((96.9, 81.5), (95.5, 81.9), (94.3, 80.126)),
        0.005,
        {"SCL": "scl"},
    ),
    "landsat-c2-l2": Product(
        "landsat-c2-l2-pc.json",
        ("red", "nir08", "qa_pixel"),
        Field(0.25, 0.15, 6000.0),
        160,
        ((149.8, -39.6), (150.0, -42.7)),
        0.005,
        {"qa_pixel": "qa_pixel"},
    ),
    "sentinel-1-rtc": Product(
        "sentinel-1-rtc-pc.json",
        ("vv", "vh"),
        Field(0.12, 0.08, 2500.0),
        200,
        ((16.851829742732065, 32.0407402721077),),
        0.08 * 0.005 / 0.15,
    ),
    "cop-dem-glo-30": Product(
        "cop-dem-glo-30-pc.json",
        ("data",),
        Field(2800.0, 300.0, 4000.0),
        360,
        ((-179.5, -89.9), (-178.5, -89.9), (-177.5, -89.9), (-176.5, -89.9)),
        300.0 * 0.005 / 0.15,
    ),
    "naip": Product(
        "naip-pc.json",
        ("image",),
        Field(128.0, 80.0, 60.0),
        240,
        ((-65.7488, 18.22), (-65.5625, 18.34)),
        80.0 * 0.005 / 0.15,
    ),
    "io-lulc-annual-v02": Product(
        "io-lulc-annual-v02-pc.json",
        ("data",),
        Field(0.5, 0.5, 1500.0),
        240,
        ((180.0, 68.0), (180.0, 60.0), (180.0, 52.0), (180.0, 4.0)),
        0.0,
        {"data": "classes"},
    ),
}


@lru_cache(maxsize=8)
def real_items(collection: str) -> tuple[dict, ...]:
    """The real items of ``collection`` (a key of :data:`PRODUCTS`), as JSON dicts."""
    return tuple(json.loads((REAL_ITEMS / PRODUCTS[collection].file).read_text()))


@dataclass(frozen=True)
class Encoding:
    """How physical values are stored in one asset: DN dtype, nodata, physical = DN * scale + offset."""

    dtype: str
    nodata: float | None
    scale: float = 1.0
    offset: float = 0.0
    count: int = 1

    def encode(self, phys: np.ndarray) -> np.ndarray:
        dn = (phys - self.offset) / self.scale
        dt = np.dtype(self.dtype)
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            dn = np.clip(np.round(dn), info.min, info.max)
            if self.nodata is not None:  # never write the nodata value as data
                dn = np.where(dn == self.nodata, dn + (1 if self.nodata < info.max else -1), dn)
        return dn.astype(dt)

    def decode(self, dn: np.ndarray) -> np.ndarray:
        """Physical values in float64 (NaN where nodata)."""
        out = dn.astype("f8") * self.scale + self.offset
        if self.nodata is not None:
            out = np.where(dn == self.nodata, np.nan, out)
        return out


def _s2_offset(item: dict) -> float:
    baseline = item["properties"].get("s2:processing_baseline", "00.00")
    return -0.1 if tuple(int(v) for v in baseline.split(".")) >= (4, 0) else 0.0


def encoding_of(item: dict, key: str) -> Encoding:
    """The asset's encoding as the real product stores it: raster:bands where the item has it, else what the
    product is known to write (Sentinel-2 L2A: uint16, nodata 0, DN/10000 + offset by baseline)."""
    asset = item["assets"][key]
    rb = (asset.get("raster:bands") or [{}])[0]
    coll = item.get("collection")
    count = max(len(asset.get("eo:bands") or []), 1)
    if coll == "sentinel-2-l2a":
        if key == "SCL":
            return Encoding("uint8", 0)
        return Encoding("uint16", 0, 1e-4, _s2_offset(item))
    if coll == "cop-dem-glo-30":
        return Encoding(rb.get("data_type", "float32"), rb.get("nodata"))
    if coll == "naip":
        return Encoding("uint8", None, count=count)
    dtype = rb.get("data_type", "uint8")
    nodata = rb.get("nodata")
    nodata = float(nodata) if isinstance(nodata, str) else nodata  # STAC spells NaN "nan"
    return Encoding(dtype, nodata, float(rb.get("scale", 1.0)), float(rb.get("offset", 0.0)), count)


def classes_of(item: dict, key: str = "data") -> list[int]:
    """The class values an asset's ``file:values`` / ``classification:classes`` name (nodata excluded)."""
    asset = item["assets"][key]
    nodata = (asset.get("raster:bands") or [{}])[0].get("nodata")
    vals = [v for fv in asset.get("file:values", []) for v in fv["values"]]
    vals += [c["value"] for c in asset.get("classification:classes", [])]
    return sorted({int(v) for v in vals} - {nodata})


# ----- grids -------------------------------------------------------------------------------------------------------
def _proj(item: dict, key: str) -> tuple[str, Affine, tuple[int, int], bool]:
    """(CRS, transform, (rows, cols), on_asset) of an asset's real grid (asset-level proj wins over the item's)."""
    a, p = item["assets"][key], item["properties"]
    code = a.get("proj:code") or p.get("proj:code")
    epsg = a.get("proj:epsg") or p.get("proj:epsg")
    crs = code or f"EPSG:{epsg}"
    on_asset = "proj:transform" in a
    tr = a.get("proj:transform") or p["proj:transform"]
    shape = a.get("proj:shape") or p["proj:shape"]
    return crs, Affine(*tr[:6]), (int(shape[0]), int(shape[1])), on_asset


@dataclass(frozen=True)
class ReplayAsset:
    """One written asset: where, on which grid, how encoded, what kind of values."""

    key: str
    path: Path
    crs: str
    transform: Affine
    shape: tuple[int, int]
    encoding: Encoding
    kind: str

    def read(self, band: int = 1) -> np.ndarray:
        with rasterio.open(self.path) as src:
            return src.read(band)


@dataclass
class ReplayItem:
    """A replayed item (pystac, hrefs to local files) and its written assets."""

    item: pystac.Item
    assets: dict[str, ReplayAsset]
    product: Product
    source: dict
    """The real item as the Planetary Computer served it."""


def _window(item: dict, product: Product, shift: int = 0) -> tuple[str, tuple[float, float, float, float]]:
    """CRS and extent (x0, y0, x1, y1) of the item's window: ``window_px`` pixels of its coarsest written asset,
    centred on the first site inside its footprint, moved by ``shift`` pixels down and right (so overlapping
    items overlap partially), kept inside the raster, aligned to that asset's pixels."""
    from shapely.geometry import Point, shape

    grids = [_proj(item, k) for k in product.assets]
    crs, tr, (h, w), _ = max(grids, key=lambda g: abs(g[1].a))
    geom = shape(item["geometry"])
    to_item = Transformer.from_crs(4326, crs, always_xy=True)
    col, row = (w / 2, h / 2)  # fallback: the raster's centre
    for site in product.sites:
        c, r = ~tr * to_item.transform(*site)
        on_raster = np.isfinite(c) and np.isfinite(r) and 0 <= c < w and 0 <= r < h
        # a site on the antimeridian is tested against the raster only (footprints are split there)
        if on_raster and (abs(site[0]) == 180 or geom.contains(Point(site))):
            col, row = c, r
            break
    n = product.window_px
    c0 = int(min(max(round(col - n / 2) + shift, 0), max(w - n, 0)))
    r0 = int(min(max(round(row - n / 2) + shift, 0), max(h - n, 0)))
    c1, r1 = min(c0 + n, w), min(r0 + n, h)
    x0, y0 = tr @ (c0, r0)
    x1, y1 = tr @ (c1, r1)
    return crs, (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _boxes(
    shape: tuple[int, int], boxes: dict[str, tuple[float, float, float, float]]
) -> dict[str, np.ndarray]:
    h, w = shape
    out = {}
    for name, (r0, r1, c0, c1) in boxes.items():
        m = np.zeros(shape, bool)
        m[round(r0 * h) : round(r1 * h), round(c0 * w) : round(c1 * w)] = True
        out[name] = m
    return out


def pixel_lonlat(crs: str, transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (degrees) of every pixel centre of a grid, arrays of ``shape`` (rows, cols)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype("f8") + 0.5
    xs = transform.c + cols * transform.a + rows * transform.b
    ys = transform.f + cols * transform.d + rows * transform.e
    if CRS.from_user_input(crs).is_geographic:
        return xs, ys
    return Transformer.from_crs(crs, 4326, always_xy=True).transform(xs, ys)


def _values(kind: str, enc: Encoding, lon, lat, fld: Field, classes: list[int], boxes) -> np.ndarray:
    """DN of one band of one asset (without nodata/quality planting for field bands)."""
    if kind == "scl":
        q = np.full(lon.shape, SCL_VALUES["base"], enc.dtype)
    elif kind == "qa_pixel":
        q = np.full(lon.shape, QA_VALUES["base"], enc.dtype)
    elif kind == "classes":
        f = np.clip((fld(lon, lat) - (fld.base - fld.amp)) / (2 * fld.amp), 0, 0.999999)
        return np.asarray(classes, enc.dtype)[(f * len(classes)).astype(int)]
    else:
        return enc.encode(fld(lon, lat))
    table = SCL_VALUES if kind == "scl" else QA_VALUES
    for name in ("cloud", "shadow", "nodata"):
        q[boxes[name]] = table[name]
    return q


def _write(path: Path, data: np.ndarray, crs: str, transform: Affine, nodata, nearest: bool) -> None:
    count, h, w = data.shape
    profile = dict(
        driver="GTiff",
        width=w,
        height=h,
        count=count,
        dtype=data.dtype,
        crs=CRS.from_user_input(crs).to_wkt(),
        transform=transform,
        nodata=nodata,
        tiled=True,
        blockxsize=64,
        blockysize=64,
        compress="deflate",
        interleave="pixel" if count > 1 else "band",
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        factors = [f for f in (2, 4) if min(h, w) // f >= 16]
        if factors:
            method = Resampling.nearest if nearest else Resampling.average
            dst.build_overviews(factors, method)
            dst.update_tags(ns="rio_overview", resampling=method.name)


def _footprint(crs: str, extent: tuple[float, float, float, float]) -> tuple[dict, list[float]]:
    """GeoJSON geometry (split at the antimeridian) and bbox (-180..180 when split) of an extent."""
    g = box(*extent, crs=crs)
    if CRS.from_user_input(crs).is_geographic:
        geo = g
    else:
        step = max(extent[2] - extent[0], extent[3] - extent[1]) / 16
        geo = g.to_crs(4326, resolution=step, wrapdateline=True)
    gj = geo.json
    w, s, e, n = geo.boundingbox
    if gj["type"] == "MultiPolygon":
        w, e = -180.0, 180.0
    return gj, [w, s, e, n]


def _write_asset(
    d: dict,
    key: str,
    product: Product,
    out_dir: Path,
    grid: tuple[str, Affine, tuple[int, int]],
    on_asset: bool,
) -> ReplayAsset:
    """Write asset ``key`` of item dict ``d`` on ``grid`` (CRS, transform, shape) and rewrite its href and proj
    fields (on the asset or on the item, where the item keeps them; 6 or 9 transform elements as before)."""
    crs, tr, shape = grid
    enc = encoding_of(d, key)
    kind = product.kinds.get(key, "field")
    lon, lat = pixel_lonlat(crs, tr, shape)
    boxes = _boxes(shape, {"nodata": NODATA_BOX, "cloud": CLOUD_BOX, "shadow": SHADOW_BOX})
    classes = classes_of(d, key) if kind == "classes" else []
    bands = []
    for b in range(enc.count):
        fld = Field(product.field.base, product.field.amp, product.field.wavelength_m * (1 + 0.25 * b))
        v = _values(kind, enc, lon, lat, fld, classes, boxes)
        if kind in ("field", "classes") and enc.nodata is not None:
            v = np.where(boxes["nodata"], np.asarray(enc.nodata).astype(v.dtype), v)
        bands.append(v)
    path = out_dir / f"{d['id']}_{key}.tif"
    _write(path, np.stack(bands), crs, tr, enc.nodata, kind != "field")
    asset = d["assets"][key]
    asset["href"] = str(path)
    target = asset if on_asset else d["properties"]
    ntr = list(tr)[:6]
    old_tr = target.get("proj:transform")
    target["proj:transform"] = ntr + [0.0, 0.0, 1.0] if old_tr and len(old_tr) == 9 else ntr
    target["proj:shape"] = list(shape)
    if "proj:bbox" in target:
        target["proj:bbox"] = [tr.c, tr.f + shape[0] * tr.e, tr.c + shape[1] * tr.a, tr.f]
    target.pop("proj:centroid", None)
    return ReplayAsset(key, path, crs, tr, shape, enc, kind)


def replay(item_dict: dict, out_dir: Path, shift: int = 0) -> ReplayItem:
    """Write the item's assets (of its product in :data:`PRODUCTS`) on a window of their real grids under
    ``out_dir`` and return the rewritten item (window moved by ``shift`` pixels, see :func:`_window`).
    Deterministic: same item, same files."""
    product = PRODUCTS[item_dict["collection"]]
    d = copy.deepcopy(item_dict)
    d["links"] = []
    crs_w, extent = _window(d, product, shift)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, ReplayAsset] = {}
    for key in product.assets:
        crs, tr, _shape, on_asset = _proj(d, key)
        c0, r0 = ~tr @ (extent[0], extent[3])
        c1, r1 = ~tr @ (extent[2], extent[1])
        c0, r0, c1, r1 = (round(v) for v in (c0, r0, c1, r1))
        new_tr = tr @ Affine.translation(c0, r0)
        if not CRS.from_user_input(crs).is_geographic:  # no float noise in projected origins (micrometres)
            new_tr = Affine(new_tr.a, new_tr.b, round(new_tr.c, 6), new_tr.d, new_tr.e, round(new_tr.f, 6))
        written[key] = _write_asset(d, key, product, out_dir, (crs, new_tr, (r1 - r0, c1 - c0)), on_asset)
    d["assets"] = {k: v for k, v in d["assets"].items() if k in written}
    d["geometry"], d["bbox"] = _footprint(crs_w, extent)
    item = pystac.Item.from_dict(d, preserve_dict=False)
    return ReplayItem(item, written, product, item_dict)


def synthetic_scene(
    out_dir: Path,
    *,
    item_id: str,
    collection: str,
    when: str,
    grid: tuple[str, Affine, tuple[int, int]],
    raster_band: dict,
    fld: Field,
    key: str = "red",
) -> ReplayItem:
    """A scene on any grid (CRS, transform, (rows, cols)) built from the real Landsat C2 L2 item's metadata
    (item-level proj, eo:bands), with ``raster_band`` (data_type, nodata, scale, offset as STAC spells them,
    nodata "nan" as a string) as its only raster:bands entry: for property tests over what real data varies."""
    d = copy.deepcopy(real_items("landsat-c2-l2")[0])
    d.update(id=item_id, collection=collection, links=[])
    d["properties"]["datetime"] = when
    d["properties"].pop("proj:epsg", None)
    d["properties"]["proj:code"] = grid[0]
    d["assets"] = {key: {**d["assets"][key], "raster:bands": [raster_band]}}
    product = Product("", (key,), fld, 0, (), 0.005)
    out_dir.mkdir(parents=True, exist_ok=True)
    asset = _write_asset(d, key, product, out_dir, grid, on_asset=False)
    (h, w), tr = grid[2], grid[1]
    x0, y0 = tr @ (0, h)
    x1, y1 = tr @ (w, 0)
    d["geometry"], d["bbox"] = _footprint(grid[0], (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return ReplayItem(pystac.Item.from_dict(d, preserve_dict=False), {key: asset}, product, d)


def replay_collection(collection: str, out_dir: Path, which: list[int] | None = None) -> list[ReplayItem]:
    """:func:`replay` of every real item of ``collection`` (or those at the indices ``which``); odd items'
    windows are moved by a third of the window, so items of one site overlap partially."""
    items = real_items(collection)
    idx = range(len(items)) if which is None else which
    n = PRODUCTS[collection].window_px
    return [replay(items[i], out_dir / collection, (i % 2) * (n // 3)) for i in idx]
