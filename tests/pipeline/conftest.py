"""Pipeline fixtures: a small Sentinel-2 mission over two UTM zones, and its cube on the truth grid."""

from __future__ import annotations

import datetime as dt

import pytest
import xarray as xr

from catalog.simulator import Mission, MissionConfig, simulate_mission


@pytest.fixture(scope="session")
def s2_mission(tmp_path_factory: pytest.TempPathFactory) -> Mission:
    """Sentinel-2 only, 128 px tiles (1.28 km), May-August 2023: 24 passes, 48 scenes, all three events."""
    cfg = MissionConfig(
        seed=5, tile_size=128, start=dt.date(2023, 5, 1), end=dt.date(2023, 8, 28), cloudiness=0.4
    )
    return simulate_mission(cfg, tmp_path_factory.mktemp("s2-mission"))


@pytest.fixture(scope="session")
def s2_cube(s2_mission: Mission) -> xr.Dataset:
    """red, nir, swir22 of the mission on the truth grid (UTM 32N, 10 m), SCL-masked, computed in memory."""
    from pipeline.load import load_cube

    gbox = s2_mission.config.truth_geobox(10)
    return load_cube(s2_mission.items, ["red", "nir", "swir22"], geobox=gbox).compute()
