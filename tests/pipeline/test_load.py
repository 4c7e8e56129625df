"""Loading: simulator items -> masked, mosaicked cube that matches the planted truth."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import xarray as xr

from orbitcube.catalog.simulator import Mission
from orbitcube.pipeline.errors import LoadError
from orbitcube.pipeline.load import load_cube
from orbitcube.pipeline.masks import dilate


def test_cube_contract(s2_mission: Mission, s2_cube: xr.Dataset) -> None:
    assert list(s2_cube.data_vars) == ["red", "nir", "swir22"]
    assert s2_cube["red"].dims == ("time", "y", "x") and s2_cube["red"].dtype == np.float32
    assert s2_cube.odc.geobox == s2_mission.config.truth_geobox(10)
    # one time step per pass (the two tiles of a pass are mosaicked), sorted
    assert s2_cube.sizes["time"] == len(s2_mission.truth.passes("sentinel-2"))
    assert np.all(np.diff(s2_cube.time.values).astype("timedelta64[D]").astype(int) == 5)


def test_unmasked_pixels_equal_clear_sky_truth(s2_mission: Mission, s2_cube: xr.Dataset) -> None:
    gbox = s2_mission.config.truth_geobox(10)
    truth = s2_mission.truth.clear_sky_cube(gbox, bands=("red", "nir"))
    for band in ("red", "nir"):
        got, want = s2_cube[band].values, truth[band].values
        ok = np.isfinite(got)
        assert ok.mean() > 0.3
        err = np.abs(got - want)[ok]
        # sensor noise (0.003) + haze (< 0.01 in red) + bilinear resampling across the zone boundary
        assert np.median(err) < 0.006, band
        assert np.quantile(err, 0.98) < 0.02, band


def test_masks_remove_planted_clouds_and_shadows(s2_mission: Mission, s2_cube: xr.Dataset) -> None:
    gbox = s2_mission.config.truth_geobox(10)
    truth = s2_mission.truth
    total_cloudy = 0
    for i, (day, acqs) in enumerate(sorted(truth.passes("sentinel-2").items())):
        m = truth.masks(gbox, acqs[0])  # clouds are shared by the pass
        bad = m["cloud"] | m["shadow"]
        nan = np.isnan(s2_cube["nir"].values[i])
        total_cloudy += int(bad.sum())
        # every planted cloud/shadow pixel is masked (SCL is 20 m: allow its edge pixels)
        if bad.sum():
            assert nan[bad].mean() > 0.97, day
        covered = np.zeros(gbox.shape.yx, bool)
        for a in acqs:
            covered |= truth.masks(gbox, a)["covered"]
        clear = ~bad & covered
        assert (~nan[clear]).mean() > 0.97, day  # and clear covered pixels are kept
    assert total_cloudy > 0


def test_two_utm_zones_mosaic_without_seam(s2_mission: Mission, s2_cube: xr.Dataset) -> None:
    """Along the zone boundary (12 E) the cube has data wherever either tile saw clear ground."""
    truth = s2_mission.truth
    gbox = s2_mission.config.truth_geobox(10)
    col = int(np.argmin(np.abs(s2_cube.x.values - np.mean(s2_cube.x.values))))
    for i, (_day, acqs) in enumerate(sorted(truth.passes("sentinel-2").items())):
        m = truth.masks(gbox, acqs[0])
        # 2 px margin: SCL is 20 m, so 10 m pixels at cloud edges may go either way
        clear = ~dilate(m["cloud"] | m["shadow"], 20, 10)[:, col - 3 : col + 4]
        strip = s2_cube["red"].values[i][:, col - 3 : col + 4]
        assert np.isfinite(strip[clear]).all()


def test_groupby_time_keeps_every_scene(s2_mission: Mission) -> None:
    gbox = s2_mission.config.truth_geobox(40)
    cube = load_cube(s2_mission.items[:6], ["red"], geobox=gbox, groupby="time")
    assert cube.sizes["time"] == 6


def test_time_chunks_split_the_read_tasks_not_the_values(s2_mission: Mission, s2_cube: xr.Dataset) -> None:
    """chunks={"time": n}: one read task per (n steps, tile), so a task's memory is bounded by n whatever the
    time span; the values are those of the whole-axis load."""
    gbox = s2_mission.config.truth_geobox(10)
    cube = load_cube(s2_mission.items, ["red", "nir", "swir22"], geobox=gbox, chunks={"time": 3, "y": 128})
    nt = s2_cube.sizes["time"]
    assert cube["red"].chunks[0] == (3,) * (nt // 3) + ((nt % 3,) if nt % 3 else ())
    assert set(cube["red"].chunks[1]) <= {128, gbox.shape.y % 128}
    reads = [k for k in cube["red"].__dask_graph__() if isinstance(k, tuple) and k[0].startswith("load-tile")]
    assert len(reads) == cube["red"].data.npartitions
    xr.testing.assert_identical(cube.compute(), s2_cube)
    for bad in ({"time": 0}, {"y": 1.5}, {"band": 2}):
        with pytest.raises(LoadError, match="chunks"):
            load_cube(s2_mission.items[:2], ["red"], geobox=gbox, chunks=bad)


def test_default_time_chunk_comes_from_the_memory_budget(s2_mission: Mission, s2_cube: xr.Dataset) -> None:
    """No time chunk given: one read task's output stays within READ_TASK_SHARE of memory_per_worker (bands x
    steps x tile float32), balanced over the axis; -1 keeps the whole axis; the values do not change."""
    from orbitcube.pipeline.load import READ_TASK_SHARE, auto_time_chunk

    # 2 GiB / 64 = 32 MiB a task: 16 steps of 2 bands of 512 px; 96 steps -> 6 tasks of 16, 24 -> 2 of 12
    assert auto_time_chunk(2, (512, 512), 96) == 16 and auto_time_chunk(2, (512, 512), 24) == 12
    assert auto_time_chunk(4, (512, 512), 660) == 8  # the 4 bands x 660 days: 83 tasks of at most 8
    assert auto_time_chunk(2, (1024, 1024), 12) == 4
    assert auto_time_chunk(2, (512, 512), 96, "256MiB") == 2
    assert auto_time_chunk(8, (4096, 4096), 10) == 1  # never below one step
    for mem in (2**30, 3 * 2**30, 123_456_789):
        for nb, tile, nt in ((1, (256, 256), 1000), (4, (512, 512), 660), (3, (1024, 1024), 73)):
            n = auto_time_chunk(nb, tile, nt, mem)
            assert n == 1 or nb * n * 4 * tile[0] * tile[1] <= mem * READ_TASK_SHARE
    assert auto_time_chunk(2, (512, 512), 96, "1GiB") == auto_time_chunk(2, (512, 512), 96, 2**30)
    with pytest.raises(LoadError, match="memory_per_worker"):
        auto_time_chunk(2, (512, 512), 10, "lots")
    gbox = s2_mission.config.truth_geobox(10)
    bands = ["red", "nir", "swir22"]
    small = load_cube(s2_mission.items, bands, geobox=gbox, chunks={"y": 128}, memory_per_worker="256MiB")
    nt = s2_cube.sizes["time"]
    assert small["red"].chunks[0] == (5, 5, 5, 5, 4) and nt == 24  # 4 MiB / (3 x 128 x 512 x 4 B) = 5
    xr.testing.assert_identical(small.compute(), s2_cube)
    assert load_cube(s2_mission.items, bands, geobox=gbox, chunks={"time": -1})["red"].chunks[0] == (nt,)
    assert load_cube(s2_mission.items, bands, geobox=gbox)["red"].chunks[0] == (8, 8, 8)  # 32 MiB / 3 MiB


def test_bad_inputs_are_clear_errors(s2_mission: Mission, tmp_path) -> None:
    with pytest.raises(LoadError, match="no band 'thermal'"):
        load_cube(s2_mission.items[:2], ["thermal"], crs="EPSG:32632", resolution=20)
    with pytest.raises(LoadError, match="intersects no item"):
        load_cube(s2_mission.items[:2], ["red"], crs="EPSG:32632", resolution=20, aoi=(0.0, 0.0, 0.1, 0.1))
    with pytest.raises(LoadError, match="no items"):
        load_cube([], ["red"])
    broken = s2_mission.items[0].clone()
    broken.assets["B04"].href = str(tmp_path / "missing.tif")
    with pytest.raises(LoadError, match="missing.tif"):
        load_cube([broken, s2_mission.items[1]], ["red"], crs="EPSG:32632", resolution=40)
    cube = load_cube([broken, s2_mission.items[1]], ["red"], crs="EPSG:32632", resolution=40, on_error="skip")
    assert cube.attrs["skipped_items"] == [broken.id]


def test_real_landsat_rows_mosaic_into_one_time_step(landsat_real_dir, tmp_path) -> None:
    from orbitcube.catalog.items import ingest

    res = ingest(landsat_real_dir, tmp_path / "cat")
    cube = load_cube(res.items, ["red", "green", "blue"], resolution=90, mask=None)
    assert cube.sizes["time"] == 1
    assert len(cube.attrs["items"]) == 2
    red = cube["red"].isel(time=0).values
    # the rows overlap along track: down the centre column there is no gap between them
    col = red[:, red.shape[1] // 2]
    finite_rows = np.flatnonzero(np.isfinite(col))
    assert finite_rows.size > 0.8 * col.size
    assert np.all(np.diff(finite_rows) == 1), "a gap between the two rows"
    assert np.nanmax(red) > 1000  # Level-1 digital numbers (no scale in Collection 1 L1)


# ----- per-item radiometry (issue 13, defects 2 and 7) -------------------------------------------------------------
@pytest.fixture(scope="module")
def baseline_mission(tmp_path_factory: pytest.TempPathFactory) -> Mission:
    """Sentinel-2 across the processing-baseline change of 25 January 2022 (items state their baseline and
    offset), written without nodata in the files or items, full swaths (two UTM zone tiles per pass)."""
    import datetime as dt

    from orbitcube.catalog.simulator import MissionConfig, simulate_mission

    cfg = MissionConfig(
        seed=11,
        tile_size=64,
        start=dt.date(2022, 1, 1),
        end=dt.date(2022, 2, 20),
        cloudiness=0.2,
        partial_swath=False,
        events=False,
        write_truth_reflectance=False,
        s2_baseline_change=True,
        nodata_in_files=False,
    )
    return simulate_mission(cfg, tmp_path_factory.mktemp("baseline-mission"))


def test_offsets_are_per_item_across_the_2022_baseline_change(baseline_mission: Mission) -> None:
    """Scenes before 25 January 2022 have no BOA offset, later ones -0.1: both halves of the series match the
    truth (no 0.1 bias), and the cube records which offset each group of items got, from the items."""
    import datetime as dt

    gbox = baseline_mission.config.truth_geobox(20)
    items = baseline_mission.items
    assert {it.properties["s2:processing_baseline"] for it in items} == {"03.01", "04.00"}
    red = items[0].assets["B04"]
    assert "nodata" not in red.extra_fields["raster:bands"][0]  # the simulator's nodata-less option
    with rasterio.open(red.get_absolute_href()) as src:
        assert src.nodata is None
    cube = load_cube(items, ["red"], geobox=gbox).compute()
    truth = baseline_mission.truth.clear_sky_cube(gbox, bands=("red",))["red"].values
    cutoff = np.datetime64(dt.date(2022, 1, 25))
    before = cube.time.values < cutoff
    assert before.any() and (~before).any()
    for half in (before, ~before):
        got, want = cube["red"].values[half], truth[half]
        ok = np.isfinite(got)
        assert ok.mean() > 0.4
        assert abs(float(np.median((got - want)[ok]))) < 0.01
    groups = {(g["offset"], g["source"]): g for g in cube.attrs["scale_offset"]["red"]}
    assert set(groups) == {(0.0, "item"), (-0.1, "item")}
    old = {it.id for it in items if it.datetime.date() < dt.date(2022, 1, 25)}
    assert set(groups[(0.0, "item")]["items"]) == old


def test_nodata_less_tiles_of_two_utm_zones_mosaic_like_odc_stac(baseline_mission: Mission) -> None:
    """Files and items without nodata: outside each zone's tile the fill is not data, so the other tile of the
    pass fills it. odc-stac (same-day fusing, average, decoded with each day's offset) agrees everywhere."""
    import odc.stac

    gbox = baseline_mission.config.truth_geobox(20)
    items = baseline_mission.items
    cube = load_cube(items, ["red"], geobox=gbox, mask=None).compute()
    ref = odc.stac.load(
        items, bands=["red"], geobox=gbox, groupby="solar_day", resampling="average", dtype="f4"
    )
    offset = np.where(ref.time.values >= np.datetime64("2022-01-25"), np.float32(-0.1), np.float32(0))
    want = ref["red"].values * np.float32(1e-4) + offset[:, None, None]
    got = cube["red"].values
    assert got.shape == want.shape and np.isfinite(got).all()
    err = np.abs(got - want)
    assert np.quantile(err, 0.99) < 0.03 and err.max() < 0.06  # (a 0-DN fill taken as data is >= 0.1 off)


_T0 = np.datetime64("2023-05-01T10:00:00")


def _when(minutes: int = 0, year: int = 2023):
    import datetime as dt

    return dt.datetime(year, 5, 1, 10, minutes, tzinfo=dt.UTC)


def _s2_pc_item(raster_item, item_id, dn, baseline, when):
    """A Planetary Computer style Sentinel-2 L2A item: no raster:bands, the baseline in the properties."""
    from affine import Affine

    eo = {"eo:bands": [{"name": "B04", "common_name": "red", "center_wavelength": 0.665}]}
    return raster_item(
        item_id,
        np.full((32, 32), dn, np.uint16),
        Affine(10, 0, 500000, 0, -10, 5000000),
        when,
        file_nodata=0,
        key="B04",
        collection="sentinel-2-l2a",
        asset_fields=eo,
        properties={"platform": "Sentinel-2B", "s2:processing_baseline": baseline},
    )


def test_product_table_fills_in_where_the_items_are_silent(raster_item) -> None:
    """Planetary Computer S2 L2A (no raster:bands): DN/10000 - 0.1 from baseline 04.00, DN/10000 before; the
    cube says so (source product-table); a user's scale_offset overrides both (source user)."""
    new = _s2_pc_item(raster_item, "new", 3500, "05.10", _when(0))
    old = _s2_pc_item(raster_item, "old", 3500, "03.01", _when(0, 2021))
    cube = load_cube([old, new], ["red"], crs="EPSG:32632", resolution=10, mask=None).compute()
    np.testing.assert_allclose(cube["red"].values.reshape(2, -1).mean(axis=1), [0.35, 0.25], atol=1e-6)
    rec = {g["offset"]: g for g in cube.attrs["scale_offset"]["red"]}
    assert rec[-0.1]["source"] == rec[0.0]["source"] == "product-table"
    assert rec[-0.1]["items"] == ["new"] and rec[0.0]["scale"] == 0.0001
    mine = load_cube(
        [old, new], ["red"], crs="EPSG:32632", resolution=10, mask=None, scale_offset={"red": (1, 0)}
    )
    assert float(mine["red"].max()) == 3500.0
    assert mine.attrs["scale_offset"]["red"] == [
        {"collection": "sentinel-2-l2a", "scale": 1.0, "offset": 0.0, "source": "user"}
    ]


def test_usgs_landsat_item_level_projection_and_no_raster_bands(raster_item) -> None:
    """USGS landsat-c2l2-sr: proj:epsg/shape/transform on the item (not the assets), no raster:bands: the native
    grid is derived from the item and the product table decodes surface reflectance (DN * 2.75e-05 - 0.2)."""
    from affine import Affine

    tr = Affine(30, 0, 300015, 0, -30, 5000025)  # a real Landsat grid: corners at odd multiples of 15 m
    item = raster_item(
        "LC08_L2SP_193029_20230501_02_T1_SR",
        np.full((20, 20), 16000, np.uint16),
        tr,
        _when(),
        file_nodata=0,
        key="red",
        collection="landsat-c2l2-sr",
        asset_fields={"eo:bands": [{"name": "SR_B4", "common_name": "red"}]},
        properties={"platform": "LANDSAT_8"},
        item_level_proj=True,
    )
    cube = load_cube([item], ["red"], mask=None)
    assert cube.odc.geobox.resolution.x == 30 and cube.odc.geobox.crs.epsg == 32632
    vals = cube["red"].values
    np.testing.assert_allclose(vals[np.isfinite(vals)], 16000 * 2.75e-05 - 0.2, atol=1e-6)
    assert cube.attrs["scale_offset"]["red"][0]["source"] == "product-table"


def test_unknown_integer_encoding_loads_as_stored_with_a_warning(raster_item, caplog) -> None:
    import logging

    from affine import Affine

    item = raster_item("x", np.full((8, 8), 7, np.uint16), Affine(10, 0, 500000, 0, -10, 5000000), _when())
    with caplog.at_level(logging.WARNING, logger="orbitcube.pipeline"):
        cube = load_cube([item], ["data"], crs="EPSG:32632", resolution=10, mask=None)
    assert float(cube["data"].max()) == 7.0
    msgs = [r.getMessage() for r in caplog.records if "as stored" in r.getMessage()]
    assert len(msgs) == 1 and "scale_offset={'data': (scale, offset)}" in msgs[0]


# ----- load only what was asked; file:// hrefs (defects 8 and 12) ---------------------------------------------------
def _with_asset(item, key: str, href: str):
    import pystac

    item.add_asset(key, pystac.Asset(href, media_type="image/png", roles=["thumbnail"]))
    return item


def test_a_missing_thumbnail_neither_fails_nor_drops_a_scene(raster_item, tmp_path) -> None:
    from affine import Affine

    item = raster_item("s", np.full((8, 8), 5, np.uint16), Affine(10, 0, 500000, 0, -10, 5000000), _when())
    _with_asset(item, "thumbnail", str(tmp_path / "gone.png"))
    for on_error in ("fail", "skip"):
        cube = load_cube([item], ["data"], crs="EPSG:32632", resolution=10, mask=None, on_error=on_error)
        assert cube.attrs["skipped_items"] == [] and float(cube["data"].max()) == 5.0


def test_missing_file_url_is_checked_before_any_work(raster_item, tmp_path) -> None:
    """A ``file://`` href to a missing file: a LoadError naming item, asset and path at load time, or the scene
    skipped with on_error='skip'."""
    from pathlib import Path

    from affine import Affine

    tr = Affine(10, 0, 500000, 0, -10, 5000000)
    good = raster_item("good", np.full((8, 8), 5, np.uint16), tr, _when())
    bad = raster_item("bad", np.full((8, 8), 6, np.uint16), tr, _when(5))
    path = Path(bad.assets["data"].href)
    bad.assets["data"].href = path.as_uri()
    path.unlink()
    with pytest.raises(LoadError, match=r"item 'bad' asset 'data' cannot be opened: file://.*does not exist"):
        load_cube([good, bad], ["data"], crs="EPSG:32632", resolution=10, mask=None)
    cube = load_cube([good, bad], ["data"], crs="EPSG:32632", resolution=10, mask=None, on_error="skip")
    assert cube.attrs["skipped_items"] == ["bad"] and float(cube["data"].max()) == 5.0
