"""Items -> a lazy, masked, mosaicked, analysis-ready cube on a common grid.

Order of operations per band (what makes the mosaic right): read each scene reprojected onto the output grid
(odc-stac, nearest for quality bands, bilinear or average for reflectance), set nodata to NaN, apply scale/offset
(float32 reflectance), mask with the scene's own quality layer, and only then mosaic the scenes of one solar day,
taking the first valid observation. A cloudy pixel of one tile therefore never hides a clear pixel of the
overlapping tile of the same pass.
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
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry

from pipeline.errors import LoadError
from pipeline.grid import output_grid
from pipeline.masks import DEFAULT_MASK, dilate, mask_from_qa_pixel, mask_from_scl

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


def _check_items(items: list[pystac.Item], on_error: str) -> tuple[list[pystac.Item], list[str]]:
    """Drop items whose local assets are missing (on_error="skip") or raise LoadError ("fail")."""
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
) -> xr.Dataset:
    """Load ``bands`` of ``items`` into a lazy cube on one grid.

    Returns an ``xarray.Dataset`` with one float32 variable per requested band (named as requested: asset key
    like ``B04`` or common name like ``red``), dims ``(time, y, x)`` with ``y`` decreasing, surface reflectance
    after scale/offset, NaN where nodata or masked; coordinate ``spatial_ref`` carries the CRS (CF grid mapping).
    The grid is ``geobox``, or one built by :func:`pipeline.grid.output_grid` from ``crs``, ``resolution`` (CRS
    units) and ``aoi``. ``mask`` names quality classes to remove (see :mod:`pipeline.masks`), grown by
    ``dilate_m`` metres. ``groupby="solar_day"`` mosaics the scenes of one pass; ``"time"`` keeps every scene.
    ``chunks`` defaults to 512 x 512 pixels with the whole time axis per chunk. ``on_error="skip"`` skips scenes
    whose assets are missing and lists them in ``attrs["skipped_items"]``.
    """
    import odc.stac

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
    items, skipped = _check_items(items, on_error)
    if not items:
        raise LoadError(f"every item was skipped ({len(skipped)}): none of their assets could be opened")
    if geobox is None:
        geobox = output_grid(items, crs=crs, resolution=resolution, aoi=aoi, bands=list(bands))
    extent = geobox.extent.to_crs(4326)
    items = [it for it in items if Geometry(it.geometry, crs=4326).intersects(extent)]
    if not items:
        raise LoadError(
            f"the AOI/grid (lon/lat bounds {tuple(round(v, 5) for v in extent.boundingbox)}) intersects no item; "
            "check the AOI and its CRS or search the catalog with this AOI"
        )
    chunks = {"y": 512, "x": 512, **(chunks or {})}
    # one group per collection: each has its own asset keys and quality layer
    groups: dict[str | None, list[pystac.Item]] = {}
    for it in items:
        groups.setdefault(it.collection_id, []).append(it)
    parts = []
    for coll, its in groups.items():
        refs = [resolve_band(its[0], b) for b in bands]
        qref = quality_band(its[0]) if mask else None
        if mask and qref is None:
            raise LoadError(
                f"collection {coll!r} has no quality band (SCL or QA_PIXEL) to apply mask={list(mask)}; pass mask=None"
            )
        keys = list(dict.fromkeys([r.key for r in refs] + ([qref.key] if qref else [])))
        res_map = {
            r.key: ("nearest" if r.is_quality else _reflectance_resampling(resampling, r, geobox))
            for r in refs
        }
        if qref:
            res_map[qref.key] = "nearest"
        raw = odc.stac.load(
            its, bands=keys, geobox=geobox, groupby="id", chunks={"time": 1, **chunks}, resampling=res_map
        )
        raw = raw.sortby("time")
        ids = [it.id for it in sorted(its, key=lambda i: (i.datetime, i.id))]
        day = xr.DataArray(
            [solar_day(it) for it in sorted(its, key=lambda i: (i.datetime, i.id))], dims="time"
        )
        bad = None
        if qref:
            q = raw[qref.key]
            bad = mask_from_scl(q, mask) if qref.key.upper() == "SCL" else mask_from_qa_pixel(q, mask)
            if dilate_m > 0:
                res = abs(geobox.resolution.x)
                bad = xr.apply_ufunc(
                    dilate,
                    bad,
                    kwargs={"dilate_m": dilate_m, "resolution": res},
                    dask="parallelized",
                    output_dtypes=[bool],
                )
        out = {}
        for r in refs:
            v = raw[r.key]
            valid = v != r.nodata if r.nodata is not None else v.notnull()
            if r.is_quality:
                data = v.where(valid).astype("float32")
            else:
                data = (v.astype("float32") * np.float32(r.scale) + np.float32(r.offset)).where(valid)
            if bad is not None and not r.is_quality:
                data = data.where(~bad)
            out[r.name] = data
        ds = xr.Dataset(out).assign_coords(item_id=("time", ids), solar_day=day)
        parts.append(ds)
    ds = xr.concat(parts, dim="time") if len(parts) > 1 else parts[0]
    if groupby == "solar_day":
        ds = ds.drop_vars("item_id").groupby("solar_day").first(skipna=True).rename(solar_day="time")
    else:
        ds = ds.drop_vars("solar_day")
    ds = ds.sortby("time").chunk({"time": -1, "y": chunks["y"], "x": chunks["x"]})
    for name in ds.data_vars:
        ds[name].attrs = {"units": "1", "grid_mapping": "spatial_ref"}
    ds = ds.odc.assign_crs(geobox.crs)
    ds.attrs.update(
        items=[it.id for it in items],
        skipped_items=skipped,
        masked_classes=list(mask or []),
        groupby=groupby,
    )
    return ds


def _reflectance_resampling(resampling, ref: BandRef, geobox: GeoBox) -> str:
    if isinstance(resampling, str):
        return resampling
    if isinstance(resampling, dict) and ref.name in resampling:
        return resampling[ref.name]
    if isinstance(resampling, dict) and ref.key in resampling:
        return resampling[ref.key]
    return "bilinear"
