"""The fused per-tile reader behind load_cube: graph shape, reads per tile, overviews, dilation, bad files."""

from __future__ import annotations

import logging
import shutil

import dask
import numpy as np
import pystac
import pytest
from odc.geo.geom import Geometry

from catalog.simulator import Mission
from pipeline.errors import LoadError
from pipeline.load import load_cube


def _tile_tasks(cube) -> dict:
    graph = dict(cube["red"].data.__dask_graph__())
    return {k: v for k, v in graph.items() if isinstance(k, tuple) and k[0].startswith("load-tile-")}


def test_one_named_task_per_tile_reading_only_intersecting_scenes(s2_mission: Mission) -> None:
    gbox = s2_mission.config.truth_geobox(10)
    cube = load_cube(s2_mission.items, ["red", "nir"], geobox=gbox, chunks={"y": 64, "x": 64})
    tasks = _tile_tasks(cube)
    ny, nx = len(cube.chunks["y"]), len(cube.chunks["x"])
    assert len(tasks) == ny * nx  # one fused read per tile, shared by both bands
    assert {k[0].split("-")[0] for k in dict(cube["nir"].data.__dask_graph__()) if isinstance(k, tuple)} >= {
        "load",
        "nir",
    }  # keys named after what they hold, for the dashboard
    # a tile reads exactly the scenes whose footprint reaches it, so some tiles read fewer than all of them
    footprints = {it.id: Geometry(it.geometry, crs=4326).to_crs(gbox.crs) for it in s2_mission.items}
    fewer = 0
    for _fn, tile, steps, _spec in tasks.values():
        opened = {s.item_id for step in steps for s in step}
        near = {i for i, fp in footprints.items() if fp.buffer(20).intersects(tile.extent)}
        assert opened == near
        fewer += len(opened) < len(s2_mission.items)
    assert fewer > 0


def test_coarser_output_averages_and_matches_block_means(s2_mission: Mission) -> None:
    """At 80 m the reflectance bands default to average resampling (reading COG overviews) and agree with the
    8 x 8 block means of the 10 m cube; quality bands stay nearest."""
    gbox10 = s2_mission.config.truth_geobox(10)
    items = [it for it in s2_mission.items if it.properties.get("proj:code") == "EPSG:32632"][:4]
    fine = load_cube(items, ["nir"], geobox=gbox10, mask=None, groupby="time").compute()
    gbox80 = gbox10.zoom_out(8)
    coarse = load_cube(items, ["nir"], geobox=gbox80, mask=None, groupby="time").compute()
    ny, nx = gbox10.shape.y // 8, gbox10.shape.x // 8  # whole blocks (zoom_out keeps the origin)
    blocks = fine["nir"].values[:, : ny * 8, : nx * 8].reshape(len(items), ny, 8, nx, 8)
    full = np.isfinite(blocks).all(axis=(2, 4))
    want = np.nanmean(blocks, axis=(2, 4))
    got = coarse["nir"].values[:, :ny, :nx]
    assert full.mean() > 0.3
    assert np.quantile(np.abs(got - want)[full], 0.95) < 0.01  # reflectance units


def test_dilation_is_seamless_across_tiles(s2_mission: Mission) -> None:
    gbox = s2_mission.config.truth_geobox(20)
    kw = {"geobox": gbox, "dilate_m": 60.0}
    small = load_cube(s2_mission.items[:8], ["red"], chunks={"y": 24, "x": 24}, **kw).compute()
    large = load_cube(s2_mission.items[:8], ["red"], chunks={"y": 512, "x": 512}, **kw).compute()
    plain = load_cube(s2_mission.items[:8], ["red"], chunks={"y": 512, "x": 512}, geobox=gbox).compute()
    a, b = small["red"].values, large["red"].values
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))  # the same mask, tile edges or not
    np.testing.assert_allclose(a, b, atol=1.5e-4)  # GDAL's averaging may round 1 DN differently per window
    assert np.isnan(large["red"].values).sum() > np.isnan(plain["red"].values).sum()  # dilation grew the mask


def _strip_proj(item: pystac.Item) -> pystac.Item:
    it = item.clone()
    for k in [k for k in it.properties if k.startswith("proj:")]:
        del it.properties[k]
    for a in it.assets.values():
        for k in [k for k in a.extra_fields if k.startswith("proj:")]:
            del a.extra_fields[k]
    return it


def test_items_without_proj_metadata_fall_back_to_file_headers(s2_mission: Mission, caplog) -> None:
    items = s2_mission.items[:4]
    bare = [_strip_proj(it) for it in items]
    with caplog.at_level(logging.WARNING, logger="pipeline.load"):
        got = load_cube(bare, ["red"], resolution=40, mask=None).compute()
    assert "no projection metadata" in caplog.text and items[0].id in caplog.text
    want = load_cube(items, ["red"], resolution=40, mask=None).compute()
    assert got.odc.geobox == want.odc.geobox
    np.testing.assert_array_equal(got["red"].values, want["red"].values)


def test_an_asset_that_fails_to_read_fails_or_is_skipped(s2_mission: Mission, tmp_path, caplog) -> None:
    items = [it.clone() for it in s2_mission.items[:4]]
    bad = tmp_path / "B04.tif"
    bad.write_bytes(b"this is not a GeoTIFF" * 100)
    items[0].assets["B04"].href = str(bad)
    gbox = s2_mission.config.truth_geobox(40)
    cube = load_cube(items, ["red"], geobox=gbox, groupby="time")
    with pytest.raises(LoadError, match=f"{items[0].id}.*B04.tif.*on_error='skip'"):
        cube.compute(scheduler="synchronous")
    with caplog.at_level(logging.WARNING, logger="pipeline.reader"), dask.config.set(scheduler="synchronous"):
        skipped = load_cube(items, ["red"], geobox=gbox, groupby="time", on_error="skip").compute()
    assert items[0].id in caplog.text
    assert np.isnan(skipped["red"].values[0]).all()
    assert np.isfinite(skipped["red"].values[1:]).any()


def test_a_rewritten_file_is_reread_not_served_from_the_handle_cache(s2_mission: Mission, tmp_path) -> None:
    item = s2_mission.items[0].clone()
    src = item.assets["B04"].get_absolute_href()
    copy = tmp_path / "B04.tif"
    shutil.copy(src, copy)
    item.assets["B04"].href = str(copy)
    gbox = s2_mission.config.truth_geobox(40)
    first = load_cube([item], ["red"], geobox=gbox, mask=None).compute(scheduler="synchronous")
    other = s2_mission.items[2].assets["B04"].get_absolute_href()  # another date, same tile grid
    shutil.copy(other, copy)
    second = load_cube([item], ["red"], geobox=gbox, mask=None).compute(scheduler="synchronous")
    assert not np.array_equal(first["red"].values, second["red"].values, equal_nan=True)
