"""Zarr sink: self-describing v3 stores that xarray, rioxarray and odc-geo open with the right CRS and transform."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import odc.geo.xr  # noqa: F401
import pytest
import rioxarray  # noqa: F401
import xarray as xr
import zarr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from orbitcube.pipeline.errors import SinkError
from orbitcube.pipeline.sink import open_cube, write_zarr


@pytest.fixture()
def cube() -> xr.Dataset:
    gbox = GeoBox.from_bbox((732000, 5040000, 732640, 5040320), "EPSG:32632", resolution=20)
    t = np.array(["2023-06-01", "2023-06-06"], dtype="datetime64[ns]")
    data = np.random.default_rng(0).uniform(-1, 1, (2, *gbox.shape.yx)).astype("f4")
    data[0, :3, :3] = np.nan
    ds = xr.Dataset(
        {"ndvi": (("time", "y", "x"), data)}, coords={"time": t, **xr_coords(gbox, dims=("y", "x"))}
    )
    return ds.chunk({"time": -1, "y": 8, "x": 8})


def test_store_is_zarr_v3_with_crs_transform_and_provenance(cube: xr.Dataset, tmp_path: Path) -> None:
    path = write_zarr(cube, tmp_path / "c.zarr", provenance={"items": ["a", "b"], "recipe": {"k": 1}})
    assert zarr.open_group(path, mode="r").metadata.zarr_format == 3
    ds = xr.open_zarr(path, consolidated=False)
    assert "spatial_ref" in ds.coords
    assert ds.ndvi.rio.crs.to_epsg() == 32632
    assert tuple(ds.ndvi.rio.transform())[:6] == (20.0, 0.0, 732000.0, 0.0, -20.0, 5040320.0)
    assert ds.odc.geobox == cube.odc.geobox
    np.testing.assert_array_equal(ds.ndvi.values, cube.ndvi.values)  # NaN included
    prov = json.loads(ds.attrs["orbitcube:provenance"])
    assert prov["items"] == ["a", "b"] and prov["software"]["zarr"].startswith("3")
    assert ds.ndvi.encoding["chunks"] == (2, 8, 8)
    codecs = zarr.open_array(path / "ndvi", mode="r").metadata.codecs
    assert any("zstd" in json.dumps(c.to_dict()) for c in codecs)


def test_existing_store_is_kept_and_refused(cube: xr.Dataset, tmp_path: Path) -> None:
    path = write_zarr(cube, tmp_path / "c.zarr")
    before = sorted(p.name for p in path.rglob("*"))
    with pytest.raises(SinkError, match="already exists"):
        write_zarr(cube * 2, path)
    assert sorted(p.name for p in path.rglob("*")) == before
    np.testing.assert_array_equal(open_cube(path).ndvi.values, cube.ndvi.values)


def test_cube_without_crs_or_with_irregular_chunks(cube: xr.Dataset, tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="no CRS"):
        plain = xr.Dataset(
            {"ndvi": (("y", "x"), np.zeros((4, 4), "f4"))}, coords={"y": np.arange(4.0), "x": np.arange(4.0)}
        )
        write_zarr(plain, tmp_path / "a.zarr")
    with pytest.raises(SinkError, match="irregular chunks"):
        write_zarr(cube.chunk({"x": (8, 16, 8)}), tmp_path / "b.zarr")
    with pytest.raises(SinkError, match="no Zarr store"):
        open_cube(tmp_path / "nothing.zarr")


def _run_store(cube: xr.Dataset, path: Path) -> Path:
    from orbitcube.pipeline.sink import create_store

    return create_store(cube, path, tile_shape=(8, 8), provenance={"name": "t"}, fingerprint="f1")


def test_run_store_region_writes_markers_and_alignment(cube: xr.Dataset, tmp_path: Path) -> None:
    from orbitcube.pipeline.sink import completed_tiles, mark_tile_done, store_state, write_tile

    path = _run_store(cube, tmp_path / "r.zarr")
    assert store_state(path, "f1") == set()
    empty = open_cube(path)
    assert empty.odc.geobox == cube.odc.geobox and bool(empty.ndvi.isnull().all())
    tile = cube.isel(y=slice(8, 16), x=slice(0, 8))
    write_tile(tile, path, (1, 0)).compute()
    mark_tile_done(path, (1, 0))
    assert completed_tiles(path) == {(1, 0)}
    got = open_cube(path).ndvi.values
    np.testing.assert_array_equal(got[:, 8:16, 0:8], tile.ndvi.values)
    assert np.isnan(got[:, :8]).all()
    with pytest.raises(SinkError, match="not aligned with the chunks"):
        write_tile(cube.isel(y=slice(8, 12), x=slice(0, 8)), path, (1, 0))
    with pytest.raises(SinkError, match="shape"):
        write_tile(tile.isel(time=[0]), path, (1, 0))
    with pytest.raises(SinkError, match="outside the store"):
        write_tile(tile, path, (9, 9))
    with pytest.raises(SinkError, match="different recipe"):
        store_state(path, "f2")


def test_store_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    from orbitcube.pipeline.sink import store_lock

    with store_lock(tmp_path / "c.zarr"):
        with pytest.raises(SinkError, match=r"being written by another run \(pid \d+"):
            with store_lock(tmp_path / "c.zarr"):
                pass
    with store_lock(tmp_path / "c.zarr"):  # released on exit
        pass


def test_write_zarr_create_store_and_the_recipe_compress_alike(cube: xr.Dataset, tmp_path: Path) -> None:
    """One default compression: a store written by write_zarr, one created by create_store and a recipe's output
    all use Blosc-zstd level 1 with byte shuffle."""
    from orbitcube.pipeline.recipe import OutputSpec

    write_zarr(cube, tmp_path / "a.zarr")
    _run_store(cube, tmp_path / "b.zarr")
    codecs = [
        json.loads((tmp_path / name / "ndvi" / "zarr.json").read_text())["codecs"][-1]
        for name in ("a.zarr", "b.zarr")
    ]
    assert codecs[0] == codecs[1]
    assert codecs[0]["name"] == "blosc" and codecs[0]["configuration"]["cname"] == "zstd"
    assert codecs[0]["configuration"]["clevel"] == 1 and codecs[0]["configuration"]["shuffle"] == "shuffle"
    spec = OutputSpec(path="x.zarr")
    assert (spec.compression, spec.level) == ("blosc-zstd", 1)
