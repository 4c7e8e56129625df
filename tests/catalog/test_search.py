"""Search a simulated catalog by area, time, collection and cloud cover."""

from __future__ import annotations

import datetime as dt

import pytest

from catalog.errors import CatalogError
from catalog.search import parse_datetime, search
from catalog.simulator import Mission


def test_search_by_time_cloud_and_collection(mixed_mission: Mission) -> None:
    all_items = search(mixed_mission.catalog_path)
    assert len(all_items) == len(mixed_mission.items)
    june = search(mixed_mission.catalog_path, datetime="2023-06")
    assert june and all(i.datetime.month == 6 for i in june)
    clear = search(mixed_mission.catalog_path, max_cloud_cover=10)
    assert clear and all(i.properties["eo:cloud_cover"] <= 10 for i in clear)
    assert len(clear) < len(all_items)
    ls = search(mixed_mission.catalog_path, collections=["landsat-c2-l2-sim"])
    assert ls and {i.collection_id for i in ls} == {"landsat-c2-l2-sim"}
    times = [i.datetime for i in all_items]
    assert times == sorted(times)
    assert len(search(mixed_mission.catalog_path, limit=3)) == 3


def test_search_by_area(mixed_mission: Mission) -> None:
    w, s, e, n = mixed_mission.config.aoi_bbox
    west = search(mixed_mission.catalog_path, bbox=(w, s, w + 0.001, n), collections=["sentinel-2-l2a-sim"])
    assert west and all(i.id.split("_")[1] == "32TQR" for i in west)  # only the western tile
    nowhere = search(mixed_mission.catalog_path, bbox=(0, 0, 0.1, 0.1))
    assert len(nowhere) == 0
    east = search(
        mixed_mission.catalog_path, intersects={"type": "Point", "coordinates": [e - 0.0005, (s + n) / 2]}
    )
    assert {i.id.split("_")[1] for i in east if i.collection_id.startswith("sentinel")} == {"33TUL"}


def test_datetime_intervals() -> None:
    a, b = parse_datetime("2023-06-01/..")
    assert a == dt.datetime(2023, 6, 1, tzinfo=dt.UTC) and b is None
    a, b = parse_datetime("2024-02")
    assert (a.day, b.day) == (1, 29)
    with pytest.raises(CatalogError, match="ISO 8601"):
        parse_datetime("June 2023")
    with pytest.raises(CatalogError, match="west < east"):
        search([], bbox=(10, 0, 5, 1))


def test_package_search_is_the_function_even_after_the_module_is_imported() -> None:
    import importlib
    import sys

    import catalog

    importlib.import_module("catalog.search")
    assert callable(catalog.search) and catalog.search is sys.modules["catalog.search"].search
