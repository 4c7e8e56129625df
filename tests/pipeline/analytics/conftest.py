"""Analytics fixtures: the planted truth of the s2 mission as a perfect loader would return it, small synthetic cubes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from orbitcube.catalog.simulator import Mission, MissionConfig, Truth

BANDS = ("green", "red", "nir", "swir22")


@pytest.fixture(scope="session")
def year_truth() -> Truth:
    """A whole year (2023) of Sentinel-2 passes over a 128 px tile, truth only (no scene files are written)."""
    cfg = MissionConfig(
        seed=3, tile_size=128, start=dt.date(2023, 1, 1), end=dt.date(2023, 12, 31), cloudiness=0.4
    )
    return Truth(cfg)


@pytest.fixture(scope="session")
def year_observed(year_truth: Truth) -> xr.Dataset:
    """The year observed at 20 m (90 x 60 px, 73 dates): NaN under clouds, shadows and off-swath; dask-backed."""
    gbox = year_truth.config.truth_geobox(20)
    return year_truth.observed_cube(gbox, bands=BANDS).chunk({"time": -1, "y": 32, "x": 32})


@pytest.fixture(scope="session")
def season_observed(s2_mission: Mission) -> xr.Dataset:
    """May-August of the s2 mission on its 10 m truth grid, as a perfect loader returns it (numpy-backed)."""
    return s2_mission.truth.observed_cube(s2_mission.config.truth_geobox(10), bands=BANDS)


def synthetic_cube(
    times: int = 6, ny: int = 8, nx: int = 10, *, seed: int = 0, bands=("blue", "red", "nir")
) -> xr.Dataset:
    """A small cube in UTM 32N with a spatial_ref coordinate and some NaN (masked) pixels."""
    rng = np.random.default_rng(seed)
    gbox = GeoBox.from_bbox(
        (600000, 5000000, 600000 + 10 * nx, 5000000 + 10 * ny), crs="EPSG:32632", resolution=10
    )
    t = np.arange("2023-03-01", times * 7, 7, dtype="datetime64[D]")[:times].astype("datetime64[ns]")
    data = {}
    for b in bands:
        a = rng.uniform(0.02, 0.5, (times, ny, nx)).astype("f4")
        a[rng.uniform(size=a.shape) < 0.2] = np.nan
        data[b] = (("time", "y", "x"), a, {"units": "1"})
    return xr.Dataset(
        data, coords={"time": t, **xr_coords(gbox, dims=("y", "x"))}, attrs={"title": "synthetic"}
    )


@pytest.fixture()
def small_cube() -> xr.Dataset:
    """blue, red, nir over 6 weekly dates, 8 x 10 px of 10 m in UTM 32N, 20 % of the values masked (NaN)."""
    return synthetic_cube()
