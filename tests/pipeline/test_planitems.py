"""Plans from index rows (pipeline/planitems.py) equal plans from pystac Items: ids, skipped items and their
reasons, tiles and their items, time axis, template and bytes; the per-item steps on arrays equal their
pystac versions; a row plan is picklable and decodes only the items it is asked for."""

from __future__ import annotations

import datetime as dt
import pickle
import shutil

import numpy as np
import pystac
import pytest
import shapely

from orbitcube.catalog.access import Storage
from orbitcube.pipeline.footprints import shapes_and_centroids
from orbitcube.pipeline.plan import RunPlan, _plan_items, _screened, plan_run, time_axis
from orbitcube.pipeline.planitems import ItemList, ItemRows, lonlat_from_wkb, time_labels
from orbitcube.pipeline.recipe import load_recipe


def _both(doc: dict) -> tuple[RunPlan, RunPlan]:
    rows = plan_run(doc)
    recipe = load_recipe(doc)
    storage = Storage.resolve(recipe.storage, recipe.cluster.gdal_env)
    items, skipped = _screened(recipe, storage)
    return rows, _plan_items(recipe, storage, items, skipped)


def _assert_same(a: RunPlan, b: RunPlan) -> None:
    assert a.item_ids == b.item_ids and a.skipped_items == b.skipped_items
    assert a.tile_plans == b.tile_plans and a.geobox == b.geobox
    np.testing.assert_array_equal(a.time_axis, b.time_axis)
    assert (a.bytes_read, a.bytes_written, a.fingerprint) == (b.bytes_read, b.bytes_written, b.fingerprint)
    assert a.provenance() == b.provenance()
    assert list(a.template.data_vars) == list(b.template.data_vars)
    for name, v in b.template.data_vars.items():
        w = a.template[name]
        assert (w.dims, w.shape, w.dtype, w.attrs, w.chunks) == (v.dims, v.shape, v.dtype, v.attrs, v.chunks)
    for c in b.template.coords:
        np.testing.assert_array_equal(a.template[c].values, b.template[c].values)


def test_row_plan_equals_the_pystac_plan(run_recipe_doc, tmp_path) -> None:
    rows, items = _both(run_recipe_doc(tmp_path / "cube.zarr"))
    assert isinstance(rows.source, ItemRows) and isinstance(items.source, ItemList)
    _assert_same(rows, items)
    tp = next(tp for tp in rows.tile_plans if tp.items)
    assert [it.id for it in rows.tile_items(tp.index)] == list(tp.items)
    assert [it.to_dict() for it in rows.tile_items(tp.index)] == [
        it.to_dict() for it in items.tile_items(tp.index)
    ]
    again = pickle.loads(pickle.dumps(rows))
    assert again.tile_plans == rows.tile_plans and [it.id for it in again.tile_items(tp.index)] == list(
        tp.items
    )
    assert rows.read_env == items.read_env


def test_row_plan_skips_what_the_screening_skips(run_mission, run_recipe_doc, tmp_path) -> None:
    """A missing asset file, a raster moved away from its footprint: the same items skipped, the same reasons."""
    from orbitcube.catalog.merge import write_catalog
    from orbitcube.catalog.store import open_catalog

    cat_dir = tmp_path / "cat"
    doc = run_recipe_doc(tmp_path / "cube.zarr")
    used = plan_run(doc).item_ids
    items = sorted(
        (it.clone() for it in open_catalog(run_mission.catalog_path).items),
        key=lambda it: it.id not in used[:2],
    )
    gone = tmp_path / "gone.tif"
    shutil.copy(items[0].assets["B04"].get_absolute_href(), gone)
    items[0].assets["B04"].href = str(gone)
    gone.unlink()
    tr = list(items[1].assets["B08"].extra_fields["proj:transform"])
    tr[2] += 500_000.0
    items[1].assets["B08"].extra_fields["proj:transform"] = tr
    write_catalog(items, cat_dir)
    doc["catalog"] = {"source": str(cat_dir), "allow": [str(run_mission.catalog_path.parent), str(tmp_path)]}
    rows, pystac_plan = _both(doc)
    skipped = dict(rows.skipped_items)
    assert items[0].id in skipped and "missing" in skipped[items[0].id]
    assert items[1].id in skipped and "outside the item's geometry" in skipped[items[1].id]
    _assert_same(rows, pystac_plan)


def _item(n: int, lon: float, when: dt.datetime | None, start=None, end=None) -> pystac.Item:
    props = {}
    if start:
        props.update(start_datetime=start.isoformat(), end_datetime=end.isoformat())
    ring = [[lon, 0.0], [lon + 1.0, 0.0], [lon + 1.0, 1.0], [lon, 1.0], [lon, 0.0]]
    if lon > 179:  # crosses the antimeridian as one jumping ring
        ring = [[179.5, 0.0], [-179.5, 0.0], [-179.5, 1.0], [179.5, 1.0], [179.5, 0.0]]
    geom = {"type": "Polygon", "coordinates": [ring]}
    return pystac.Item(f"i{n:03d}", geom, list(shapely.geometry.shape(geom).bounds), when, props)


@pytest.mark.parametrize("groupby", ["solar_day", "time"])
def test_time_labels_equal_the_pystac_time_axis(groupby: str) -> None:
    rng = np.random.default_rng(3)
    items = []
    for n in range(300):
        t = dt.datetime(2023, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=int(rng.integers(0, 365 * 86400)))
        lon = float(rng.choice([rng.uniform(-179, 178), 179.5]))
        if n % 7 == 0:  # only the day is known: an interval of 24 h holding the datetime
            day = dt.datetime(t.year, t.month, t.day, tzinfo=dt.UTC)
            items.append(_item(n, lon, day, day, day + dt.timedelta(hours=23, minutes=59)))
        elif n % 11 == 0:  # datetime null, interval instead
            items.append(_item(n, lon, None, t, t + dt.timedelta(minutes=5)))
        else:
            items.append(_item(n, lon, t))
    wkb = shapely.to_wkb([shapely.geometry.shape(it.geometry) for it in items])
    b = np.array([it.bbox for it in items], float).T
    shapes, lons = lonlat_from_wkb(np.asarray(wkb, dtype=object), list(b))
    want_shapes, want = shapes_and_centroids([it.geometry for it in items])
    assert all(shapely.equals_exact(s, w, 0) for s, w in zip(shapes, want_shapes, strict=True))
    from orbitcube.catalog.antimeridian import centre_lon

    full = np.where(np.isnan(want[:, 2]), [centre_lon(it.geometry, it.bbox) for it in items], want[:, 2])
    np.testing.assert_array_equal(lons, full)

    def us(v):
        return (
            np.datetime64(v.astimezone(dt.UTC).replace(tzinfo=None), "us")
            if v
            else np.datetime64("NaT", "us")
        )

    def prop(it, key):
        v = it.properties.get(key)
        return us(pystac.utils.str_to_datetime(v) if v else None)

    when = np.array([us(it.datetime) for it in items])
    start = np.array([prop(it, "start_datetime") for it in items])
    end = np.array([prop(it, "end_datetime") for it in items])
    got = time_labels(when, start, end, [it.id for it in items], lons, groupby)
    np.testing.assert_array_equal(got, time_axis(items, groupby))
