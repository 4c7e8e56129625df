"""Loading from a stac-geoparquet table (orbitcube.pipeline.scenes): the same cube as from the rows' pystac Items
(same read tasks, scenes, time axis, attributes and pixels), for simulator items and real Planetary Computer items
replayed on local files, and for a catalog's index rows."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pyarrow as pa
import pytest
import xarray as xr
from odc.geo.geobox import GeoBox

from orbitcube.catalog.simulator import Mission
from orbitcube.catalog.store import open_catalog
from orbitcube.pipeline.errors import LoadError
from orbitcube.pipeline.grid import output_grid
from orbitcube.pipeline.load import load_cube, read_tasks
from orbitcube.pipeline.readtasks import SceneTable
from orbitcube.pipeline.scenes import index_rows, items_table

BANDS = ["red", "swir22"]


def _graph_inputs(cube: xr.Dataset, band: str) -> dict:
    """(time chunk, tile row, tile column) -> (tile GeoBox, scenes of each step, ReadSpec) of ``band``."""
    return {k[1:]: (t, list(s), sp) for k, (t, s, sp) in read_tasks(cube[band].data.__dask_graph__()).items()}


def _assert_same(a: xr.Dataset, b: xr.Dataset, bands: list[str]) -> None:
    for band in bands:
        assert a[band].chunks == b[band].chunks
        ga, gb = _graph_inputs(a, band), _graph_inputs(b, band)
        assert ga.keys() == gb.keys() and ga, band
        for k in ga:
            assert ga[k] == gb[k], (band, k)
    assert a.attrs == b.attrs
    assert set(a.coords) == set(b.coords)
    for c in a.coords:
        np.testing.assert_array_equal(a[c].values, b[c].values)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"groupby": "time"},
        {"mask": None, "chunks": {"y": 64, "x": 64, "time": 4}},
        {"mask": ["cloud"], "scale_offset": {"red": (1e-4, 0.0)}, "resampling": {"swir22": "nearest"}},
    ],
    ids=["default", "groupby-time", "no-mask-chunks", "user-encoding"],
)
def test_a_table_loads_as_its_items(mixed_mission: Mission, kw: dict) -> None:
    """Sentinel-2 and Landsat items (two layouts, two UTM zones, partial swaths) as a table and as pystac."""
    gbox = mixed_mission.config.truth_geobox(30)
    a = load_cube(mixed_mission.items, BANDS, geobox=gbox, **kw)
    b = load_cube(items_table(mixed_mission.items), BANDS, geobox=gbox, **kw)
    _assert_same(a, b, BANDS)
    assert len({it.collection_id for it in mixed_mission.items}) == 2
    layer = next(v for k, v in b[BANDS[0]].data.__dask_graph__().layers.items() if k.startswith("load-tile"))
    assert isinstance(layer.mapping.table, SceneTable)  # arrays, not a record per scene


def test_a_table_gives_the_same_pixels(s2_mission: Mission) -> None:
    gbox = s2_mission.config.truth_geobox(40)
    items = s2_mission.items[:12]
    a = load_cube(items, ["red", "nir"], geobox=gbox, dilate_m=40).compute()
    b = load_cube(items_table(items), ["red", "nir"], geobox=gbox, dilate_m=40).compute()
    assert np.isfinite(a["red"].values).mean() > 0.3
    xr.testing.assert_identical(a, b)


REAL = [
    ("sentinel-2-l2a", ["B04", "nir"], True),  # product-table offset by baseline, two UTM zones near 80 N
    ("landsat-c2-l2", ["red", "nir08"], True),  # qa_pixel bit fields, time near midnight UTC
    ("sentinel-1-rtc", ["vv", "vh"], False),
    ("cop-dem-glo-30", ["data"], False),  # EPSG:4326 tiles at the south pole and the antimeridian
    ("naip", ["red", "nir"], False),  # four bands in one file
    ("io-lulc-annual-v02", ["data"], False),  # classes, tiles touching the antimeridian
]


@pytest.mark.parametrize("collection,bands,mask", REAL, ids=[r[0] for r in REAL])
def test_real_items_load_as_a_table(replayed, collection: str, bands: list[str], mask: bool) -> None:
    items = [r.item for r in replayed(collection)]
    gbox = output_grid(items, bands=bands)
    gbox = gbox.zoom_out(max(1.0, max(gbox.shape.yx) / 2048))
    kw = {} if mask else {"mask": None}
    for groupby in ("solar_day", "time"):
        a = load_cube(items, bands, geobox=gbox, groupby=groupby, **kw)
        b = load_cube(items_table(items), bands, geobox=gbox, groupby=groupby, **kw)
        _assert_same(a, b, bands)


def test_catalog_rows_load_as_their_items(mixed_mission: Mission) -> None:
    """index_rows: a catalog's rows with its relative local hrefs made absolute, as Catalog.materialise does."""
    cat = open_catalog(mixed_mission.catalog_path.parent)
    rows = np.arange(0, len(cat), 2)
    gbox = mixed_mission.config.truth_geobox(60)
    a = load_cube(cat.materialise(rows), BANDS, geobox=gbox)
    b = load_cube(index_rows(cat, rows), BANDS, geobox=gbox)
    _assert_same(a, b, BANDS)


def test_missing_files_and_bad_rows_as_the_items_say(mixed_mission: Mission, tmp_path, caplog) -> None:
    """Missing assets: the same error (fail) or the same skipped ids and warnings (skip); no geometry or no
    time: the preflight's error; no projection metadata: the rows are decoded to pystac Items (headers read)."""
    items = [it.clone() for it in mixed_mission.items[:8]]
    gone = tmp_path / "gone.tif"
    shutil.copy(items[3].assets["B04"].get_absolute_href(), gone)
    items[3].assets["B04"].href = str(gone)
    gone.unlink()
    gbox = mixed_mission.config.truth_geobox(60)
    table = items_table(items)
    msgs = []
    for source in (items, table):
        with pytest.raises(LoadError) as err:
            load_cube(source, ["red"], geobox=gbox)
        msgs.append(str(err.value))
    assert msgs[0] == msgs[1] and "does not exist" in msgs[0]
    cubes, logs = [], []
    for source in (items, table):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="orbitcube.pipeline.load"):
            cubes.append(load_cube(source, ["red"], geobox=gbox, on_error="skip"))
        logs.append([r.getMessage() for r in caplog.records if "skipping" in r.getMessage()])
    _assert_same(*cubes, ["red"])
    assert cubes[0].attrs["skipped_items"] == [items[3].id] and logs[0] == logs[1]

    far = GeoBox.from_bbox((100.0, -40.0, 101.0, -39.0), "EPSG:4326", resolution=0.01)
    msgs = []
    for source in (items, table):
        with pytest.raises(LoadError, match="intersects no item") as err:
            load_cube(source, ["red"], geobox=far, on_error="skip")
        msgs.append(str(err.value))
    assert msgs[0] == msgs[1]

    no_geom = table.set_column(table.schema.get_field_index("geometry"), "geometry",
                               pa.array([None] * table.num_rows, table.schema.field("geometry").type))  # fmt: skip
    with pytest.raises(LoadError, match="geometry null"):
        load_cube(no_geom, ["red"], geobox=gbox)

    bare = [it.clone() for it in mixed_mission.items[:4]]
    for it in bare:
        for a in it.assets.values():
            for k in ("proj:transform", "proj:shape", "proj:code", "proj:epsg"):
                a.extra_fields.pop(k, None)
        for k in ("proj:transform", "proj:shape", "proj:code", "proj:epsg"):
            it.properties.pop(k, None)
    _assert_same(
        load_cube(bare, ["red"], geobox=gbox), load_cube(items_table(bare), ["red"], geobox=gbox), ["red"]
    )
