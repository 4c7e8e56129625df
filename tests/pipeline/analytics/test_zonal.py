"""Zonal statistics equal a brute-force numpy computation, whatever the zone format and CRS."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from odc.geo.geom import Geometry
from rasterio.features import rasterize

from orbitcube.catalog.simulator import Mission
from orbitcube.pipeline.analytics import spectral_index, zonal_stats
from orbitcube.pipeline.errors import AnalyticsError


def _brute_force(values: np.ndarray, inside: np.ndarray) -> dict[str, float]:
    v = values[inside]
    v = v[np.isfinite(v)].astype(np.float64)
    if not v.size:
        return {"count": 0}
    return {
        "mean": v.mean(),
        "median": np.median(v),
        "std": v.std(),
        "min": v.min(),
        "max": v.max(),
        "count": v.size,
    }


def _centres_inside(geom: Geometry, ds: xr.Dataset) -> np.ndarray:
    """Pixel-centre rule by GDAL rasterisation (an implementation independent of zonal_stats' shapely one)."""
    gbox = ds.odc.geobox
    g = geom.to_crs(gbox.crs).geom
    return rasterize([(g, 1)], out_shape=gbox.shape.yx, transform=gbox.transform, fill=0).astype(bool)


@pytest.fixture(scope="module")
def zone_cube(s2_mission: Mission, season_observed: xr.Dataset) -> xr.Dataset:
    return season_observed[["red"]].assign(ndvi=spectral_index(season_observed, "NDVI"))


@pytest.fixture(scope="module")
def events_fc(s2_mission: Mission) -> dict:
    return {"type": "FeatureCollection", "features": [e.to_feature() for e in s2_mission.truth.events]}


def test_zonal_stats_equal_brute_force_numpy(zone_cube: xr.Dataset, events_fc: dict, tmp_path) -> None:
    path = tmp_path / "events.geojson"  # RFC 7946: WGS84 longitude/latitude
    path.write_text(json.dumps(events_fc))
    table = zonal_stats(zone_cube, path, id_column="kind")
    assert list(table.columns) == [
        "zone", "time", "variable", "pixels", "mean", "median", "std", "min", "max", "count"
    ]  # fmt: skip
    assert len(table) == 3 * 2 * zone_cube.sizes["time"]
    checked = 0
    for feat in events_fc["features"]:
        kind = feat["properties"]["kind"]
        inside = _centres_inside(Geometry(feat["geometry"], crs=4326), zone_cube)
        assert inside.sum() > 100
        for var in ("red", "ndvi"):
            rows = table[(table.zone == kind) & (table.variable == var)].reset_index(drop=True)
            assert (rows["pixels"] == inside.sum()).all()
            for ti, t in enumerate(zone_cube["time"].values):
                row = rows.iloc[ti]
                assert row["time"] == t
                want = _brute_force(zone_cube[var].values[ti], inside)
                assert row["count"] == want["count"]
                if want["count"]:
                    for s in ("mean", "median", "std", "min", "max"):
                        assert row[s] == pytest.approx(want[s], rel=1e-6, abs=1e-9), (kind, var, ti, s)
                    checked += 1
                else:
                    assert np.isnan(row["mean"])
    assert checked > 100


def test_geoparquet_in_another_crs_and_dask_give_the_same_table(
    zone_cube: xr.Dataset, events_fc: dict, tmp_path
) -> None:
    """Zones stored as GeoParquet in UTM 33N (not the cube's 32N) and a dask-backed cube: identical numbers."""
    gdf = gpd.GeoDataFrame.from_features(events_fc["features"], crs="EPSG:4326")
    path = tmp_path / "events.parquet"
    gdf.to_crs("EPSG:32633").to_parquet(path)
    from_parquet = zonal_stats(zone_cube.chunk({"y": 64, "x": 64}), path, id_column="kind")
    # brute force with the very polygons the file holds (reprojection moves straight edges by millimetres)
    for kind, geom in zip(gdf["kind"], gpd.read_parquet(path).geometry, strict=True):
        inside = _centres_inside(Geometry(geom, crs="EPSG:32633"), zone_cube)
        rows = from_parquet[(from_parquet.zone == kind) & (from_parquet.variable == "ndvi")]
        for ti, (_, row) in enumerate(rows.iterrows()):
            want = _brute_force(zone_cube["ndvi"].values[ti], inside)
            assert row["count"] == want["count"]
            if want["count"]:
                assert row["mean"] == pytest.approx(want["mean"], rel=1e-6)
    # the GeoDataFrame itself, and (id, shapely geometry) pairs with an explicit CRS, are accepted too
    from_gdf = zonal_stats(zone_cube, gdf, id_column="kind", stats=["mean", "count"])
    pairs = zonal_stats(
        zone_cube, [(k, g) for k, g in zip(gdf["kind"], gdf.to_crs(32632).geometry, strict=True)],
        crs="EPSG:32632", stats=["mean", "count"],
    )  # fmt: skip
    pd.testing.assert_frame_equal(from_gdf, pairs, check_exact=False, rtol=1e-6)


def test_all_touched_counts_every_pixel_the_polygon_touches(zone_cube: xr.Dataset) -> None:
    day = zone_cube[["ndvi"]].isel(time=0).drop_vars("time")
    gbox = day.odc.geobox
    b = gbox.boundingbox
    cx, cy = (b.left + b.right) / 2 + 3, (b.bottom + b.top) / 2 + 4
    tri = shapely.Polygon([(cx, cy), (cx + 95, cy + 10), (cx + 20, cy + 83)])
    centre = zonal_stats(day, [("tri", tri)], crs=gbox.crs, stats=["count"])
    touched = zonal_stats(day, [("tri", tri)], crs=gbox.crs, stats=["count"], all_touched=True)
    assert "time" not in centre.columns
    xx, yy = np.meshgrid(day["x"].values, day["y"].values)
    boxes = shapely.box(xx - 5, yy - 5, xx + 5, yy + 5)
    assert touched["pixels"][0] == shapely.intersects(boxes, tri).sum()
    assert centre["pixels"][0] == shapely.contains_xy(tri, xx, yy).sum()
    assert touched["pixels"][0] > centre["pixels"][0] > 0


def test_zones_outside_and_bad_inputs(zone_cube: xr.Dataset, tmp_path) -> None:
    far = Geometry(shapely.box(0, 0, 1, 1), crs=4326)  # off the coast of Africa
    table = zonal_stats(zone_cube[["ndvi"]], [("far", far)])
    assert (table["pixels"] == 0).all() and (table["count"] == 0).all() and table["mean"].isna().all()
    with pytest.raises(AnalyticsError, match="does not exist"):
        zonal_stats(zone_cube, tmp_path / "missing.geojson")
    with pytest.raises(AnalyticsError, match="unknown statistics"):
        zonal_stats(zone_cube, far, stats=["mode"])
    with pytest.raises(AnalyticsError, match="no property 'name'"):
        zonal_stats(zone_cube, {"type": "Feature", "geometry": far.json, "properties": {}}, id_column="name")
    with pytest.raises(AnalyticsError, match="no CRS"):
        bare = xr.Dataset(
            {"ndvi": (("y", "x"), np.zeros((3, 3), "f4"))}, coords={"y": [2.0, 1, 0], "x": [0.0, 1, 2]}
        )
        zonal_stats(bare, far)
