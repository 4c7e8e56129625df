"""Real STAC items, right pixels (issue 13): the Planetary Computer items of ../shared/data/real-stac-items
replayed on windows of their real grids (tests/pipeline/replay.py) and loaded with ``pipeline.load_cube`` onto
native, finer, coarser, other-UTM, geographic and polar grids, compared with

- the analytic truth (the field at every output pixel centre): native loads exact, off-grid p99 within the
  product's tolerance (0.005 reflectance; the same fraction of the field's amplitude for other products),
  no NaN where some item is strictly valid, NaN where none is;
- GDAL (``rasterio.warp.reproject``, same resampling) and odc-stac (``odc.stac.load``: same grid, same
  resampling, dtype float32, groupby solar_day, nodata/data type by stac_cfg where the items are silent,
  scale/offset applied afterwards since odc-stac does not apply them).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from odc.geo import resxy_
from odc.geo.geobox import GeoBox
from odc.geo.geom import box
from pyproj import CRS, Transformer
from replay import PRODUCTS, ReplayItem, classes_of
from replay_refs import (
    expected,
    gdal_reference,
    nearest_source_values,
    odc_reference,
    quality_bad,
    sample,
    source_uv,
)

from orbitcube.pipeline.load import load_cube


def union_grid(replays: list[ReplayItem], key: str, crs: str, res, *, shrink: float = 0.0) -> GeoBox:
    """A north-up grid of ``res`` (metres/degrees, or an odc-geo Resolution) in ``crs`` over the union of the
    items' windows of asset ``key`` (shrunk by ``shrink`` CRS units on every side)."""
    geoms = []
    for r in replays:
        a = r.assets[key]
        h, w = a.shape
        x0, y1 = a.transform @ (0, 0)
        x1, y0 = a.transform @ (w, h)
        g = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), crs=a.crs)
        geoms.append(g.to_crs(crs, resolution=abs(a.transform.a) * 8))
    u = geoms[0]
    for g in geoms[1:]:
        u = u | g
    if shrink:
        u = u.buffer(-shrink)
    return GeoBox.from_geopolygon(u, resolution=res, crs=crs)


def native_grid(r: ReplayItem, key: str) -> GeoBox:
    """The asset's own window grid."""
    a = r.assets[key]
    return GeoBox(a.shape, a.transform, a.crs)


def errors(values: np.ndarray, truth: np.ndarray, where: np.ndarray) -> np.ndarray:
    return np.abs(values[where] - truth[where])


def assert_truth(ds, band, replays, key, gbox, *, idx=1, mask=(), tol=None, what=""):
    """Values within the product's tolerance (p99) of the field where some item is strictly valid; no NaN there;
    NaN where no item is."""
    tol = replays[0].product.tol if tol is None else tol
    truth, valid, invalid = expected(replays, key, gbox, band=idx, mask=mask)
    got = ds[band].isel(time=0).values.astype("f8")
    assert valid.sum() > 100, (
        f"{what}: test grid barely overlaps the items ({valid.sum()} strictly valid pixels)"
    )
    nan_inside = np.isnan(got[valid])
    assert not nan_inside.any(), (
        f"{what}: {nan_inside.sum()} of {valid.sum()} pixels inside the valid footprints are NaN "
        f"({100 * nan_inside.mean():.2f} %)"
    )
    err = errors(got, truth, valid)
    p99, mx = float(np.percentile(err, 99)), float(err.max())
    assert p99 <= tol, f"{what}: p99 |load_cube - truth| = {p99:.6g} > {tol:.6g} (max {mx:.6g})"
    filled = ~np.isnan(got[invalid])
    assert not filled.any(), (
        f"{what}: {filled.sum()} of {invalid.sum()} pixels outside every valid footprint have values"
    )


def load(replays, bands, gbox=None, **kw):
    kw.setdefault("mask", None)
    return load_cube([r.item for r in replays], bands, geobox=gbox, **kw).compute()


# ----- the harness itself -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("coll", list(PRODUCTS))
def test_replayed_items_sit_on_their_real_grids(replayed, coll):
    """Harness check: every written file is a window of the real asset grid (same CRS, pixel size, origin on
    the real pixel lattice, dtype and nodata as raster:bands states them) and the item says so (proj fields
    where the real item keeps them, 9-element transforms kept, hrefs local, footprint around the window)."""
    from replay import _proj
    from shapely.geometry import Point, shape

    for r in replayed(coll):
        for key, a in r.assets.items():
            crs, tr, _, on_asset = _proj(r.source, key)
            with rasterio.open(r.item.assets[key].href) as src:
                assert CRS.from_user_input(crs) == src.crs
                assert (src.transform.a, src.transform.e) == (tr.a, tr.e)
                col, row = ~tr @ (src.transform.c, src.transform.f)
                assert abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6, (
                    r.item.id,
                    key,
                    col,
                    row,
                )
                rb = (r.source["assets"][key].get("raster:bands") or [{}])[0]
                assert src.dtypes[0] == rb.get("data_type", a.encoding.dtype)
                assert src.nodata == rb.get("nodata", a.encoding.nodata) or (
                    src.nodata is None and a.encoding.nodata is None
                )
                assert src.count == a.encoding.count
                meta = r.item.assets[key].extra_fields if on_asset else r.item.properties
                assert list(meta["proj:shape"]) == [src.height, src.width]
                assert len(meta["proj:transform"]) == len(
                    (r.source["assets"][key] if on_asset else r.source["properties"])["proj:transform"]
                )
                assert tuple(meta["proj:transform"][:6]) == tuple(src.transform)[:6]
                centre = src.transform @ (src.width / 2, src.height / 2)
            lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(*centre)
            w, s_, e, n = r.item.bbox
            assert s_ <= lat <= n and (w <= lon <= e), (r.item.id, key, lon, lat, r.item.bbox)
            assert shape(r.item.geometry).buffer(1e-9).contains(Point(lon, lat)) or abs(abs(lon) - 180) < 0.1


def test_s2_baseline_0510_offset_is_applied_without_raster_bands(replayed):
    """Planetary Computer Sentinel-2 L2A items of baseline 05.10 carry no raster:bands: the cube still holds
    reflectance = DN / 10000 - 0.1 (mean bias against the truth below 0.001, not 0.1 or 2000)."""
    replays = [replayed("sentinel-2-l2a")[i] for i in (0, 3)]
    assert all("raster:bands" not in r.item.assets["B04"].extra_fields for r in replays)
    gbox = union_grid(replays, "B04", "EPSG:32647", 10)
    got = load(replays, ["red"], gbox)["red"].isel(time=0).values
    truth, valid, _ = expected(replays, "B04", gbox)
    bias = float(np.nanmean(got[valid] - truth[valid]))
    assert abs(bias) < 1e-3, (
        f"mean(load_cube - truth) = {bias:.6g}: scale/offset of baseline 05.10 not applied"
    )


# ----- native grids: exact -----------------------------------------------------------------------------------------
NATIVE_CASES = [
    ("sentinel-2-l2a", 0, "B04", "red"),
    ("sentinel-2-l2a", 3, "B11", "swir16"),
    ("landsat-c2-l2", 0, "red", "red"),
    ("landsat-c2-l2", 3, "nir08", "nir08"),
    ("sentinel-1-rtc", 1, "vv", "vv"),
    ("cop-dem-glo-30", 0, "data", "data"),
    ("io-lulc-annual-v02", 0, "data", "data"),
]


@pytest.mark.parametrize(
    ("coll", "i", "key", "band"), NATIVE_CASES, ids=[f"{c[0]}-{c[2]}" for c in NATIVE_CASES]
)
def test_native_grid_load_is_exact(replayed, coll, i, key, band):
    """One item onto its own asset grid: every pixel equals the file's DN decoded with the product's real
    scale/offset (Sentinel-2 baseline 05.10: DN/10000 - 0.1 although the item has no raster:bands)."""
    r = replayed(coll)[i]
    a = r.assets[key]
    ds = load([r], [band], native_grid(r, key))
    got = ds[band].isel(time=0).values
    want = a.encoding.decode(a.read())
    assert np.array_equal(np.isnan(got), np.isnan(want)), (
        f"NaN differs on {int((np.isnan(got) != np.isnan(want)).sum())} pixels"
    )
    ok = ~np.isnan(want)
    err = np.abs(got[ok] - want[ok])
    assert err.max() <= 1e-6 * max(1.0, np.abs(want[ok]).max()), (
        f"native load differs from the file: max |diff| {err.max():.6g}, median {np.median(err):.6g}, "
        f"{100 * np.mean(err > 1e-6):.1f} % of pixels"
    )


@pytest.mark.parametrize(
    ("coll", "key", "band"), [("landsat-c2-l2", "red", "red"), ("sentinel-2-l2a", "B04", "red")]
)
def test_derived_grid_is_native_and_exact(replayed, coll, key, band):
    """``load_cube(items, bands)`` without a grid derives it from the items: aligned with the item's pixels
    (Landsat corners at odd multiples of 15 m), so a single scene comes back exactly (item-level proj for
    Landsat, as the Planetary Computer and USGS publish it)."""
    r = replayed(coll)[0]
    a = r.assets[key]
    ds = load([r], [band])
    t = ds.odc.geobox.transform
    assert (t.a, t.e) == (a.transform.a, a.transform.e), f"derived resolution {t.a, t.e}"
    col, row = ~a.transform @ (t.c, t.f)
    assert abs(col - round(col)) < 1e-9 and abs(row - round(row)) < 1e-9, (
        f"derived grid is shifted by ({col - round(col):.3f}, {row - round(row):.3f}) pixels from the item's grid"
    )
    got = ds[band].isel(time=0).values
    want = nearest_source_values([r], key, ds.odc.geobox)
    both = ~np.isnan(want) & ~np.isnan(got)
    assert both.sum() >= 0.99 * (~np.isnan(want)).sum()
    assert np.abs(got[both] - want[both]).max() <= 1e-6


# ----- off-grid loads against the analytic truth -------------------------------------------------------------------
def _grids():
    """(id, collection, items, asset key, band, crs, resolution)."""
    return [
        ("s2-finer-5m", "sentinel-2-l2a", [0, 3], "B04", "red", "EPSG:32647", 5),
        ("s2-coarser-30m", "sentinel-2-l2a", [0, 3], "B04", "red", "EPSG:32647", 30),
        ("s2-other-utm-46", "sentinel-2-l2a", [0, 3], "B04", "red", "EPSG:32646", 10),
        ("s2-geographic", "sentinel-2-l2a", [0, 3], "B04", "red", "EPSG:4326", resxy_(0.0004, -0.0001)),
        ("s2-polar-3413", "sentinel-2-l2a", [0, 3], "B04", "red", "EPSG:3413", 10),
        (
            "s2-geographic-coarse-100m",
            "sentinel-2-l2a",
            [0, 3],
            "B04",
            "red",
            "EPSG:4326",
            resxy_(0.005, -0.0009),
        ),
        ("s2-swir16-20m-on-10m", "sentinel-2-l2a", [0, 3], "B11", "swir16", "EPSG:32647", 10),
        ("landsat-finer-15m", "landsat-c2-l2", [0, 1], "red", "red", "EPSG:32655", 15),
        ("landsat-coarser-90m", "landsat-c2-l2", [0, 1], "red", "red", "EPSG:32655", 90),
        ("landsat-two-zones-on-56", "landsat-c2-l2", [2, 3], "red", "red", "EPSG:32656", 30),
        ("landsat-two-zones-on-55", "landsat-c2-l2", [2, 3], "nir08", "nir08", "EPSG:32655", 30),
        ("landsat-geographic", "landsat-c2-l2", [2, 3], "red", "red", "EPSG:4326", 0.0003),
        ("landsat-polar-3031", "landsat-c2-l2", [2, 3], "red", "red", "EPSG:3031", 30),
        ("landsat-polar-coarse-150m", "landsat-c2-l2", [2, 3], "red", "red", "EPSG:3031", 150),
        ("s1-geographic", "sentinel-1-rtc", [1, 2], "vv", "vv", "EPSG:4326", 0.0001),
        ("s1-other-utm-34", "sentinel-1-rtc", [1, 2], "vh", "vh", "EPSG:32634", 10),
        ("s1-coarser-30m", "sentinel-1-rtc", [1, 2], "vv", "vv", "EPSG:32633", 30),
        ("dem-polar-3031", "cop-dem-glo-30", [0, 1, 2, 3], "data", "data", "EPSG:3031", 10),
        ("dem-utm-1s", "cop-dem-glo-30", [0, 1, 2, 3], "data", "data", "EPSG:32701", 10),
        ("naip-other-datum-32620", "naip", [0, 1], "image", "nir", "EPSG:32620", 0.3),
        ("naip-coarser-1.2m", "naip", [0, 1], "image", "red", "EPSG:26920", 1.2),
        ("naip-geographic", "naip", [0, 1], "image", "green", "EPSG:4326", 3e-6),
    ]


GRIDS = _grids()
NAIP_INDEX = {"red": 1, "green": 2, "blue": 3, "nir": 4}


def _case(replayed, coll, which, key, crs, res):
    replays = [replayed(coll)[i] for i in which]
    return replays, union_grid(replays, key, crs, res)


@pytest.mark.parametrize(
    ("name", "coll", "which", "key", "band", "crs", "res"), GRIDS, ids=[g[0] for g in GRIDS]
)
def test_off_grid_load_matches_analytic_truth(replayed, name, coll, which, key, band, crs, res):
    """Default resampling onto another grid: the field within tolerance, no NaN inside the union of the items'
    valid footprints (seams between items, UTM zone boundaries), NaN outside."""
    replays, gbox = _case(replayed, coll, which, key, crs, res)
    ds = load(replays, [band], gbox)
    assert_truth(
        ds, band, replays, key, gbox, idx=NAIP_INDEX.get(band, 1) if coll == "naip" else 1, what=name
    )


REF_GRIDS = [g for g in GRIDS if g[1] != "cop-dem-glo-30"] + [
    ("dem-polar-3031", "cop-dem-glo-30", [0, 1, 2, 3], "data", "data", "EPSG:3031", 30),
]


def _ref_case(replayed, g):
    name, coll, which, key, band, crs, res = g
    replays, gbox = _case(replayed, coll, which, key, crs, res)
    resampling = "average" if "coarse" in name else "bilinear"
    idx = NAIP_INDEX.get(band, 1) if coll == "naip" else 1
    ds = load(replays, [band], gbox, resampling=resampling)
    truth, valid, _ = expected(replays, key, gbox, band=idx)
    return replays, gbox, resampling, idx, ds[band].isel(time=0).values.astype("f8"), valid


@pytest.mark.parametrize("g", REF_GRIDS, ids=[g[0] for g in REF_GRIDS])
def test_matches_gdal_reproject(replayed, g):
    """Same grid, same resampling as ``rasterio.warp.reproject`` (GDAL), per item, decoded, first valid wins."""
    replays, gbox, resampling, idx, got, valid = _ref_case(replayed, g)
    ref = gdal_reference(replays, g[3], gbox, resampling, band=idx)
    tol = replays[0].product.tol
    both = valid & ~np.isnan(ref)
    assert both.sum() >= 0.99 * valid.sum(), (
        f"GDAL itself leaves {(valid & np.isnan(ref)).sum()} NaN (harness)"
    )
    missing = np.isnan(got[both])
    assert not missing.any(), f"{missing.sum()} pixels valid in GDAL's answer are NaN in load_cube's"
    err = np.abs(got[both] - ref[both])
    p99 = float(np.percentile(err, 99))
    assert p99 <= tol, f"p99 |load_cube - GDAL| = {p99:.6g} > {tol:.6g} (max {err.max():.6g}, {resampling})"


#: odc-stac 0.5.3 leaves 362 of 4869 pixels of the DEM wedge at the south pole NaN (the W180 tile, whose
#: footprint starts at -180.0014): it is not a reference there; GDAL and the truth still judge the DEM
ODC_GRIDS = [g for g in REF_GRIDS if g[1] != "cop-dem-glo-30"]


@pytest.mark.parametrize("g", ODC_GRIDS, ids=[g[0] for g in ODC_GRIDS])
def test_matches_odc_stac(replayed, g):
    """Same grid, same resampling as ``odc.stac.load`` (see module docstring for the settings)."""
    replays, gbox, resampling, idx, got, valid = _ref_case(replayed, g)
    ref = odc_reference(replays, g[3], gbox, resampling, band=idx)
    tol = replays[0].product.tol
    both = valid & ~np.isnan(ref)
    assert both.sum() >= 0.99 * valid.sum(), f"odc-stac leaves {(valid & np.isnan(ref)).sum()} NaN (harness)"
    missing = np.isnan(got[both])
    assert not missing.any(), f"{missing.sum()} pixels valid in odc-stac's answer are NaN in load_cube's"
    err = np.abs(got[both] - ref[both])
    p99 = float(np.percentile(err, 99))
    assert p99 <= tol, (
        f"p99 |load_cube - odc-stac| = {p99:.6g} > {tol:.6g} (max {err.max():.6g}, {resampling})"
    )


@pytest.mark.parametrize("g", REF_GRIDS, ids=[g[0] for g in REF_GRIDS])
def test_references_agree_with_truth(replayed, g):
    """Harness check: GDAL's and odc-stac's answers meet the analytic truth within the same tolerance, so a
    failure of the two tests above is load_cube's, not the references' or the harness's."""
    name, coll, which, key, band, crs, res = g
    replays, gbox = _case(replayed, coll, which, key, crs, res)
    resampling = "average" if "coarse" in name else "bilinear"
    idx = NAIP_INDEX.get(band, 1) if coll == "naip" else 1
    truth, valid, _ = expected(replays, key, gbox, band=idx)
    refs = [("GDAL", gdal_reference(replays, key, gbox, resampling, band=idx))]
    if g in ODC_GRIDS:
        refs.append(("odc-stac", odc_reference(replays, key, gbox, resampling, band=idx)))
    for who, ref in refs:
        assert not np.isnan(ref[valid]).any(), (
            f"{who}: {np.isnan(ref[valid]).sum()} NaN inside the footprints"
        )
        err = errors(ref, truth, valid)
        assert np.percentile(err, 99) <= replays[0].product.tol, f"{who}: p99 {np.percentile(err, 99):.6g}"


# ----- quality layers: masks where planted -------------------------------------------------------------------------
CLOUD_SHADOW = ("cloud", "shadow")
MASK_CASES = [
    ("s2-scl-native", "sentinel-2-l2a", [0], "B04", "red", "SCL", None, None, CLOUD_SHADOW),
    ("s2-scl-polar", "sentinel-2-l2a", [0], "B04", "red", "SCL", "EPSG:3413", 10, CLOUD_SHADOW),
    ("landsat-qa-native", "landsat-c2-l2", [0], "red", "red", "qa_pixel", None, None, CLOUD_SHADOW),
    (
        "landsat-qa-geographic",
        "landsat-c2-l2",
        [0],
        "red",
        "red",
        "qa_pixel",
        "EPSG:4326",
        0.0002,
        CLOUD_SHADOW,
    ),
    # the names the real item's classification:bitfields declare (decoded from the metadata)
    (
        "landsat-qa-bitfield-names",
        "landsat-c2-l2",
        [0],
        "red",
        "red",
        "qa_pixel",
        None,
        None,
        ("cloud", "cloud_shadow"),
    ),
]


@pytest.mark.parametrize(
    ("name", "coll", "which", "key", "band", "qkey", "crs", "res", "mask"),
    MASK_CASES,
    ids=[m[0] for m in MASK_CASES],
)
def test_masks_cover_every_planted_pixel(replayed, name, coll, which, key, band, qkey, crs, res, mask):
    """Clouds and shadows planted in the scene's own quality layer (SCL classes 9 and 3; QA_PIXEL bits 3 and 4,
    as classification:bitfields declares them) are NaN on 100 % of the output pixels whose centre falls on
    them (strictly inside), and nothing else strictly inside the footprint is masked."""
    replays = [replayed(coll)[i] for i in which]
    gbox = native_grid(replays[0], key) if crs is None else union_grid(replays, key, crs, res)
    mask = list(mask)
    got = load(replays, [band], gbox, mask=mask)[band].isel(time=0).values
    q = replays[0].assets[qkey]
    _, valid_unmasked, _ = expected(replays, key, gbox, mask=mask)
    _, valid_any, _ = expected(replays, key, gbox)
    dn, inside = sample(q, *source_uv(q, gbox))
    planted = inside & quality_bad(q, dn, mask)
    # strictly planted: the whole neighbourhood is planted (no argument about boundary pixels)
    core = planted & valid_any & ~valid_unmasked
    for du in (-1.0, 1.0):
        for dv in (-1.0, 1.0):
            u, v = source_uv(q, gbox)
            d2, in2 = sample(q, u + du, v + dv)
            core &= in2 & quality_bad(q, d2, mask)
    assert core.sum() > 50, f"{name}: harness planted too little ({core.sum()} px)"
    leaked = ~np.isnan(got[core])
    assert not leaked.any(), f"{name}: {leaked.sum()} of {core.sum()} planted cloud/shadow pixels keep values"
    lost = np.isnan(got[valid_unmasked])
    assert not lost.any(), f"{name}: {lost.sum()} of {valid_unmasked.sum()} clear pixels are masked"


@pytest.mark.parametrize(
    ("coll", "which", "key", "band", "crs", "res"),
    [
        ("sentinel-2-l2a", [0, 3], "B04", "red", "EPSG:32647", 10),
        ("landsat-c2-l2", [0, 1], "red", "red", "EPSG:32655", 30),
        ("landsat-c2-l2", [2, 3], "red", "red", "EPSG:4326", 0.0003),
    ],
    ids=["s2-two-zones", "landsat-same-zone", "landsat-two-zones-geographic"],
)
def test_masked_mosaic_fills_from_the_other_scene(replayed, coll, which, key, band, crs, res):
    """Two overlapping scenes of one pass, each with its own clouds: masked before the mosaic, so a cloud of one
    is filled by the other where that one is clear, and the field is right everywhere (no NaN inside the union
    of the unmasked footprints)."""
    replays = [replayed(coll)[i] for i in which]
    gbox = union_grid(replays, key, crs, res)
    ds = load(replays, [band], gbox, mask=["cloud", "shadow"])
    assert_truth(ds, band, replays, key, gbox, mask=["cloud", "shadow"], what=f"{coll} masked mosaic")


# ----- products -----------------------------------------------------------------------------------------------------
def test_naip_bands_are_read_by_eo_bands_index(replayed):
    """NAIP ``image`` holds red, green, blue, nir in one file: each common name is its own band (1..4)."""
    r = replayed("naip")[0]
    a = r.assets["image"]
    ds = load([r], list(NAIP_INDEX), native_grid(r, "image"))
    wrong = {}
    for name, idx in NAIP_INDEX.items():
        got = ds[name].isel(time=0).values
        want = a.read(idx).astype("f8")
        if not np.array_equal(got, want):
            wrong[name] = f"max |diff| {np.nanmax(np.abs(got - want)):.1f}"
    assert not wrong, f"bands not taken from their eo:bands index: {wrong}"


@pytest.mark.parametrize(
    ("crs", "res", "resampling"), [("EPSG:4326", 0.0001, None), ("EPSG:32633", 30, "average")]
)
def test_s1_float_nodata_never_leaks(replayed, crs, res, resampling):
    """Sentinel-1 RTC float32 with nodata -32768: the planted nodata is NaN, never interpolated into values."""
    replays = [replayed("sentinel-1-rtc")[i] for i in (1, 2)]
    gbox = union_grid(replays, "vv", crs, res)
    ds = load(replays, ["vv", "vh"], gbox, resampling=resampling)
    fld = replays[0].product.field
    for b in ("vv", "vh"):
        v = ds[b].values
        assert np.nanmin(v) >= fld.base - fld.amp - 1e-3, f"{b}: min {np.nanmin(v)}: nodata -32768 leaked"
        assert np.isnan(v).any(), f"{b}: the planted nodata box came back with values"


LULC_GRIDS = [
    ("lulc-coarser-30m", "EPSG:32660", 30, None),
    ("lulc-coarser-50m-average-asked", "EPSG:32660", 50, "average"),
    ("lulc-other-side-of-antimeridian", "EPSG:32601", 10, None),
    ("lulc-other-side-coarser", "EPSG:32601", 40, None),
    ("lulc-polar-3995", "EPSG:3995", 25, None),
]


@pytest.mark.parametrize(("name", "crs", "res", "resampling"), LULC_GRIDS, ids=[g[0] for g in LULC_GRIDS])
def test_land_cover_classes_are_never_averaged(replayed, name, crs, res, resampling):
    """IO land cover (classes listed in file:values, nodata 0) across the antimeridian: whatever the grid and
    even when a user asks for ``average`` for other bands, every value is one of the item's classes, and no
    pixel inside the footprint is lost to the antimeridian."""
    r = replayed("io-lulc-annual-v02")[0]
    gbox = union_grid([r], "data", crs, res)
    resampling = {"other": resampling} if resampling else None
    ds = load([r], ["data"], gbox, resampling=resampling)
    got = ds["data"].isel(time=0).values
    classes = set(classes_of(r.source))
    values = set(np.unique(got[~np.isnan(got)]).tolist())
    assert values <= classes, (
        f"{name}: values outside the class set {sorted(classes)}: {sorted(values - classes)[:10]}"
    )
    _, valid, _ = expected([r], "data", gbox)
    assert not np.isnan(got[valid]).any(), (
        f"{name}: {np.isnan(got[valid]).sum()} of {valid.sum()} pixels lost"
    )


def test_land_cover_nearest_equals_the_source_class(replayed):
    """Onto the UTM zone east of the antimeridian at the native pixel size, each pixel is the class of the
    source pixel containing its centre (nearest), on at least 99.5 % of the footprint."""
    r = replayed("io-lulc-annual-v02")[1]
    gbox = union_grid([r], "data", "EPSG:32601", 10)
    got = load([r], ["data"], gbox)["data"].isel(time=0).values
    want = nearest_source_values([r], "data", gbox)
    _, valid, _ = expected([r], "data", gbox)
    same = got[valid] == want[valid]
    assert same.mean() >= 0.995, f"only {100 * same.mean():.2f} % of pixels carry their source pixel's class"


# ----- radiometry recorded, time labels ------------------------------------------------------------------------------
def applied_scale_offset(ds, band: str, item) -> list[dict]:
    """The groups of ``attrs["scale_offset"][band]`` (h/radiometry's record: ``{"collection", "scale",
    "offset", "source"}``, with ``"items"`` when a group is not the whole collection) that cover ``item``."""
    groups = (ds.attrs.get("scale_offset") or {}).get(band, [])
    return [
        g
        for g in groups
        if g.get("collection") == item.collection_id and ("items" not in g or item.id in g["items"])
    ]


@pytest.mark.parametrize(
    ("coll", "band", "scale", "offset", "source"),
    [
        ("landsat-c2-l2", "red", 2.75e-05, -0.2, "item"),
        ("sentinel-2-l2a", "red", 1e-4, -0.1, "product-table"),
        ("naip", "nir", 1.0, 0.0, "product-table"),  # the table knows NAIP is stored unscaled
    ],
)
def test_applied_scale_offset_is_recorded_per_item(replayed, coll, band, scale, offset, source):
    """The cube records, for every item, the one scale/offset applied and where it came from (Landsat from
    raster:bands, Sentinel-2 baseline 05.10 from the product table since Planetary Computer items carry no
    raster:bands, NAIP stored as is, which the product table knows)."""
    replays = replayed(coll)
    crs = next(iter(replays[0].assets.values())).crs
    ds = load_cube([r.item for r in replays], [band], crs=crs, resolution=60, mask=None)
    problems = {}
    for r in replays:
        groups = applied_scale_offset(ds, band, r.item)
        if len(groups) != 1:
            problems[r.item.id] = f"{len(groups)} records"
            continue
        g = groups[0]
        if not (
            math.isclose(g["scale"], scale) and math.isclose(g["offset"], offset) and g["source"] == source
        ):
            problems[r.item.id] = g
    assert not problems, f"applied scale/offset not recorded as expected: {problems}; attrs {dict(ds.attrs)}"


SOLAR_DAYS = [
    ("landsat-c2-l2", "red", "2024-04-18"),  # 23:45 UTC at 148-151 E: morning of the 18th, local time
    ("sentinel-2-l2a", "red", "2024-04-19"),
    ("sentinel-1-rtc", "vv", "2024-04-19"),
    ("naip", "red", "2022-12-12"),
]


@pytest.mark.parametrize(("coll", "band", "day"), SOLAR_DAYS, ids=[s[0] for s in SOLAR_DAYS])
def test_one_pass_is_one_solar_day(replayed, coll, band, day):
    """All items of one pass make one time step labelled with the local solar date (as odc-stac's solar_day)."""
    replays = replayed(coll)
    key = next(k for k, a in replays[0].assets.items() if a.kind == "field")
    items = [r.item for r in replays]
    ds = load_cube(items, [band], crs=replays[0].assets[key].crs, resolution=500, mask=None)
    assert [str(t)[:10] for t in ds.time.values] == [day]
