"""Pipeline fixtures: a small Sentinel-2 mission over two UTM zones, and its cube on the truth grid."""

from __future__ import annotations

import datetime as dt

import pytest
import xarray as xr

from orbitcube.catalog.simulator import Mission, MissionConfig, simulate_mission


@pytest.fixture(scope="session")
def s2_mission(tmp_path_factory: pytest.TempPathFactory) -> Mission:
    """Sentinel-2 only, 128 px tiles (1.28 km), May-August 2023: 24 passes, 48 scenes, all three events."""
    cfg = MissionConfig(
        seed=5, tile_size=128, start=dt.date(2023, 5, 1), end=dt.date(2023, 8, 28), cloudiness=0.4
    )
    return simulate_mission(cfg, tmp_path_factory.mktemp("s2-mission"))


@pytest.fixture(scope="session")
def s2_cube(s2_mission: Mission) -> xr.Dataset:
    """red, nir, swir22 of the mission on the truth grid (UTM 32N, 10 m), SCL-masked, computed in memory."""
    from orbitcube.pipeline.load import load_cube

    gbox = s2_mission.config.truth_geobox(10)
    return load_cube(s2_mission.items, ["red", "nir", "swir22"], geobox=gbox).compute()


# ----- replay of real STAC items (tests/pipeline/replay.py) --------------------------------------------------------
@pytest.fixture(scope="session")
def replayed(tmp_path_factory: pytest.TempPathFactory):
    """A function ``collection -> list[ReplayItem]``: the real Planetary Computer items of that collection
    replayed on small windows of their real grids (written once per session, see tests/pipeline/replay.py)."""
    from replay import replay_collection

    root = tmp_path_factory.mktemp("replay")
    cache: dict[str, list] = {}

    def get(collection: str) -> list:
        if collection not in cache:
            cache[collection] = replay_collection(collection, root)
        return cache[collection]

    return get


# ----- batch runs (recipe -> tiles -> Zarr) -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def run_mission(tmp_path_factory: pytest.TempPathFactory) -> Mission:
    """Sentinel-2, 128 px tiles, May-June 2023: the catalog batch-run tests read."""
    cfg = MissionConfig(seed=1, tile_size=128, start=dt.date(2023, 5, 1), end=dt.date(2023, 6, 30))
    return simulate_mission(cfg, tmp_path_factory.mktemp("run-mission"))


@pytest.fixture(scope="session")
def run_recipe_doc(run_mission: Mission):
    """A function ``(output_path, **cluster) -> recipe dict``: NDVI + monthly median on 3 x 3 tiles of 32 px
    (20 m, UTM 32N) from mid-May to mid-June (about 13 scenes, two months)."""

    def make(output, **cluster) -> dict:
        return {
            "name": "test-run",
            "catalog": {"source": str(run_mission.catalog_path)},
            "search": {
                "aoi": list(run_mission.config.aoi_bbox),
                "datetime": "2023-05-15/2023-06-15",
                "collections": ["sentinel-2-l2a-sim"],
            },
            "grid": {
                "crs": f"EPSG:{run_mission.config.truth_epsg}",
                "resolution": 20,
                "tile_shape": [32, 32],
            },
            "load": {"bands": ["red", "nir"]},
            "analytics": [
                {"op": "index", "index": "NDVI"},
                {"op": "composite", "input": "ndvi", "stat": "median", "freq": "1MS"},
            ],
            "output": {"path": str(output)},
            "cluster": {"n_workers": 2, "threads_per_worker": 1, "max_tiles_in_flight": 3, **cluster},
        }

    return make


@pytest.fixture(scope="session")
def reference_run(run_recipe_doc, tmp_path_factory: pytest.TempPathFactory):
    """The recipe run once, uninterrupted, on a LocalCluster: the store every other run must equal byte for byte."""
    from orbitcube.pipeline.run import run_recipe

    out = tmp_path_factory.mktemp("reference") / "cube.zarr"
    return run_recipe(run_recipe_doc(out), progress=False)


# ----- small rasters written by the test, with STAC items as real catalogs shape them --------------------------------
@pytest.fixture
def raster_item(tmp_path):
    """A function writing one GeoTIFF (``data`` (y, x) or (band, y, x), any dtype) and returning a pystac Item with
    one asset ``key`` on it: ``(item_id, data, transform, when, crs=..., file_nodata=None, key="data",
    collection="c", asset_fields=None, properties=None, item_level_proj=False)``. The footprint is the raster's
    bounds; proj metadata goes on the asset (or the item, USGS-style, with ``item_level_proj``)."""
    import numpy as np
    import pystac
    import rasterio
    from odc.geo.geobox import GeoBox

    def make(
        item_id,
        data,
        transform,
        when,
        *,
        crs="EPSG:32632",
        file_nodata=None,
        key="data",
        collection="c",
        asset_fields=None,
        properties=None,
        item_level_proj=False,
    ) -> pystac.Item:
        arr = np.asarray(data)
        arr3 = arr[None] if arr.ndim == 2 else arr
        path = tmp_path / f"{item_id}-{key}.tif"
        profile = dict(driver="GTiff", width=arr3.shape[2], height=arr3.shape[1], count=arr3.shape[0])
        profile.update(dtype=arr3.dtype.name, crs=crs, transform=transform, nodata=file_nodata, tiled=False)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(arr3)
        gbox = GeoBox(arr3.shape[1:], transform, crs)
        fp = gbox.extent.to_crs(4326)
        proj = {"proj:code": crs, "proj:shape": list(arr3.shape[1:]), "proj:transform": list(transform)[:6]}
        props = {**(proj if item_level_proj else {"proj:code": crs}), **(properties or {})}
        item = pystac.Item(item_id, fp.json, list(fp.boundingbox), when, props, collection=collection)
        extra = {**({} if item_level_proj else proj), **(asset_fields or {})}
        item.add_asset(
            key, pystac.Asset(str(path), media_type="image/tiff", roles=["data"], extra_fields=extra)
        )
        return item

    return make
