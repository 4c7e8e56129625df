"""Acquisition plan: revisit schedules, tiles in two UTM zones, config validation."""

from __future__ import annotations

import datetime as dt

import pytest

from orbitcube.catalog.errors import SimulatorError
from orbitcube.catalog.simulator import MissionConfig, acquisition_plan


def test_sentinel2_revisit_every_10_days_offset_5() -> None:
    cfg = MissionConfig(start=dt.date(2023, 1, 1), end=dt.date(2023, 2, 28), tile_size=128)
    plan = acquisition_plan(cfg)
    for platform, first in (("sentinel-2a", dt.date(2023, 1, 1)), ("sentinel-2b", dt.date(2023, 1, 6))):
        days = sorted({a.datetime.date() for a in plan if a.platform == platform})
        assert days[0] == first
        assert {(b - a).days for a, b in zip(days, days[1:], strict=False)} == {10}
    # every pass covers both tiles within one solar day
    by_pass: dict = {}
    for a in plan:
        by_pass.setdefault(a.pass_key, set()).add(a.tile.tile_id)
    assert all(len(t) == 2 for t in by_pass.values())


def test_landsat_revisit_every_16_days_offset_8() -> None:
    cfg = MissionConfig(
        start=dt.date(2023, 1, 1), end=dt.date(2023, 4, 30), tile_size=128, sensors=("landsat",)
    )
    plan = acquisition_plan(cfg)
    l8 = sorted(a.datetime.date() for a in plan if a.platform == "landsat-8")
    l9 = sorted(a.datetime.date() for a in plan if a.platform == "landsat-9")
    assert {(b - a).days for a, b in zip(l8, l8[1:], strict=False)} == {16}
    assert (l9[0] - l8[0]).days == 8


def test_tiles_straddle_two_utm_zones_and_cover_the_aoi() -> None:
    cfg = MissionConfig(tile_size=256)
    west, east = cfg.tiles
    assert (west.epsg, east.epsg) == (32632, 32633)
    aoi = cfg.aoi_geometry
    from odc.geo.geom import box

    west_geom = box(west.x0, west.y1 - west.height_m, west.x0 + west.width_m, west.y1, west.epsg).to_crs(
        aoi.crs
    )
    east_geom = box(east.x0, east.y1 - east.height_m, east.x0 + east.width_m, east.y1, east.epsg).to_crs(
        aoi.crs
    )
    union = west_geom | east_geom
    assert union.contains(aoi)
    assert (west_geom & east_geom).area > 0  # tiles overlap across the zone boundary, as MGRS tiles do
    w, _, e, _ = cfg.aoi_bbox
    assert w < cfg.center_lon < e


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tile_size": 127}, "tile_size"),
        ({"sensors": ("modis",)}, "sensors"),
        ({"start": "2023-13-01"}, "start"),
        ({"start": dt.date(2023, 5, 1), "end": dt.date(2023, 4, 1)}, "end"),
        ({"cloudiness": 1.5}, "cloudiness"),
    ],
)
def test_bad_config_is_a_clear_error(kwargs: dict, field: str) -> None:
    with pytest.raises(SimulatorError, match=field):
        MissionConfig(**kwargs)
