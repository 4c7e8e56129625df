"""Loading: simulator items -> masked, mosaicked cube that matches the planted truth."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from catalog.simulator import Mission
from pipeline.errors import LoadError
from pipeline.load import load_cube
from pipeline.masks import dilate


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
    from catalog.ingest import ingest

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
