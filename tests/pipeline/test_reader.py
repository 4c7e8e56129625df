"""The fused per-tile reader behind load_cube: graph shape, reads per tile, overviews, dilation, bad files."""

from __future__ import annotations

import datetime as dt
import logging
import shutil

import dask
import numpy as np
import pystac
import pytest
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry
from rasterio.enums import Resampling
from rasterio.warp import reproject

from orbitcube.catalog.simulator import Mission
from orbitcube.pipeline.errors import LoadError
from orbitcube.pipeline.load import load_cube


def _tile_tasks(cube) -> dict:
    """{key: (read function, tile, steps, spec)} of the load's read tasks."""
    from orbitcube.pipeline.load import read_tasks
    from orbitcube.pipeline.reader import read_tile

    return {k: (read_tile, *v) for k, v in read_tasks(cube["red"].data.__dask_graph__()).items()}


def test_one_named_task_per_tile_reading_only_intersecting_scenes(s2_mission: Mission) -> None:
    gbox = s2_mission.config.truth_geobox(10)
    cube = load_cube(s2_mission.items, ["red", "nir"], geobox=gbox, chunks={"y": 64, "x": 64})
    tasks = _tile_tasks(cube)
    ny, nx = len(cube.chunks["y"]), len(cube.chunks["x"])
    assert len(tasks) == ny * nx  # one fused read per tile, shared by both bands
    assert {k[0].split("-")[0] for k in dict(cube["nir"].data.__dask_graph__()) if isinstance(k, tuple)} >= {
        "load",
        "nir",
    }  # keys named after what they hold, for the dashboard
    # a tile reads exactly the scenes whose footprint reaches it, so some tiles read fewer than all of them
    footprints = {it.id: Geometry(it.geometry, crs=4326).to_crs(gbox.crs) for it in s2_mission.items}
    fewer = 0
    for _fn, tile, steps, _spec in tasks.values():
        opened = {s.item_id for step in steps for s in step}
        near = {i for i, fp in footprints.items() if fp.buffer(20).intersects(tile.extent)}
        assert opened == near
        fewer += len(opened) < len(s2_mission.items)
    assert fewer > 0


def test_coarser_output_averages_and_matches_block_means(s2_mission: Mission) -> None:
    """At 80 m the reflectance bands default to average resampling (reading COG overviews) and agree with the
    8 x 8 block means of the 10 m cube; quality bands stay nearest."""
    gbox10 = s2_mission.config.truth_geobox(10)
    items = [it for it in s2_mission.items if it.properties.get("proj:code") == "EPSG:32632"][:4]
    fine = load_cube(items, ["nir"], geobox=gbox10, mask=None, groupby="time").compute()
    gbox80 = gbox10.zoom_out(8)
    coarse = load_cube(items, ["nir"], geobox=gbox80, mask=None, groupby="time").compute()
    ny, nx = gbox10.shape.y // 8, gbox10.shape.x // 8  # whole blocks (zoom_out keeps the origin)
    blocks = fine["nir"].values[:, : ny * 8, : nx * 8].reshape(len(items), ny, 8, nx, 8)
    full = np.isfinite(blocks).all(axis=(2, 4))
    want = np.nanmean(blocks, axis=(2, 4))
    got = coarse["nir"].values[:, :ny, :nx]
    assert full.mean() > 0.3
    assert np.quantile(np.abs(got - want)[full], 0.95) < 0.01  # reflectance units


def test_dilation_is_seamless_across_tiles(s2_mission: Mission) -> None:
    gbox = s2_mission.config.truth_geobox(20)
    kw = {"geobox": gbox, "dilate_m": 60.0}
    small = load_cube(s2_mission.items[:8], ["red"], chunks={"y": 24, "x": 24}, **kw).compute()
    large = load_cube(s2_mission.items[:8], ["red"], chunks={"y": 512, "x": 512}, **kw).compute()
    plain = load_cube(s2_mission.items[:8], ["red"], chunks={"y": 512, "x": 512}, geobox=gbox).compute()
    a, b = small["red"].values, large["red"].values
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))  # the same mask, tile edges or not
    np.testing.assert_allclose(a, b, atol=1.5e-4)  # GDAL's averaging may round 1 DN differently per window
    assert np.isnan(large["red"].values).sum() > np.isnan(plain["red"].values).sum()  # dilation grew the mask


def _strip_proj(item: pystac.Item) -> pystac.Item:
    it = item.clone()
    for k in [k for k in it.properties if k.startswith("proj:")]:
        del it.properties[k]
    for a in it.assets.values():
        for k in [k for k in a.extra_fields if k.startswith("proj:")]:
            del a.extra_fields[k]
    return it


def test_items_without_proj_metadata_fall_back_to_file_headers(s2_mission: Mission, caplog) -> None:
    items = s2_mission.items[:4]
    bare = [_strip_proj(it) for it in items]
    with caplog.at_level(logging.WARNING, logger="orbitcube.pipeline.load"):
        got = load_cube(bare, ["red"], resolution=40, mask=None).compute()
    assert "no projection metadata" in caplog.text and items[0].id in caplog.text
    want = load_cube(items, ["red"], resolution=40, mask=None).compute()
    assert got.odc.geobox == want.odc.geobox
    np.testing.assert_array_equal(got["red"].values, want["red"].values)


def test_an_asset_that_fails_to_read_fails_or_is_skipped(s2_mission: Mission, tmp_path, caplog) -> None:
    items = [it.clone() for it in s2_mission.items[:4]]
    bad = tmp_path / "B04.tif"
    bad.write_bytes(b"this is not a GeoTIFF" * 100)
    items[0].assets["B04"].href = str(bad)
    gbox = s2_mission.config.truth_geobox(40)
    cube = load_cube(items, ["red"], geobox=gbox, groupby="time")
    with pytest.raises(LoadError, match=f"{items[0].id}.*B04.tif.*on_error='skip'"):
        cube.compute(scheduler="synchronous")
    with (
        caplog.at_level(logging.WARNING, logger="orbitcube.pipeline.reader"),
        dask.config.set(scheduler="synchronous"),
    ):
        skipped = load_cube(items, ["red"], geobox=gbox, groupby="time", on_error="skip").compute()
    assert items[0].id in caplog.text
    assert np.isnan(skipped["red"].values[0]).all()
    assert np.isfinite(skipped["red"].values[1:]).any()


def test_a_rewritten_file_is_reread_not_served_from_the_handle_cache(s2_mission: Mission, tmp_path) -> None:
    item = s2_mission.items[0].clone()
    src = item.assets["B04"].get_absolute_href()
    copy = tmp_path / "B04.tif"
    shutil.copy(src, copy)
    item.assets["B04"].href = str(copy)
    gbox = s2_mission.config.truth_geobox(40)
    first = load_cube([item], ["red"], geobox=gbox, mask=None).compute(scheduler="synchronous")
    other = s2_mission.items[2].assets["B04"].get_absolute_href()  # another date, same tile grid
    shutil.copy(other, copy)
    second = load_cube([item], ["red"], geobox=gbox, mask=None).compute(scheduler="synchronous")
    assert not np.array_equal(first["red"].values, second["red"].values, equal_nan=True)


# ----- validity travels beside values (issue 13, defect 1) ---------------------------------------------------------
_T0 = dt.datetime(2023, 5, 1, 10, 0, tzinfo=dt.UTC)
_TR = Affine(10, 0, 500000, 0, -10, 5000000)  # UTM 32N, 10 m


def _half_and_full(raster_item, dtype="uint16", west=100, full=200, **kw):
    """Two scenes of one solar day: the first covers only the west half (32 of 64 columns), the second all."""
    a = raster_item("west", np.full((64, 32), west, dtype), _TR, _T0, **kw)
    b = raster_item("full", np.full((64, 64), full, dtype), _TR, _T0 + dt.timedelta(minutes=1), **kw)
    return [a, b]


def _grids():
    native = GeoBox((64, 64), _TR, "EPSG:32632")
    shifted = GeoBox((60, 60), _TR * Affine.translation(2.5, 2.5), "EPSG:32632")  # bilinear
    coarse = GeoBox((16, 16), _TR * Affine.scale(4), "EPSG:32632")  # average (GDAL warp)
    geo = native.to_crs("EPSG:4326", resolution=0.00005)  # another CRS: pixel maps (bilinear)
    return {"native": native, "shifted": shifted, "coarse": coarse, "geographic": geo}


@pytest.mark.parametrize("grid", ["native", "shifted", "coarse", "geographic"])
def test_integer_scenes_without_nodata_fill_each_other_like_odc_stac(raster_item, grid) -> None:
    """No nodata in STAC nor file: the fill outside the first scene is not data, so the second scene of the same
    day fills the east half (200), whatever path the reader takes; odc-stac agrees."""
    import odc.stac
    from pyproj import Transformer

    items = _half_and_full(raster_item)
    gbox = _grids()[grid]
    got = load_cube(items, ["data"], geobox=gbox, mask=None)["data"].values[0]
    # where each output pixel centre falls in the scenes' CRS
    cols, rows = np.meshgrid(np.arange(gbox.shape.x) + 0.5, np.arange(gbox.shape.y) + 0.5)
    xs, ys = gbox.transform * (cols, rows)
    x, y = Transformer.from_crs(gbox.crs.to_wkt(), "EPSG:32632", always_xy=True).transform(xs, ys)
    m = 2 * 10 * (4 if grid == "coarse" else 1)  # keep a margin of one output pixel (and a kernel) from edges
    inside_all = (x > 500000 + m) & (x < 500640 - m) & (y > 4999360 + m) & (y < 5000000 - m)
    west, east = inside_all & (x < 500320 - m), inside_all & (x > 500320 + m)
    assert west.sum() > 10 and east.sum() > 10
    np.testing.assert_allclose(got[west], 100, rtol=1e-6)  # bilinear weights sum to 1 in float32
    np.testing.assert_allclose(got[east], 200, rtol=1e-6)
    if grid == "native":  # the same grid: odc-stac's answer pixel for pixel
        ref = odc.stac.load(items, bands=["data"], geobox=gbox, groupby="solar_day")["data"].values[0]
        np.testing.assert_array_equal(got, ref)


def test_stac_nodata_the_dtype_cannot_hold_is_ignored_with_a_warning(raster_item, caplog) -> None:
    """raster:bands nodata -9999 on uint16 data: no OverflowError on a worker; the file's nodata (0) applies."""
    data = np.full((64, 64), 500, np.uint16)
    data[:, :8] = 0
    rb = {"raster:bands": [{"nodata": -9999, "data_type": "uint16", "scale": 0.001}]}
    item = raster_item("odd-nodata", data, _TR, _T0, file_nodata=0, asset_fields=rb)
    with caplog.at_level(logging.WARNING, logger="orbitcube.pipeline"):
        cube = load_cube([item], ["data"], geobox=_grids()["native"], mask=None)
    assert any("-9999" in r.getMessage() and "uint16" in r.getMessage() for r in caplog.records)
    got = cube["data"].values[0]
    assert np.isnan(got[:, :8]).all()
    np.testing.assert_allclose(got[:, 8:], 0.5)


# ----- multi-band assets, SAR, class layers ------------------------------------------------------------------------
def test_multiband_asset_bands_are_selected_by_eo_bands_index(raster_item) -> None:
    """NAIP-style: one ``image`` asset with 4 bands [red, green, blue, nir]; red is band 1, nir band 4."""
    data = np.stack([np.full((64, 64), 10 * (i + 1), np.uint8) for i in range(4)])
    eo = {"eo:bands": [{"name": n.title(), "common_name": n} for n in ("red", "green", "blue", "nir")]}
    item = raster_item(
        "naip", data, _TR, _T0, key="image", collection="naip", asset_fields=eo, crs="EPSG:26920"
    )
    cube = load_cube([item], ["red", "nir", "green"], geobox=GeoBox((64, 64), _TR, "EPSG:26920"), mask=None)
    assert [float(cube[b].values.mean()) for b in ("red", "nir", "green")] == [10.0, 40.0, 20.0]


def test_sar_float32_with_nodata_composites_like_any_band(raster_item) -> None:
    """Sentinel-1 RTC: float32 backscatter, nodata -32768 (STAC and file); the first scene's nodata half is filled
    by the second scene of the same day, and no pixel holds -32768."""
    rb = {"raster:bands": [{"nodata": -32768, "data_type": "float32"}]}
    a = np.full((64, 64), 0.05, np.float32)
    a[:, 32:] = -32768
    items = [
        raster_item(
            "s1a", a, _TR, _T0, file_nodata=-32768, collection="sentinel-1-rtc", key="vv", asset_fields=rb
        ),
        raster_item(
            "s1b",
            np.full((64, 64), 0.2, np.float32),
            _TR,
            _T0 + dt.timedelta(minutes=1),
            file_nodata=-32768,
            collection="sentinel-1-rtc",
            key="vv",
            asset_fields=rb,
        ),
    ]
    for gbox in (_grids()["native"], _grids()["coarse"], _grids()["geographic"]):
        got = load_cube(items, ["vv"], geobox=gbox, mask=None)["vv"].values[0]
        ok = np.isfinite(got)
        assert ok.mean() > 0.8 and got[ok].min() >= 0.05 - 1e-6 and got[ok].max() <= 0.2 + 1e-6
    native = load_cube(items, ["vv"], geobox=_grids()["native"], mask=None)["vv"].values[0]
    np.testing.assert_allclose(native[:, :32], 0.05)
    np.testing.assert_allclose(native[:, 32:], 0.2)


@pytest.mark.parametrize("collection", ["io-lulc-annual-v02", "my-landcover"])
def test_class_layers_are_never_averaged(raster_item, collection) -> None:
    """Integer land-cover classes onto a 3x coarser grid: every value is a class (mode of the block), also when
    the item states no classification metadata but the product is known (IO land cover)."""
    rng = np.random.default_rng(0)
    classes = np.array([1, 2, 5, 11], np.uint8)
    data = classes[rng.integers(0, 4, (66, 66))]
    data[:33, :33] = 5  # a block of one class: its mode is 5
    fields = {"raster:bands": [{"nodata": 0, "data_type": "uint8"}]}
    if collection == "my-landcover":
        fields["classification:classes"] = [{"value": int(v), "name": f"c{v}"} for v in classes]
    item = raster_item("lc", data, _TR, _T0, collection=collection, asset_fields=fields)
    coarse = GeoBox((22, 22), _TR * Affine.scale(3), "EPSG:32632")
    cube = load_cube([item], ["data"], geobox=coarse, mask=None)
    got = cube["data"].values[0]
    assert set(np.unique(got[np.isfinite(got)]).astype(int)) <= set(classes.tolist())
    want = np.zeros((22, 22), np.uint8)  # GDAL's mode as the reference
    reproject(data, want, src_transform=_TR, src_crs="EPSG:32632", dst_transform=coarse.transform,
              dst_crs="EPSG:32632", src_nodata=0, dst_nodata=0, resampling=Resampling.mode)  # fmt: skip
    np.testing.assert_array_equal(got, want)
    assert (got[:11, :11] == 5).all()
    assert cube.attrs["scale_offset"]["data"][0]["source"] == "none"


@pytest.mark.parametrize("as_url", [False, True])
def test_a_file_gone_after_planning_fails_naming_item_and_asset_or_is_skipped(
    raster_item, as_url, caplog
) -> None:
    """The file disappears between load_cube and compute (plain path or file:// URL): a LoadError naming the item
    and the asset, not a bare FileNotFoundError; with on_error='skip' the scene is skipped (logged)."""
    from pathlib import Path

    items = _half_and_full(raster_item)
    path = Path(items[0].assets["data"].href)
    if as_url:
        items[0].assets["data"].href = path.as_uri()
    cube = load_cube(items, ["data"], geobox=_grids()["native"], mask=None)
    skipping = load_cube(items, ["data"], geobox=_grids()["native"], mask=None, on_error="skip")
    path.unlink()
    with pytest.raises(LoadError, match=r"item 'west' asset 'data': cannot read .*west-data.tif"):
        cube.compute()
    with caplog.at_level(logging.WARNING, logger="orbitcube.pipeline"):
        got = skipping["data"].values[0]
    np.testing.assert_array_equal(got, 200)  # the other scene of the day fills everything
    assert any("skipping item 'west'" in r.getMessage() for r in caplog.records)


def test_open_handles_are_bounded_per_process_under_the_open_file_limit(raster_item, monkeypatch) -> None:
    """Four reader threads opening 30 files each keep at most half the (soft) open-file limit open in total."""
    import resource
    from concurrent.futures import ThreadPoolExecutor

    from orbitcube.pipeline import handles as reader

    items = [raster_item(f"f{i}", np.full((8, 8), i, np.uint16), _TR, _T0) for i in range(30)]
    hrefs = [it.assets["data"].href for it in items]
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (40, 4096))
    assert reader.handle_budget() == 20

    def open_all(_n: int) -> int:
        for h in hrefs:
            reader.open_dataset(h)
        return len(reader._HANDLES.cache)

    with ThreadPoolExecutor(4) as pool:
        per_thread = list(pool.map(open_all, range(4)))
        # while the threads (and their caches) are alive; only this test's files (earlier tests' threads keep theirs)
        mine = sum(
            1
            for c in list(reader._CACHES)
            for k, (src, _) in list(c.items())
            if k[0] in hrefs and not src.closed
        )
        assert mine <= 20 and reader.open_handles() >= mine
    assert max(per_thread) <= 20


# ----- property: per-item encodings and validity against GDAL ------------------------------------------------------
_DTYPES = ["uint8", "uint16", "int16", "float32"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=st.sampled_from(_DTYPES),
    nodata_in=st.sampled_from(["none", "stac", "file"]),
    scale=st.floats(1e-4, 10),
    offset=st.floats(-1, 1),
    shift=st.tuples(st.integers(-8, 8), st.integers(-8, 8)),
    sub=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_each_item_decodes_with_its_own_encoding_like_gdal(
    raster_item, dtype, nodata_in, scale, offset, shift, sub, seed
) -> None:
    """One scene with random dtype, nodata (none, STAC-only, file-only), scale and offset, loaded with another
    scene of the same collection that has a different encoding and comes first: equals GDAL's nearest warp of
    the file, decoded with the scene's own scale/offset, NaN outside the scene and at nodata."""
    rng = np.random.default_rng(seed)
    nd = {"uint8": 255, "uint16": 0, "int16": -1, "float32": -9999.0}[dtype]
    data = rng.integers(1, 120, (24, 24)).astype(dtype)
    data[rng.random(data.shape) < 0.1] = nd
    tag = f"{seed}-{dtype}-{nodata_in}-{shift}-{sub}"
    rb = {"scale": scale, "offset": offset} | ({"nodata": nd} if nodata_in == "stac" else {})
    item = raster_item(
        f"it-{tag}", data, _TR, _T0 + dt.timedelta(hours=1), file_nodata=nd if nodata_in == "file" else None,
        asset_fields={"raster:bands": [rb]},
    )  # fmt: skip
    other = raster_item(
        f"other-{tag}", np.full((24, 24), 3, dtype), _TR, _T0, asset_fields={"raster:bands": [{"scale": 7.0}]}
    )
    frac = 0.3 if sub else 0.0
    gbox = GeoBox((20, 20), _TR * Affine.translation(shift[1] + frac, shift[0] + frac), "EPSG:32632")
    cube = load_cube([other, item], ["data"], geobox=gbox, mask=None, groupby="time", resampling="nearest")
    got = cube["data"].values[1]
    ref = np.full(gbox.shape.yx, np.nan)
    src_nodata = None if nodata_in == "none" else nd
    reproject(data.astype("f8"), ref, src_transform=_TR, src_crs="EPSG:32632", src_nodata=src_nodata,
              dst_transform=gbox.transform, dst_crs="EPSG:32632", dst_nodata=np.nan,
              resampling=Resampling.nearest)  # fmt: skip
    want = (ref * np.float32(scale) + np.float32(offset)).astype(np.float32)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * (abs(offset) + 1))
    np.testing.assert_allclose(cube["data"].values[0][np.isfinite(cube["data"].values[0])], 21.0)


# ----- reading only the pixels a mosaic still needs ------------------------------------------------------------------
@pytest.mark.parametrize(
    "grid, resampling",
    [("native", "nearest"), ("shifted", "bilinear"), ("half", "nearest"), ("half", "bilinear"), ("zone33", "bilinear"),
     ("zone33", "nearest")],
)  # fmt: skip
def test_a_read_restricted_to_needed_pixels_gives_the_same_values_there(
    raster_item, grid, resampling
) -> None:
    """read_asset(need=...) -- a later scene of a mosaic -- returns the full read's values and validity at every
    needed pixel, by each path: a plain windowed read, a k x k repeat (a 10 m grid over 20 m pixels), a pixel map
    within and across UTM zones."""
    import rasterio

    from orbitcube.pipeline.reader import AssetSpec, read_asset

    rng = np.random.default_rng(3)
    data = rng.integers(1, 5000, (64, 64)).astype(np.uint16)
    data[:, :5] = 0  # nodata
    item = raster_item("need", data, Affine(20, 0, 500_000, 0, -20, 5_000_000), _T0, file_nodata=0)
    asset = AssetSpec(href=item.assets["data"].href, nodata=0)
    grids = {
        "native": GeoBox((70, 60), Affine(20, 0, 499_900, 0, -20, 5_000_040), "EPSG:32632"),
        "shifted": GeoBox((50, 50), Affine(20, 0, 500_007, 0, -20, 4_999_993), "EPSG:32632"),
        "half": GeoBox((90, 110), Affine(10, 0, 500_030, 0, -10, 4_999_970), "EPSG:32632"),
        "zone33": GeoBox.from_bbox((28_000, 5_016_000, 29_000, 5_017_100), "EPSG:32633", resolution=10),
    }
    gbox = grids[grid]
    need = np.zeros(gbox.shape.yx, bool)
    need[3:17, 20:31] = True
    need[::9, ::4] = True
    with rasterio.Env():
        full = read_asset(asset, gbox, resampling)
        part = read_asset(asset, gbox, resampling, need)
    assert full is not None and part is not None and full[1][need].sum() > 10
    np.testing.assert_array_equal(part[1][need], full[1][need])
    np.testing.assert_array_equal(part[0][need & full[1]], full[0][need & full[1]])
    assert part[1][~need].sum() < full[1][~need].sum()  # less was read


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 4), st.integers(1, 8), st.integers(1, 8), st.integers(0, 40), st.integers(0, 40), st.data()
)
def test_k_by_k_repeats_equal_numpy_repeat(k, bh, bw, sy, sx, data) -> None:
    """The broadcast k x k repeat of a coarse block (20 m onto 10 m) equals np.repeat on any sub-window."""
    from orbitcube.pipeline.reader import _repeat_into

    block = np.arange(bh * bw, dtype=np.uint16).reshape(bh, bw)
    rep = np.repeat(np.repeat(block, k, 0), k, 1)
    sy, sx = min(sy, rep.shape[0] - 1), min(sx, rep.shape[1] - 1)
    h = data.draw(st.integers(1, rep.shape[0] - sy))
    w = data.draw(st.integers(1, rep.shape[1] - sx))
    got = np.zeros((h, w), np.uint16)
    _repeat_into(got, block, sy, sx, k)
    np.testing.assert_array_equal(got, rep[sy : sy + h, sx : sx + w])


def test_the_tile_crs_wkt_is_cached_by_its_text_and_bounded() -> None:
    """The reader asks every read for the tile CRS's WKT: cached by the CRS's text, equal to the CRS's own WKT,
    never more than 64 entries."""
    from orbitcube.pipeline import reader

    for epsg in (32632, 32633, 4326, *range(32601, 32661), *range(32701, 32721)):
        gbox = GeoBox((4, 4), _TR, f"EPSG:{epsg}")
        assert reader._crs_wkt(gbox.crs) == gbox.crs.wkt
        assert len(reader._WKT) <= 64
