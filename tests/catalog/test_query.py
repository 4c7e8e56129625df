"""Search a simulated catalog by area, time, collection and cloud cover."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.query import parse_datetime, search
from orbitcube.catalog.simulator import Mission


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
    with pytest.raises(CatalogError, match="south < north"):
        search([], bbox=(10, 1, 5, 0))
    with pytest.raises(CatalogError, match="west < east"):  # only lon/lat boxes may cross the antimeridian
        search([], bbox=(500000, 0, 400000, 10), crs="EPSG:32660")


def _utm_box(bbox) -> object:
    from odc.geo.geom import box

    return box(*bbox, crs=4326).to_crs("EPSG:32632")


QUERIES = {
    "all": {},
    "west-bbox": {"bbox": "west"},
    "utm-intersects": {"intersects": "utm"},
    "open-start": {"datetime": "../2023-06-20"},
    "open-end": {"datetime": "2023-06-20T10:00:00Z/.."},
    "month": {"datetime": "2023-07"},
    "collection": {"collections": "landsat-c2-l2-sim"},
    "cloud": {"max_cloud_cover": 25},
    "filter": {"filter": "platform IN ('sentinel-2a', 'landsat-9') AND eo:cloud_cover >= 5"},
    "sort-limit": {"sortby": ["-eo:cloud_cover"], "limit": 4},
    "ids": {"ids": "from-mission"},
    "combined": {"bbox": "west", "datetime": "2023-06-05/2023-07-05", "max_cloud_cover": 60},
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_parquet_index_json_walk_and_item_list_agree(mixed_mission: Mission, indexed_catalog, name) -> None:
    """The same query on the stac-geoparquet index (several row groups), on the simulator's JSON catalog (no
    index: walked) and on the items in memory gives the same items in the same order."""
    w, s, e, n = mixed_mission.config.aoi_bbox
    kw = dict(QUERIES[name])
    if kw.get("bbox") == "west":
        kw["bbox"] = (w, s, w + 0.001, n)  # only the western tile
    if kw.get("intersects") == "utm":
        kw["intersects"] = _utm_box((e - 0.001, s, e, n))  # only the eastern tile
    if kw.get("ids") == "from-mission":
        kw["ids"] = [mixed_mission.items[i].id for i in (0, 5, 9)] + ["no-such-item"]
    by_index = search(indexed_catalog, **kw)
    by_walk = search(mixed_mission.catalog_path, **kw)
    in_memory = search(list(mixed_mission.items), **kw)
    ids = [i.id for i in by_index]
    assert ids == [i.id for i in by_walk] == [i.id for i in in_memory]
    assert ids, "every query matches something"
    if name != "all":
        assert len(ids) < len(mixed_mission.items), "and filters something out"
    for it in by_index:  # materialised from the index: absolute hrefs to the scenes' files
        assert all(Path(a.href).is_absolute() and Path(a.href).exists() for a in it.assets.values())


def test_query_arguments_are_checked(indexed_catalog) -> None:
    with pytest.raises(CatalogError, match="cannot sort by 'nope'"):
        search(indexed_catalog, sortby="nope")
    with pytest.raises(CatalogError, match="max_cloud_cover 120"):
        search(indexed_catalog, max_cloud_cover=120)
    with pytest.raises(CatalogError, match="limit 0"):
        search(indexed_catalog, limit=0)
    with pytest.raises(CatalogError, match="ends before it starts"):
        search(indexed_catalog, datetime=(dt.date(2023, 7, 1), dt.date(2023, 6, 1)))
    with pytest.raises(CatalogError, match="cannot search a int"):
        search(3)


# ----- the antimeridian ----------------------------------------------------------------------------------------------
def _item(item_id: str, geometry: dict, bbox: list[float]):
    import pystac

    return pystac.Item(item_id, geometry, bbox, dt.datetime(2023, 6, 1, tzinfo=dt.UTC), {}, collection="c")


def _ring(*lonlat: tuple[float, float]) -> dict:
    return {"type": "Polygon", "coordinates": [[*lonlat, lonlat[0]]]}


def antimeridian_items() -> list:
    """Items on both sides of the antimeridian as real catalogs serve them: a footprint split into a
    MultiPolygon at +-180 with bbox west > east (STAC spec), a single ring jumping from 179 to -179 (the Planetary
    Computer's io-lulc tiles; bbox -180..180), and a control item at 10 E."""
    split = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[170, -10], [180, -10], [180, 10], [170, 10], [170, -10]]],
            [[[-180, -10], [-170, -10], [-170, 10], [-180, 10], [-180, -10]]],
        ],
    }
    return [
        _item("split", split, [170, -10, -170, 10]),
        _item("ring", _ring((175, 50), (-175, 50), (-175, 55), (175, 55)), [-180, 50, 180, 55]),
        _item("control", _ring((10, 0), (11, 0), (11, 1), (10, 1)), [10, 0, 11, 1]),
    ]


@pytest.mark.parametrize("where", ["memory", "index"])
def test_items_that_cross_the_antimeridian_are_found(where: str, tmp_path: Path) -> None:
    """A query inside an antimeridian-crossing item finds it (both sides), a query beside it does not, and a
    query bbox with west > east (STAC) crosses too; through the parquet index and in memory alike."""
    from orbitcube.catalog.merge import write_catalog

    items = antimeridian_items()
    source = items if where == "memory" else write_catalog(items, tmp_path / "cat").root

    def ids(**kw) -> list[str]:
        return sorted(i.id for i in search(source, **kw))

    assert ids(bbox=(175, 0, 178, 5)) == ["split"]  # east of 180, inside the item
    assert ids(bbox=(-178, 0, -175, 5)) == ["split"]  # west of 180
    assert ids(bbox=(0, -5, 20, 5)) == ["control"]  # the split item does not span the globe
    assert ids(bbox=(179, -1, -179, 1)) == ["split"]  # the query crosses too
    assert ids(bbox=(179, 51, -179, 52)) == ["ring"]
    assert ids(bbox=(-178, 52, -176, 53)) == ["ring"]  # a jumping ring is not read as a band round the globe:
    assert ids(bbox=(0, 52, 20, 53)) == []
    assert ids(intersects={"type": "Point", "coordinates": [-179.5, 0]}) == ["split"]
    assert ids(bbox=(160, -20, -160, 60)) == ["ring", "split"]
