"""Cached pixel maps (nearest, bilinear) against GDAL's warper on the same rasters."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling
from rasterio.warp import reproject

from orbitcube.pipeline.resample import apply_map, pixel_map


@pytest.fixture(scope="module")
def source() -> tuple[np.ndarray, rasterio.Affine, str]:
    """A smooth-plus-noise uint16 field on a 10 m UTM 33N grid west of 12 E (as the simulator's zone-33 tiles)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:300, 0:300]
    data = (2000 + 800 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + rng.normal(0, 30, (300, 300))).astype(
        "uint16"
    )
    data[:20, :] = 0  # a nodata strip
    return data, rasterio.Affine(10, 0, 199_000, 0, -10, 5_050_000), "EPSG:32633"


def _dst() -> GeoBox:
    # the same ground in UTM 32N (east of its zone edge), pixels of 10 m
    return GeoBox.from_bbox((667_800, 5_042_600, 670_200, 5_044_800), "EPSG:32632", resolution=10)


def _gdal(data, tr, crs, dst: GeoBox, method: str) -> np.ndarray:
    out = np.zeros(dst.shape.yx, dtype="float32")
    reproject(
        data.astype("float32"),
        out,
        src_transform=tr,
        src_crs=crs,
        src_nodata=0,
        dst_transform=dst.transform,
        dst_crs=dst.crs.wkt,
        dst_nodata=0,
        resampling=Resampling[method],
    )
    return out


def _ours(data, tr, crs, dst: GeoBox, method: str) -> np.ndarray:
    src_wkt = rasterio.crs.CRS.from_user_input(crs).to_wkt()
    pm = pixel_map(
        src_wkt, tuple(tr)[:6], data.shape, dst.crs.wkt, tuple(dst.transform)[:6], dst.shape.yx, method
    )
    assert pm is not None
    c0, r0, w, h = pm.window
    block = data[r0 : r0 + h, c0 : c0 + w]
    out = np.full(
        dst.shape.yx, 0 if method == "nearest" else np.nan, dtype=data.dtype if method == "nearest" else "f4"
    )
    return apply_map(pm, block, out, nodata=0).astype("float32")


def test_nearest_across_utm_zones_matches_gdal(source) -> None:
    data, tr, crs = source
    dst = _dst()
    ours, gdal = _ours(data, tr, crs, dst, "nearest"), _gdal(data, tr, crs, dst, "nearest")
    assert (gdal > 0).mean() > 0.5, "the test grids must overlap"
    # GDAL's approximate transformer may flip ties at pixel edges: allow a few in a thousand
    assert (ours == gdal).mean() > 0.997


def test_bilinear_across_utm_zones_is_exact_and_close_to_gdal(source) -> None:
    from pyproj import Transformer
    from scipy.ndimage import map_coordinates

    data, tr, crs = source
    dst = _dst()
    ours, gdal = _ours(data, tr, crs, dst, "bilinear"), _gdal(data, tr, crs, dst, "bilinear")
    # exact reference: every output pixel centre transformed with pyproj, scipy's linear interpolation
    rows, cols = np.mgrid[0 : dst.shape.y, 0 : dst.shape.x] + 0.5
    xs, ys = dst.transform * (cols, rows)
    sx, sy = Transformer.from_crs(dst.crs.wkt, crs, always_xy=True).transform(xs, ys)
    u, v = ~tr * (sx, sy)
    ref = map_coordinates(data.astype("f8"), [v - 0.5, u - 0.5], order=1, mode="nearest")
    away = np.isfinite(ours) & (v > 22) & (v < 298) & (u > 1) & (u < 298)  # off the nodata strip and edges
    assert away.mean() > 0.5
    np.testing.assert_allclose(ours[away], ref[away], atol=0.05)
    # GDAL's warper uses an approximate transformer (0.125 px error): close, not equal
    both = away & (gdal > 0)
    assert np.quantile(np.abs(ours[both] - gdal[both]), 0.99) < 12  # DN, on values ~2000 +- 800
    # nodata neighbours get no weight: nothing is pulled towards 0 along the nodata strip
    assert np.nanmin(ours[np.isfinite(ours)]) > 1000


def test_grids_that_do_not_overlap_give_no_map(source) -> None:
    data, tr, crs = source
    far = GeoBox.from_bbox((300_000, 4_000_000, 301_000, 4_001_000), "EPSG:32632", resolution=10)
    src_wkt = rasterio.crs.CRS.from_user_input(crs).to_wkt()
    args = (src_wkt, tuple(tr)[:6], data.shape, far.crs.wkt, tuple(far.transform)[:6], far.shape.yx)
    assert pixel_map(*args, "nearest") is None


# ----- the planar bilinear layout and restricted maps ------------------------------------------------------------
def _rowwise_bilinear(pm, block: np.ndarray, nodata) -> np.ndarray:
    """The (n, 4) row-wise formula the maps used before their planar layout: gather the four neighbours, drop
    nodata / non-finite ones, weights summed along the row (numpy's order), weighted sum / weight sum, float32."""
    ww = pm.window[2]
    idx = np.clip(pm.src[:, None] + np.array([0, 1, ww, ww + 1]), 0, block.size - 1)
    vals = block.ravel()[idx].astype(np.float32)
    w = pm.weights.T.copy()
    if nodata is not None:
        w = np.where(vals == np.float32(nodata), np.float32(0), w)
    finite = np.isfinite(vals)
    w, vals = np.where(finite, w, np.float32(0)), np.where(finite, vals, np.float32(0))
    s = w.sum(axis=1)
    res = np.full(len(s), np.nan, np.float32)
    ok = s > 1e-6
    res[ok] = (vals * w).sum(axis=1)[ok] / s[ok]
    return res


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize("nodata", [0, None])
def test_planar_bilinear_is_bit_identical_to_the_row_wise_formula(source, dtype, nodata) -> None:
    """Four gathers and multiply-adds over (4, n) weights give the same float32 values as the row-wise formula,
    with and without nodata in the window, on integer and float sources (NaN holes), at the source's edges."""
    data, tr, crs = source
    data = data.astype(dtype)
    if dtype == "float32":
        data[40:50, 100:140] = np.nan
    src_wkt = rasterio.crs.CRS.from_user_input(crs).to_wkt()
    # a tile larger than the source's overlap: left and top source edges inside the tile
    dst = GeoBox.from_bbox((666_000, 5_043_000, 669_000, 5_052_000), "EPSG:32632", resolution=10)
    pm = pixel_map(
        src_wkt, tuple(tr)[:6], data.shape, dst.crs.wkt, tuple(dst.transform)[:6], dst.shape.yx, "bilinear"
    )
    assert pm is not None and pm.weights.shape == (4, len(pm.dst)) and len(pm.dst) < dst.shape.y * dst.shape.x
    c0, r0, w, h = pm.window
    block = np.ascontiguousarray(data[r0 : r0 + h, c0 : c0 + w])
    out = apply_map(pm, block, np.full(dst.shape.yx, np.nan, np.float32), nodata)
    ref = np.full(dst.shape.yx, np.nan, np.float32)
    ref.ravel()[pm.dst] = _rowwise_bilinear(pm, block, nodata)
    np.testing.assert_array_equal(out, ref)
    assert np.isfinite(out).mean() > 0.05


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
def test_a_restricted_map_resamples_only_the_needed_pixels_with_the_same_values(source, method) -> None:
    """restrict_map keeps the map's values on the pixels still needed, leaves the others untouched, shrinks a
    nearest map's source window to what they need, and gives None when the map reaches none of them."""
    from orbitcube.pipeline.resample import restrict_map

    data, tr, crs = source
    dst = _dst()
    src_wkt = rasterio.crs.CRS.from_user_input(crs).to_wkt()
    args = (src_wkt, tuple(tr)[:6], data.shape, dst.crs.wkt, tuple(dst.transform)[:6], dst.shape.yx, method)
    pm = pixel_map(*args)
    fill = 7 if method == "nearest" else np.nan
    dtype = data.dtype if method == "nearest" else np.float32

    def apply(m):
        c0, r0, w, h = m.window
        return apply_map(
            m, np.ascontiguousarray(data[r0 : r0 + h, c0 : c0 + w]), np.full(dst.shape.yx, fill, dtype), 0
        )

    full = apply(pm)
    need = np.zeros(dst.shape.yx, bool)
    need[5:40, 60:90] = True  # a block of empty pixels ...
    need[100, ::7] = True  # ... and a few scattered ones
    sub = restrict_map(pm, need)
    got = apply(sub)
    np.testing.assert_array_equal(got[need], full[need])
    assert np.all(got[~need] == fill) if method == "nearest" else np.isnan(got[~need]).all()
    if method == "nearest":
        assert sub.window[2] * sub.window[3] < pm.window[2] * pm.window[3]
    assert restrict_map(pm, np.ones(dst.shape.yx, bool)) is pm
    mostly = np.ones(dst.shape.yx, bool)
    mostly[:3] = False
    assert restrict_map(pm, mostly) is pm  # most of the map needed: no restricted copy
    assert restrict_map(pm, np.zeros(dst.shape.yx, bool)) is None
