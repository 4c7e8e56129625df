"""Band resolution per item (orbitcube.pipeline.bands): resampling chosen per scene, band and output grid, compared in the
source CRS's units; class layers never averaged."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from affine import Affine
from odc.geo.geobox import GeoBox

from orbitcube.pipeline.bands import resampling_for, resolve_band
from orbitcube.pipeline.errors import LoadError
from orbitcube.pipeline.load import load_cube

T0 = dt.datetime(2023, 5, 1, 10, 0, tzinfo=dt.UTC)


def _specs(cube, band: str) -> dict[str, str]:
    """item id -> the resampling its AssetSpec of ``band`` carries, read from the load graph."""
    from orbitcube.pipeline.load import read_tasks

    out = {}
    for _tile, steps, spec in read_tasks(cube[band].data.__dask_graph__()).values():
        b = spec.bands.index(band)
        for step in steps:
            for scene in step:
                out[scene.item_id] = scene.assets[b].resampling
    return out


def _s2_and_landsat(raster_item):
    ramp = np.add.outer(np.arange(96), np.arange(96)).astype(np.uint16) * 10 + 1000
    s2 = raster_item("s2", ramp, Affine(10, 0, 500000, 0, -10, 5000000), T0, collection="s2", key="red")
    ls = raster_item(
        "ls", ramp[:32, :32], Affine(30, 0, 500000, 0, -30, 5000000), T0 + dt.timedelta(hours=1), collection="ls",
        key="red",
    )  # fmt: skip
    return s2, ls


def test_resampling_depends_on_the_scene_not_on_the_other_scenes(raster_item) -> None:
    """At 20 m a 10 m scene is averaged and a 30 m scene interpolated, whichever collection comes first, and the
    Landsat scene's pixels do not change when a Sentinel-2 scene joins the load."""
    s2, ls = _s2_and_landsat(raster_item)
    gbox = GeoBox((40, 40), Affine(20, 0, 500010, 0, -20, 4999990), "EPSG:32632")
    for items in ([s2, ls], [ls, s2]):
        cube = load_cube(items, ["red"], geobox=gbox, mask=None, groupby="time")
        assert _specs(cube, "red") == {"s2": "average", "ls": "bilinear"}
    mixed = load_cube([s2, ls], ["red"], geobox=gbox, mask=None, groupby="time").sel(
        time=np.datetime64("2023-05-01T11:00")
    )
    alone = load_cube([ls], ["red"], geobox=gbox, mask=None, groupby="time").isel(time=0)
    np.testing.assert_array_equal(mixed["red"].values, alone["red"].values)


def test_geographic_output_compares_resolutions_in_the_same_units(raster_item) -> None:
    """Onto EPSG:4326 at 0.002 degree (~160-220 m) a 10 m band is averaged; at 0.00009 degree (~10 m) it is
    interpolated (degrees are not metres)."""
    s2, _ = _s2_and_landsat(raster_item)
    coarse = GeoBox.from_bbox(s2.bbox, crs="EPSG:4326", resolution=0.002)
    fine = GeoBox.from_bbox(s2.bbox, crs="EPSG:4326", resolution=0.00009)
    ref = resolve_band(s2, "red")
    assert resampling_for(None, ref, s2, coarse) == "average"
    assert resampling_for(None, ref, s2, fine) == "bilinear"
    assert _specs(load_cube([s2], ["red"], geobox=coarse, mask=None), "red") == {"s2": "average"}


def test_class_layers_refuse_interpolation_and_bit_flags_stay_nearest(raster_item) -> None:
    classes = {"classification:classes": [{"value": 1, "name": "forest"}, {"value": 2, "name": "water"}]}
    bits = {"classification:bitfields": [{"offset": 3, "length": 1, "name": "cloud"}]}
    lc = raster_item(
        "lc", np.ones((30, 30), np.uint8), Affine(10, 0, 500000, 0, -10, 5000000), T0, asset_fields=classes
    )
    qa = raster_item(
        "qa", np.ones((30, 30), np.uint16), Affine(10, 0, 500000, 0, -10, 5000000), T0, asset_fields=bits
    )
    coarse = GeoBox((5, 5), Affine(60, 0, 500000, 0, -60, 5000000), "EPSG:32632")
    assert (
        resampling_for("bilinear", resolve_band(lc, "data"), lc, coarse) == "mode"
    )  # one name: for values only
    assert resampling_for(None, resolve_band(qa, "data"), qa, coarse) == "nearest"
    with pytest.raises(LoadError, match="classes or bit flags.*nearest"):
        resampling_for({"data": "average"}, resolve_band(lc, "data"), lc, coarse)


def test_coarsening_of_a_whole_load_equals_the_per_item_answer() -> None:
    """bands.Coarsening (one pyproj call per source CRS for all items) gives what coarsening gives per item."""
    import datetime as dt

    import pystac
    from odc.geo.geobox import GeoBox

    from orbitcube.pipeline.bands import Coarsening, coarsening
    from orbitcube.pipeline.footprints import shapes_and_centroids

    items = []
    for n, (lon, res) in enumerate([(9.1, 10.0), (9.7, 20.0), (10.3, 60.0), (11.2, 15.0)]):
        geom = {
            "type": "Polygon",
            "coordinates": [[[lon, 50], [lon + 0.8, 50], [lon + 0.8, 50.7], [lon, 50.7], [lon, 50]]],
        }
        it = pystac.Item(f"s{n}", geom, [lon, 50, lon + 0.8, 50.7], dt.datetime(2023, 6, 1, 10), {})
        it.add_asset("B", pystac.Asset("b.tif", extra_fields={"proj:code": "EPSG:32632",
                                                           "proj:transform": [res, 0, 500000, 0, -res, 5600000]}))  # fmt: skip
        items.append(it)
    gbox = GeoBox.from_bbox((9, 50, 12, 51), "EPSG:4326", resolution=0.0003)
    _, centres = shapes_and_centroids([it.geometry for it in items])
    coarse = Coarsening(items, gbox, centres[:, :2])
    for it in items:
        assert coarse(it, "B") == coarsening(it, "B", gbox)


def _crs_item(item_props: dict, asset_fields: dict):
    import pystac

    when = dt.datetime(2023, 6, 1, 10, tzinfo=dt.UTC)
    item = pystac.Item(
        "a", {"type": "Point", "coordinates": [15.0, 45.0]}, [15, 45, 15, 45], when, item_props
    )
    tr = [10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0]
    item.add_asset("B04", pystac.Asset("B04.tif", extra_fields={"proj:transform": tr, **asset_fields}))
    return item


@pytest.mark.parametrize(
    ("item_props", "asset_fields", "expected"),
    [
        (
            {"proj:code": "EPSG:32632"},
            {"proj:epsg": 32633},
            "EPSG:32633",
        ),  # the asset's epsg beats the item's code
        ({"proj:epsg": 32632}, {"proj:code": "EPSG:32633"}, "EPSG:32633"),
        ({"proj:code": "EPSG:32632", "proj:epsg": 32631}, {}, "EPSG:32632"),  # on one level: code, then epsg
        ({"proj:epsg": 32632}, {}, "EPSG:32632"),
        ({}, {}, None),
    ],
)
def test_asset_crs_has_one_precedence_in_the_grid_the_screening_and_the_columnar_plan(
    item_props, asset_fields, expected
) -> None:
    """STAC's projection extension: asset-level fields override the item's. The grid's native CRS, its anchor
    and the columnar plan's screening read the same CRS (they used to differ when an asset had proj:epsg and its
    item a different proj:code)."""
    import pyarrow as pa

    from orbitcube.catalog.index import index_table
    from orbitcube.pipeline import grid, planitems
    from orbitcube.pipeline.bands import asset_crs

    item = _crs_item(item_props, asset_fields)
    assert asset_crs(item.assets["B04"].extra_fields, item.properties) == expected
    assert [code for code, _ in grid._asset_grids([item], ["B04"])] == [expected]
    table = index_table([item.to_dict()])
    cols = {}
    for name in ("proj:code", "proj:epsg"):
        if name in table.column_names:
            cols[name] = table.column(name).combine_chunks()
        path = f"assets.B04.{name}"
        if name in asset_fields:
            cols[path] = pa.array([asset_fields[name]])
    cols.setdefault("id", pa.array(["a"]))
    assert planitems._codes(cols, "B04").tolist() == [expected]
    if expected:
        assert grid._native([item], ["B04"]) == (expected, 10.0)
