"""Silent misses: an input that cannot match (reversed dates, an unknown collection, a latitude of 95) is an error,
not zero results; a scene that cannot contribute (missing file, raster outside its footprint, no datetime) is
named with the reason in the dry-run, the run summary and the HTML report, never only in a log line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile_helpers import assert_clean_error, item_json, run_cli, tiny_recipe_doc

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.query import parse_datetime, search
from orbitcube.pipeline.errors import RecipeError
from orbitcube.pipeline.recipe import load_recipe

COLLECTION = "sentinel-2-l2a-sim"


@pytest.mark.parametrize(
    "interval", ["2023-08/2023-06", "2023-06-20/2023-06-01", "2023-06-01T12:00:00Z/2023-06-01T06:00Z"]
)
def test_reversed_text_interval_is_an_error(tiny_mission, interval: str) -> None:
    with pytest.raises(CatalogError, match="ends before it starts"):
        parse_datetime(interval)
    with pytest.raises(CatalogError, match="swap"):
        search(tiny_mission.catalog_path, datetime=interval)
    assert parse_datetime("2023-06/2023-06")[0] < parse_datetime("2023-06/2023-06")[1]  # one month: fine


def test_reversed_interval_through_cli_and_recipe(tiny_mission, make_recipe) -> None:
    res = run_cli("catalog", "search", str(tiny_mission.catalog_path), "--datetime", "2023-08/2023-06")
    assert_clean_error(res, "2023-08/2023-06", "swap them: 2023-06/2023-08")
    res = run_cli("run", str(make_recipe(search={"datetime": "2023-06-20/2023-06-01"})), "--dry-run")
    assert_clean_error(res, "search.datetime", "ends before it starts")


def test_unknown_collection_is_an_error_naming_the_known_ones(tiny_mission, make_recipe) -> None:
    with pytest.raises(CatalogError, match=f"'sentinel-2-l2a' has no items here.*{COLLECTION}"):
        search(tiny_mission.catalog_path, collections=["sentinel-2-l2a"])
    with pytest.raises(CatalogError, match="'landsat-c2-l2'"):  # one of two unknown: still an error
        search(tiny_mission.items, collections=[COLLECTION, "landsat-c2-l2"])
    assert len(search(tiny_mission.catalog_path, collections=[COLLECTION])) == len(tiny_mission.items)
    res = run_cli("catalog", "search", str(tiny_mission.catalog_path), "--collections", "s2-l2a")
    assert_clean_error(res, "'s2-l2a'", COLLECTION)
    res = run_cli("run", str(make_recipe(search={"collections": ["sentinel2"]})), "--dry-run")
    assert_clean_error(res, "'sentinel2'", COLLECTION)


@pytest.mark.parametrize(
    ("bbox", "needle"),
    [((0, 45, 1, 95), "north 95"), ((-200, 45, 1, 46), "west -200"), ((0, -91, 1, 46), "south -91")],
)
def test_out_of_range_bbox_is_refused_by_search_cli_and_recipe_alike(tiny_mission, bbox, needle) -> None:
    with pytest.raises(CatalogError, match=needle) as from_search:
        search(tiny_mission.catalog_path, bbox=bbox)
    res = run_cli("catalog", "search", str(tiny_mission.catalog_path), "--bbox=" + ",".join(map(str, bbox)))
    line = assert_clean_error(res, needle, "WGS84")
    doc = tiny_recipe_doc(tiny_mission, "cube.zarr")
    doc["search"]["aoi"] = list(bbox)
    with pytest.raises(RecipeError, match=needle) as from_recipe:
        load_recipe(doc)
    # one validation: the same explanation everywhere
    why = str(from_search.value).split(": ", 1)[1]
    assert why in line and why in str(from_recipe.value)


def _shift_raster(item_file: Path, metres: float) -> str:
    """Move every asset's proj:transform of an item by ``metres`` east: its raster no longer meets its footprint."""
    d = json.loads(item_file.read_text())
    for a in d["assets"].values():
        if "proj:transform" in a:
            a["proj:transform"][2] += metres
    item_file.write_text(json.dumps(d))
    return d["id"]


def test_raster_outside_footprint_is_reported_at_plan_time(mission_copy: Path, make_recipe, caplog) -> None:
    from orbitcube.pipeline.plan import plan_run

    moved = _shift_raster(item_json(mission_copy, 1), 500_000)
    recipe = make_recipe(catalog=mission_copy)
    plan = plan_run(recipe)
    assert moved in plan.skipped and "outside the item's geometry" in plan.skipped[moved]
    assert moved not in {it.id for it in plan.items}
    assert any(moved in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    res = run_cli("run", str(recipe), "--dry-run")
    assert res.code == 0, res.err
    assert f"skipped {moved}: asset" in res.out and "proj:transform" in res.out


def test_null_datetime_with_an_interval_is_valid_stac_and_loads(mission_copy: Path, make_recipe) -> None:
    """STAC allows ``datetime: null`` with start/end_datetime (real annual products do it): listed by search,
    planned and labelled from its interval, not skipped and not a traceback."""
    p = item_json(mission_copy, 2)
    d = json.loads(p.read_text())
    d["properties"].update(
        datetime=None, start_datetime="2023-06-06T00:00:00Z", end_datetime="2023-06-06T23:59:59Z"
    )
    p.write_text(json.dumps(d))
    found = run_cli("catalog", "search", str(mission_copy))
    assert found.code == 0 and d["id"] in found.out, found.err
    res = run_cli("run", str(make_recipe(catalog=mission_copy)), "--dry-run")
    assert res.code == 0, res.err
    assert f"skipped {d['id']}" not in res.out


def test_dropped_scene_is_listed_in_run_summary_and_report(
    mission_copy: Path, make_recipe, tmp_path: Path
) -> None:
    p = item_json(mission_copy, 0)
    dropped = json.loads(p.read_text())["id"]
    (p.parent / "B04.tif").unlink()  # one band file of one scene is gone
    res = run_cli("-q", "run", str(make_recipe(catalog=mission_copy)), timeout=180)
    assert res.code == 0, res.err
    assert "1 scene(s) skipped" in res.out
    line = next(ln for ln in res.out.splitlines() if dropped in ln)
    assert "missing" in line and "B04" in line
    report = (tmp_path / "cube-report" / "index.html").read_text()
    assert dropped in report and "B04.tif" in report


def test_library_load_names_an_item_without_geometry_and_labels_an_interval_item(tiny_mission) -> None:
    import numpy as np

    from orbitcube.pipeline.errors import LoadError
    from orbitcube.pipeline.load import load_cube

    items = [it.clone() for it in tiny_mission.items[:2]]
    items[1].geometry = None
    with pytest.raises(LoadError, match=f"{items[1].id}.*geometry null"):
        load_cube(items, ["red"], crs="EPSG:32632", resolution=20)
    items = [it.clone() for it in tiny_mission.items[:2]]
    items[1].datetime = None
    items[1].properties.update(start_datetime="2023-06-01T00:00:00Z", end_datetime="2023-06-02T00:00:00Z")
    cube = load_cube(items, ["red"], crs="EPSG:32632", resolution=20, groupby="time")
    assert np.datetime64("2023-06-01T00:00:00", "ns") in cube["time"].values
