"""Time labels (pipeline/timeaxis.py, orbitcube.pipeline.load.solar_day): UTC, date-only items, the antimeridian."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pystac
import pytest

from orbitcube.pipeline.load import solar_day
from orbitcube.pipeline.timeaxis import acquisition_utc, scene_time, time_unknown
from tests.conftest import SHARED_DATA


def _item(when, geometry: dict, bbox: list[float], **props) -> pystac.Item:
    return pystac.Item("x", geometry, bbox, when, props)


def _box(w: float, s: float, e: float, n: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def day(t: np.datetime64) -> str:
    return str(t)[:10]


def test_date_only_items_keep_their_date_in_the_western_hemisphere() -> None:
    """A file name with only a date (ingest: 00:00 UTC plus the UTC-day interval) is labelled with that date, not
    the previous day as 00:00 UTC shifted by -56 / 15 h would give; a real midnight time is still shifted."""
    midnight = dt.datetime(2020, 5, 18, tzinfo=dt.UTC)
    geom, bbox = _box(-57, -26, -56, -25), [-57, -26, -56, -25]
    date_only = _item(
        midnight,
        geom,
        bbox,
        start_datetime="2020-05-18T00:00:00.000000Z",
        end_datetime="2020-05-18T23:59:59.000000Z",
    )
    assert time_unknown(date_only)
    assert day(solar_day(date_only)) == "2020-05-18"
    known = _item(midnight, geom, bbox)
    assert not time_unknown(known) and day(solar_day(known)) == "2020-05-17"


def test_offsets_are_converted_to_utc() -> None:
    """23:30 at UTC-5 is 04:30 UTC the next day: at longitude 0 the solar day is the next day."""
    t = dt.datetime(2023, 6, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    it = _item(t, _box(-0.5, 45, 0.5, 46), [-0.5, 45, 0.5, 46])
    assert acquisition_utc(it) == dt.datetime(2023, 6, 2, 4, 30)
    assert day(solar_day(it)) == "2023-06-02"
    assert scene_time(it) == np.datetime64("2023-06-02T04:30", "ns")


@pytest.mark.parametrize(
    "geometry, bbox",
    [
        (  # split at +-180 (RFC 7946), bbox west > east (STAC)
            {
                "type": "MultiPolygon",
                "coordinates": [_box(178, -1, 180, 1)["coordinates"], _box(-180, -1, -179, 1)["coordinates"]],
            },
            [178, -1, -179, 1],
        ),
        (_box(178, -1, -179, 1), [-180, -1, 180, 1]),  # one ring jumping across, bbox round the globe
        (None, [178, -1, -179, 1]),  # no geometry: the bbox alone
    ],
)
def test_antimeridian_items_are_centred_near_180(geometry, bbox) -> None:
    """23:00 UTC at longitude 179.5 E (the centre of 178 E .. 179 W) is 10:58 the next day; at the naive centre
    (longitude ~0) it would stay on the same day."""
    it = _item(dt.datetime(2023, 6, 1, 23, tzinfo=dt.UTC), geometry, bbox)
    assert day(solar_day(it)) == "2023-06-02"


def test_real_items_near_midnight_and_at_the_antimeridian() -> None:
    """Planetary Computer items: Landsat 9 at 23:46 UTC over Tasmania is the next local morning; io-lulc tiles of
    UTM zone 60 (bbox -180..180) are centred at 177 E."""
    from orbitcube.catalog.antimeridian import centre_lon

    landsat = [
        pystac.Item.from_dict(d)
        for d in json.loads((SHARED_DATA / "real-stac-items" / "landsat-c2-l2-pc.json").read_text())
    ]
    assert {day(solar_day(it)) for it in landsat} == {"2024-04-18"}
    lulc = json.loads((SHARED_DATA / "real-stac-items" / "io-lulc-annual-v02-pc.json").read_text())
    for d in lulc:
        assert centre_lon(d["geometry"], d["bbox"]) == pytest.approx(177, abs=0.5)
        it = pystac.Item.from_dict(d)
        assert time_unknown(it) and day(solar_day(it)) == "2023-01-01"  # an annual product: its start


def test_load_orders_and_labels_scenes_in_utc(tmp_path) -> None:
    """load_cube with groupby="time": an item with an offset (10:00+05:00 = 05:00 UTC) sorts before one at 08:00
    UTC and is labelled 05:00; an item with ``datetime: null`` and an interval (an annual product) sorts by its
    start instead of failing on None."""
    from orbitcube.pipeline.load import load_cube
    from tests.pipeline.test_grid import scene_item, write_scene

    data = np.full((20, 20), 7, np.uint16)
    path = write_scene(tmp_path / "a.tif", (500_025.0, 7_199_985.0), 30, data)
    utc8 = scene_item("utc8", {"red": path}, dt.datetime(2023, 6, 1, 8, tzinfo=dt.UTC))
    plus5 = scene_item(
        "plus5", {"red": path}, dt.datetime(2023, 6, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    )
    interval = {"start_datetime": "2023-01-01T00:00:00Z", "end_datetime": "2024-01-01T00:00:00Z"}
    annual = scene_item("annual", {"red": path}, None, interval)
    cube = load_cube([utc8, plus5, annual], ["red"], mask=None, groupby="time")
    assert list(cube.item_id.values) == ["annual", "plus5", "utc8"]
    assert list(cube.time.values) == [
        np.datetime64(t, "ns") for t in ("2023-01-01", "2023-06-01T05:00", "2023-06-01T08:00")
    ]
