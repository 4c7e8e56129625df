"""CQL2 property filters (text and JSON) on the catalog index, checked against plain Python predicates."""

from __future__ import annotations

import fnmatch

import pytest

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.query import search
from orbitcube.catalog.simulator import Mission

CASES = [
    (
        "platform = 'sentinel-2a' AND eo:cloud_cover < 30",
        lambda p, i: p["platform"] == "sentinel-2a" and p["eo:cloud_cover"] < 30,
    ),
    ("platform IN ('landsat-8', 'landsat-9')", lambda p, i: p["platform"] in ("landsat-8", "landsat-9")),
    ("eo:cloud_cover BETWEEN 10 AND 40", lambda p, i: 10 <= p["eo:cloud_cover"] <= 40),
    ("id LIKE 'S2A%'", lambda p, i: fnmatch.fnmatch(i, "S2A*")),
    (
        "NOT (eo:cloud_cover > 50) OR platform = 'landsat-9'",
        lambda p, i: not p["eo:cloud_cover"] > 50 or p["platform"] == "landsat-9",
    ),
    ("view:sun_elevation >= 0 AND view:sun_elevation <> 999", lambda p, i: "view:sun_elevation" in p),
    ("datetime >= TIMESTAMP('2023-07-01T00:00:00Z')", lambda p, i: p["datetime"] >= "2023-07-01"),
]


@pytest.fixture(params=["json-walk", "parquet-index"])
def source(request, mixed_mission: Mission, indexed_catalog):
    """The simulator's catalog (no index: its JSON is walked) and the same items behind a parquet index."""
    return mixed_mission.catalog_path if request.param == "json-walk" else indexed_catalog


@pytest.mark.parametrize(("text", "predicate"), CASES, ids=[c[0] for c in CASES])
def test_cql2_text_filters_match_python_predicates(mixed_mission: Mission, source, text, predicate) -> None:
    got = [i.id for i in search(source, filter=text)]
    want = sorted(
        (i for i in mixed_mission.items if predicate(i.to_dict()["properties"], i.id)),
        key=lambda i: (i.datetime, i.id),
    )
    assert got == [i.id for i in want]
    assert got, "each case should match something in the mixed mission"


def test_cql2_json_equals_text(mixed_mission: Mission) -> None:
    text = "platform = 'sentinel-2b' AND eo:cloud_cover <= 60"
    js = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "platform"}, "sentinel-2b"]},
            {"op": "<=", "args": [{"property": "properties.eo:cloud_cover"}, 60]},
        ],
    }
    a = [i.id for i in search(mixed_mission.catalog_path, filter=text)]
    b = [i.id for i in search(mixed_mission.catalog_path, filter=js)]
    assert a == b and a


def test_bad_filters_are_clear_errors(source) -> None:
    with pytest.raises(CatalogError, match="not valid CQL2"):
        search(source, filter="eo:cloud_cover <<< 3")
    # a property no item has is most likely a typo: an error listing the properties there are
    with pytest.raises(CatalogError, match=r"'eo:cloudcover' is not a property .*eo:cloud_cover"):
        search(source, filter="eo:cloudcover < 20")
    # ... but its absence can be tested, and a property some items lack is null for them (as in SQL)
    assert len(search(source, filter="nonexistent:field IS NULL")) == len(search(source))
    s2 = search(source, collections="sentinel-2-l2a-sim")
    assert [i.id for i in search(source, filter="s2:mgrs_tile LIKE '3%'")] == [i.id for i in s2]
    assert len(search(source, filter="NOT (s2:mgrs_tile LIKE '3%')")) == 0  # null for Landsat, not "not like"
    with pytest.raises(CatalogError, match="compare each property with a value of its type"):
        search(source, filter="eo:cloud_cover = 'cloudy'")
    with pytest.raises(CatalogError, match="not supported"):
        search(source, filter="S_INTERSECTS(geometry, POINT(1 2))")


def test_sort_descending_and_limit(mixed_mission: Mission) -> None:
    got = search(mixed_mission.catalog_path, sortby="-eo:cloud_cover", limit=5)
    covers = [i.properties["eo:cloud_cover"] for i in got]
    assert len(got) == 5 and covers == sorted(covers, reverse=True)
    assert covers[0] == max(i.properties["eo:cloud_cover"] for i in mixed_mission.items)


def test_intersects_in_another_crs_and_open_intervals(mixed_mission: Mission) -> None:
    from odc.geo.geom import box

    w, s, e, n = mixed_mission.config.aoi_bbox
    utm = box(w, s, e, n, crs=4326).to_crs("EPSG:32632")
    a = [i.id for i in search(mixed_mission.catalog_path, intersects=utm)]
    b = [i.id for i in search(mixed_mission.catalog_path, bbox=(w, s, e, n))]
    assert a == b and a
    late = search(mixed_mission.catalog_path, datetime="2023-07-01/..")
    early = search(mixed_mission.catalog_path, datetime="../2023-06-30")
    assert len(late) + len(early) == len(mixed_mission.items)
    assert all(i.datetime.month >= 7 for i in late) and all(i.datetime.month == 6 for i in early)


def test_index_search_equals_json_walk(mixed_mission: Mission) -> None:
    """The parquet index and the items themselves (in-memory search) give the same answer."""
    kw = {"max_cloud_cover": 50, "datetime": "2023-06-10/2023-07-10", "filter": "platform LIKE 'sentinel%'"}
    a = [i.id for i in search(mixed_mission.catalog_path, **kw)]
    b = [i.id for i in search(list(mixed_mission.items), **kw)]
    assert a == b and a
