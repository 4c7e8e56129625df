"""Truth and independent references for replayed items (:mod:`replay`).

- :func:`expected`: the analytic field at the output pixel centres and "strict" valid/invalid masks computed by
  the harness itself (nearest source pixel of every item, with a margin in source pixels around every validity
  or mask boundary), so the tests can assert values and NaN without arguing about edge pixels;
- :func:`gdal_reference`: ``rasterio.warp.reproject`` (GDAL's warper) per item, decoded with the item's
  encoding, mosaicked first-valid-wins in (datetime, id) order;
- :func:`odc_reference`: ``odc.stac.load`` (odc-stac 0.5) with ``geobox=`` the same grid, ``resampling=`` the
  same method, ``dtype="float32"`` (source nodata becomes NaN), ``groupby="solar_day"``, nodata/data_type given
  through ``stac_cfg`` where the items are silent (Sentinel-2 on the Planetary Computer), ``raster:bands`` added
  to a copy of a multi-band asset that lacks it (NAIP: odc-stac counts bands only from raster:bands), default
  ``chunks=None`` (eager), no ``patch_url`` (hrefs are local paths); then decoded with the same scale/offset
  (odc-stac does not apply scale/offset itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from rasterio.warp import reproject
from replay import QA_MASK_BITS, SCL_MASK, Field, ReplayAsset, ReplayItem


def centres(gbox: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """x, y (gbox CRS units) of every pixel centre, arrays (y, x)."""
    ny, nx = gbox.shape.yx
    rows, cols = np.mgrid[0:ny, 0:nx].astype("f8") + 0.5
    t = gbox.transform
    return t.c + cols * t.a + rows * t.b, t.f + cols * t.d + rows * t.e


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def lonlat(gbox: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """Longitude, latitude of every output pixel centre."""
    xs, ys = centres(gbox)
    if gbox.crs.geographic:
        return xs, ys
    return _transformer(gbox.crs.to_wkt(), "EPSG:4326").transform(xs, ys)


@lru_cache(maxsize=64)
def _array(path: Path, band: int) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(band)


def source_uv(asset: ReplayAsset, gbox: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (col, row) in the asset's pixels of every output pixel centre."""
    xs, ys = centres(gbox)
    if not CRS.from_user_input(asset.crs).equals(CRS.from_wkt(gbox.crs.to_wkt())):
        xs, ys = _transformer(gbox.crs.to_wkt(), CRS.from_user_input(asset.crs).to_wkt()).transform(xs, ys)
    if CRS.from_user_input(asset.crs).is_geographic:
        # longitudes within 180 degrees of the tile's centre (the W180 DEM tile starts west of -180)
        cx = asset.transform.c + asset.transform.a * asset.shape[1] / 2
        xs = cx + np.mod(xs - cx + 180.0, 360.0) - 180.0
    inv = ~asset.transform
    return inv.a * xs + inv.b * ys + inv.c, inv.d * xs + inv.e * ys + inv.f


def sample(asset: ReplayAsset, u: np.ndarray, v: np.ndarray, band: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(DN of the source pixel containing (u, v), inside) -- nearest, GDAL's convention."""
    h, w = asset.shape
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h) & np.isfinite(u) & np.isfinite(v)
    iu = np.clip(np.floor(np.nan_to_num(u)), 0, w - 1).astype(int)
    iv = np.clip(np.floor(np.nan_to_num(v)), 0, h - 1).astype(int)
    return _array(asset.path, band)[iv, iu], inside


def quality_bad(asset: ReplayAsset, dn: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """True where the quality DN is one of the named classes (the harness's own decoding of SCL / QA_PIXEL)."""
    bad = np.zeros(dn.shape, bool)
    for n in names:
        if asset.kind == "scl" and n in SCL_MASK:
            bad |= np.isin(dn, list(SCL_MASK[n]))
        elif asset.kind == "qa_pixel" and n in QA_MASK_BITS:
            bad |= (dn.astype(np.int64) >> QA_MASK_BITS[n]) & 1 == 1
    return bad


def footprint_px(u: np.ndarray, v: np.ndarray) -> float:
    """How many source pixels one output pixel spans (the larger axis, median over the grid)."""
    spans = [np.abs(np.diff(c, axis=ax)) for c in (u, v) for ax in (0, 1) if c.shape[ax] > 1]
    return float(max(np.nanmedian(s) for s in spans)) if spans else 1.0


def _ok(r: ReplayItem, key: str, gbox: GeoBox, band: int, mask: Sequence[str], margin: float) -> tuple:
    """(all-ok, all-not-ok) over offsets of +-margin source pixels (grown by 3/4 of an output pixel's footprint):
    strict validity of one item at every output pixel."""
    a = r.assets[key]
    u, v = source_uv(a, gbox)
    margin = margin + 0.75 * footprint_px(u, v)  # half an output pixel, rotated: up to sqrt(2)/2 of it
    qa = next((q for q in r.assets.values() if q.kind in ("scl", "qa_pixel")), None) if mask else None
    qu, qv = source_uv(qa, gbox) if qa is not None else (None, None)
    all_ok = np.ones(u.shape, bool)
    none_ok = np.ones(u.shape, bool)
    offs = sorted({-margin, 0.0, margin})
    for du in offs:
        for dv in offs:
            dn, inside = sample(a, u + du, v + dv, band)
            ok = inside & (dn != a.encoding.nodata if a.encoding.nodata is not None else True)
            if np.issubdtype(dn.dtype, np.floating):
                ok &= np.isfinite(dn)
            if qa is not None:
                # quality offsets in the quality asset's own pixels (its pixel size may differ)
                f = abs(a.transform.a / qa.transform.a)
                qdn, qin = sample(qa, qu + du * f, qv + dv * f)
                ok &= ~(qin & quality_bad(qa, qdn, mask))
            all_ok &= ok
            none_ok &= ~ok
    return all_ok, none_ok


def expected(
    replays: Sequence[ReplayItem],
    key: str,
    gbox: GeoBox,
    *,
    band: int = 1,
    mask: Sequence[str] = (),
    margin: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth, strict_valid, strict_invalid) of asset ``key`` (band ``band``) on ``gbox``.

    truth: the field at the output pixel centres (physical units); strict_valid: some item is valid and unmasked
    within ``margin`` source pixels all around; strict_invalid: no item is valid or unmasked anywhere in that
    neighbourhood (there the cube must be NaN).
    """
    valid = np.zeros(gbox.shape.yx, bool)
    invalid = np.ones(gbox.shape.yx, bool)
    for r in replays:
        if key not in r.assets:
            continue
        all_ok, none_ok = _ok(r, key, gbox, band, mask, margin)
        valid |= all_ok
        invalid &= none_ok
    p = replays[0].product.field
    fld = Field(p.base, p.amp, p.wavelength_m * (1 + 0.25 * (band - 1)))
    lon, lat = lonlat(gbox)
    return fld(lon, lat), valid, invalid


def nearest_source_values(replays: Sequence[ReplayItem], key: str, gbox: GeoBox, band: int = 1) -> np.ndarray:
    """Decoded value of the first item (mosaic order) whose source pixel contains each output centre (NaN where
    none): what a nearest-neighbour load must return."""
    out = np.full(gbox.shape.yx, np.nan)
    for r in sorted(
        replays, key=lambda r: (r.item.datetime or r.item.common_metadata.start_datetime, r.item.id)
    ):
        a = r.assets[key]
        dn, inside = sample(a, *source_uv(a, gbox), band)
        vals = np.where(inside, a.encoding.decode(dn), np.nan)
        out = np.where(np.isnan(out), vals, out)
    return out


def _order(replays: Sequence[ReplayItem]) -> list[ReplayItem]:
    return sorted(
        replays, key=lambda r: (r.item.datetime or r.item.common_metadata.start_datetime, r.item.id)
    )


def gdal_reference(
    replays: Sequence[ReplayItem],
    key: str,
    gbox: GeoBox,
    resampling: str,
    *,
    band: int = 1,
    mask: Sequence[str] = (),
) -> np.ndarray:
    """GDAL's answer: each item warped with ``rasterio.warp.reproject`` (source nodata honoured), decoded with its
    encoding, masked by its quality layer (warped nearest, decoded by the harness), first valid item wins."""
    out = np.full(gbox.shape.yx, np.nan, dtype="f8")
    dst_crs = gbox.crs.to_wkt()
    for r in _order(replays):
        a = r.assets[key]
        dst = np.full(gbox.shape.yx, np.nan, dtype="f4")
        with rasterio.open(a.path) as src:
            reproject(
                source=rasterio.band(src, band),
                destination=dst,
                src_nodata=a.encoding.nodata,
                dst_nodata=np.nan,
                dst_transform=gbox.transform,
                dst_crs=dst_crs,
                resampling=Resampling[resampling],
            )
        vals = dst.astype("f8") * a.encoding.scale + a.encoding.offset
        qa = next((q for q in r.assets.values() if q.kind in ("scl", "qa_pixel")), None) if mask else None
        if qa is not None:
            q = np.zeros(gbox.shape.yx, dtype=qa.encoding.dtype)
            with rasterio.open(qa.path) as src:
                reproject(
                    source=rasterio.band(src, 1),
                    destination=q,
                    src_nodata=None,
                    dst_transform=gbox.transform,
                    dst_crs=dst_crs,
                    resampling=Resampling.nearest,
                )
            vals = np.where(quality_bad(qa, q, mask), np.nan, vals)
        out = np.where(np.isnan(out), vals, out)
    return out


def odc_stac_cfg(replays: Sequence[ReplayItem]) -> dict:
    """odc-stac ``stac_cfg`` giving nodata and data type where the items carry no raster:bands."""
    cfg: dict = {}
    for r in replays:
        for k, a in r.assets.items():
            if not r.item.assets[k].extra_fields.get("raster:bands") and a.encoding.count == 1:
                entry = {"data_type": a.encoding.dtype}
                if a.encoding.nodata is not None:
                    entry["nodata"] = a.encoding.nodata
                cfg.setdefault(r.item.collection_id, {"assets": {}})["assets"][k] = entry
    return cfg


def odc_reference(
    replays: Sequence[ReplayItem], key: str, gbox: GeoBox, resampling: str, *, band: int = 1
) -> np.ndarray:
    """odc-stac's answer for one asset (band ``band`` of a multi-band asset: odc-stac's ``key.band`` name) on
    ``gbox``: first solar day, decoded with the asset's scale/offset (odc-stac does not apply them).

    odc-stac counts an asset's bands from ``raster:bands`` only; a multi-band asset without it (NAIP ``image``)
    gets one ``raster:bands`` entry per ``eo:bands`` entry on a copy of the item, so that odc-stac sees 4 bands."""
    import odc.stac

    count = replays[0].assets[key].encoding.count
    name = f"{key}.{band}" if count > 1 else key
    items = []
    for r in replays:
        it = r.item
        if count > 1 and not it.assets[key].extra_fields.get("raster:bands"):
            it = it.clone()
            dtype = r.assets[key].encoding.dtype
            it.assets[key].extra_fields["raster:bands"] = [{"data_type": dtype} for _ in range(count)]
        items.append(it)
    ds = odc.stac.load(
        items,
        bands=[name],
        geobox=gbox,
        resampling=resampling,
        dtype="float32",
        groupby="solar_day",
        stac_cfg=odc_stac_cfg(replays),
        fail_on_error=True,
    )
    enc = replays[0].assets[key].encoding
    return ds[name].values[0].astype("f8") * enc.scale + enc.offset
