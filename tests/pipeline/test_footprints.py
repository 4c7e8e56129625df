"""Footprints at the poles and the antimeridian (pipeline/footprints.py) and the loads that depend on them.

Rasters are written on the real grids of Planetary Computer items (Copernicus DEM tiles in EPSG:4326 at the south
pole and W180; io-lulc land cover in UTM zone 60 up to the antimeridian), filled with an analytic field of
longitude/latitude, and loaded onto a polar stereographic (EPSG:3031) and a UTM zone 1 grid across the
antimeridian: no NaN may appear inside the union of the footprints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import shapely
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import Transformer

from orbitcube.pipeline.footprints import footprint_on, grid_lonlat
from orbitcube.pipeline.load import load_cube
from tests.conftest import SHARED_DATA

REAL = SHARED_DATA / "real-stac-items"


def dem_field(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Elevation-like analytic field (metres): smooth in latitude, a small smooth term in longitude."""
    return (1000.0 + 100.0 * (lat + 90.0) + 5.0 * np.cos(np.radians(lon))).astype(np.float32)


def _centres(tr: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    return tr.c + cols * tr.a + rows * tr.b, tr.f + cols * tr.d + rows * tr.e


def _write(path: Path, data: np.ndarray, crs: str, tr: Affine, nodata=None) -> None:
    h, w = data.shape
    profile = dict(driver="GTiff", width=w, height=h, count=1, dtype=data.dtype, crs=crs, transform=tr)
    with rasterio.open(
        path, "w", **profile, nodata=nodata, tiled=True, blockxsize=256, blockysize=256
    ) as dst:
        dst.write(data, 1)


@pytest.fixture(scope="module")
def dem_items(tmp_path_factory: pytest.TempPathFactory) -> list[pystac.Item]:
    """The four real Copernicus DEM items at S90 W180..W177, each with a local float32 raster on its real grid
    (item-level proj:epsg 4326, proj:shape 3600 x 360, proj:transform) holding :func:`dem_field` (nodata
    -32767 in the file: the fill of a nodata-less file counting as valid is issue 13 defect 1, not tested here)."""
    d = tmp_path_factory.mktemp("dem")
    items = []
    for doc in json.loads((REAL / "cop-dem-glo-30-pc.json").read_text()):
        it = pystac.Item.from_dict(doc)
        it.set_self_href(None)  # local hrefs must not resolve against the Planetary Computer
        tr = Affine(*it.properties["proj:transform"][:6])
        shape = tuple(it.properties["proj:shape"])
        lon, lat = _centres(tr, shape)
        path = d / f"{it.id}.tif"
        _write(path, dem_field(lon, lat), "EPSG:4326", tr, nodata=-32767.0)
        it.assets["data"].href = str(path)
        items.append(it)
    return items


def _inside(footprints, gbox: GeoBox, margin_px: float) -> np.ndarray:
    """Output pixels whose centre lies inside the union of ``footprints`` (grid CRS), ``margin_px`` inside."""
    union = shapely.union_all(footprints).buffer(-margin_px * abs(gbox.resolution.x))
    x, y = _centres(gbox.transform, gbox.shape.yx)
    return shapely.contains_xy(union, x, y)


def test_dem_tiles_at_the_south_pole_onto_polar_stereographic(dem_items) -> None:
    """Onto EPSG:3031 around the pole (500 m): every item is found, and the wedge the tiles cover down to the pole
    has no NaN and holds the analytic field."""
    gbox = GeoBox.from_bbox((-120_000, -120_000, 120_000, 120_000), "EPSG:3031", resolution=500)
    footprints = [footprint_on(it.geometry, gbox) for it in dem_items]
    assert all(f is not None for f in footprints)
    cube = load_cube(dem_items, ["data"], geobox=gbox, mask=None, resampling="bilinear").compute()
    assert sorted(cube.attrs["items"]) == sorted(it.id for it in dem_items)
    got = cube["data"].isel(time=0).values
    inside = _inside(footprints, gbox, 1.5)
    assert inside.sum() > 800
    assert not np.isnan(got[inside]).any(), f"{np.isnan(got[inside]).sum()} NaN inside the footprints"
    x, y = _centres(gbox.transform, gbox.shape.yx)
    lon, lat = Transformer.from_crs(3031, 4326, always_xy=True).transform(x, y)
    err = np.abs(got - dem_field(lon, lat))[inside]
    assert np.percentile(err, 99) < 1.0  # 5 m of longitude term over a 1 km pixel near the pole, at most


def test_grid_containing_a_pole_is_a_polar_cap_in_lonlat() -> None:
    gbox = GeoBox.from_bbox((-130_000, -130_000, 130_000, 130_000), "EPSG:3031", resolution=1000)
    cap = grid_lonlat(gbox)
    assert cap.bounds[0] == -180 and cap.bounds[2] == 180 and cap.bounds[1] == -90
    assert cap.contains(shapely.Point(37.0, -89.5)) and not cap.contains(shapely.Point(37.0, -88.0))


@pytest.fixture(scope="module")
def lulc_items(tmp_path_factory: pytest.TempPathFactory) -> list[pystac.Item]:
    """Two real io-lulc items of UTM zone 60 (60N at the equator: geometry split at +-180; 60U at 48-56 N: one
    ring jumping across), each with a 600 x 400 px uint8 window at the tile's east edge (the antimeridian) on
    the real 10 m grid, nodata 0, holding a class field of longitude (1..9, class 5 west of 179.99 E)."""
    d = tmp_path_factory.mktemp("lulc")
    docs = {doc["id"]: doc for doc in json.loads((REAL / "io-lulc-annual-v02-pc.json").read_text())}
    items = []
    for iid, row0 in (("60N-2023", 40_000), ("60U-2023", 40_000)):
        it = pystac.Item.from_dict(docs[iid])
        it.set_self_href(None)
        a, b, c, dd, e, f = it.properties["proj:transform"][:6]
        width = it.properties["proj:shape"][1]
        tr = Affine(a, b, c + (width - 400) * a, dd, e, f + row0 * e)
        lon, _ = Transformer.from_crs(32660, 4326, always_xy=True).transform(*_centres(tr, (600, 400)))
        data = np.where(np.mod(lon, 360) < 179.99, 5, 7).astype(np.uint8)
        path = d / f"{iid}.tif"
        _write(path, data, "EPSG:32660", tr, nodata=0)
        it.assets["data"].href = str(path)
        it.properties.update({"proj:shape": [600, 400], "proj:transform": list(tr)[:6]})
        it.geometry = shapely.geometry.mapping(
            shapely.ops.transform(
                Transformer.from_crs(32660, 4326, always_xy=True).transform,
                shapely.box(tr.c, tr.f + 600 * tr.e, tr.c + 400 * tr.a, tr.f),
            )
        )
        items.append((it, docs[iid]["geometry"]))
    return items


def test_real_antimeridian_geometries_land_on_a_utm_grid_across_180() -> None:
    """The real io-lulc footprints (split, and jumping rings) projected onto a UTM zone 1 grid that straddles the
    antimeridian: each comes back as the tile's part near 180, not a band round the globe."""
    docs = json.loads((REAL / "io-lulc-annual-v02-pc.json").read_text())
    to_utm1 = Transformer.from_crs(4326, 32601, always_xy=True)
    x0, y0 = to_utm1.transform(-180.3, 50.0)
    x1, y1 = to_utm1.transform(-179.7, 52.0)
    gbox = GeoBox.from_bbox((x0, y0, x1, y1), "EPSG:32601", resolution=100)
    hits = {doc["id"]: footprint_on(doc["geometry"], gbox) for doc in docs}
    assert hits["60N-2023"] is None and hits["60V-2023"] is None and hits["60W-2023"] is None
    fp = hits["60U-2023"]
    assert fp is not None
    area = shapely.box(*gbox.extent.boundingbox).intersection(fp).area
    assert area > 0.4 * shapely.box(*gbox.extent.boundingbox).area  # the tile reaches 179.4 W at 50-52 N


def test_land_cover_across_the_antimeridian_onto_utm_zone_1(lulc_items) -> None:
    """Zone-60 land cover windows at the antimeridian loaded onto UTM zone 1 (a grid across 180, 10 m,
    nearest): each item is found and its footprint has no NaN."""
    items = [it for it, _ in lulc_items]
    to_utm1 = Transformer.from_crs(32660, 32601, always_xy=True)
    for it in items:
        tr = Affine(*it.properties["proj:transform"][:6])
        xs, ys = to_utm1.transform([tr.c, tr.c + 400 * tr.a], [tr.f, tr.f + 600 * tr.e])
        gbox = GeoBox.from_bbox(
            (min(xs) - 500, min(ys) - 500, max(xs) + 500, max(ys) + 500), "EPSG:32601", resolution=10
        )
        cube = load_cube(items, ["data"], geobox=gbox, mask=None, resampling="nearest").compute()
        assert it.id in cube.attrs["items"]
        got = cube["data"].isel(time=0).values
        inside = _inside([footprint_on(it.geometry, gbox)], gbox, 2)
        assert inside.sum() > 10_000
        assert not np.isnan(got[inside]).any()
        assert set(np.unique(got[inside])) <= {5.0, 7.0}


def _footprint_docs() -> list[dict | None]:
    """Real antimeridian footprints (split and jumping rings), random scene-sized boxes round them, a ring through
    180 exactly, an open ring, a hole, a MultiPolygon and None: the cases the bulk path and the fallback share."""
    docs: list[dict | None] = [
        d["geometry"] for d in json.loads((REAL / "io-lulc-annual-v02-pc.json").read_text())
    ]
    rng = np.random.default_rng(4)
    for lon, lat in zip(rng.uniform(-181.5, -178.5, 40), rng.uniform(49.0, 52.5, 40), strict=True):
        lon = (lon + 180.0) % 360.0 - 180.0
        docs.append(shapely.geometry.mapping(shapely.box(lon, lat, lon + 0.9, lat + 0.9)))
    docs.append(
        {"type": "Polygon", "coordinates": [[[179.5, 50], [-180, 50], [-180, 51], [179.5, 51], [179.5, 50]]]}
    )
    docs.append(
        {"type": "Polygon", "coordinates": [[[179.6, 50.5], [179.9, 50.5], [179.9, 51], [179.6, 51]]]}
    )
    docs.append(
        shapely.geometry.mapping(
            shapely.box(179.2, 50, 179.9, 51).difference(shapely.box(179.4, 50.3, 179.6, 50.6))
        )
    )
    docs.append(
        shapely.geometry.mapping(
            shapely.MultiPolygon([shapely.box(179.1, 50, 179.3, 50.5), shapely.box(-179.9, 50, -179.5, 50.5)])
        )
    )
    docs.append(None)
    return docs


def test_items_on_grid_equals_footprint_on_item_by_item() -> None:
    """The bulk footprints (one shapely/pyproj call for all items) are exactly those of footprint_on per item,
    across the antimeridian; the bulk centres of longitude spans are centre_lon's."""
    from orbitcube.catalog.antimeridian import centre_lon
    from orbitcube.pipeline.footprints import items_on_grid, shapes_and_centroids

    docs = _footprint_docs()
    to_utm1 = Transformer.from_crs(4326, 32601, always_xy=True)
    x0, y0 = to_utm1.transform(-180.3, 50.0)
    x1, y1 = to_utm1.transform(-179.7, 52.0)
    gbox = GeoBox.from_bbox((x0, y0, x1, y1), "EPSG:32601", resolution=100)
    bulk, single = items_on_grid(docs, gbox), [footprint_on(d, gbox) for d in docs]
    assert sum(g is not None for g in single) > 10
    for b, s in zip(bulk, single, strict=True):
        assert (b is None and s is None) or shapely.equals_exact(b, s, tolerance=0)
    _, centres = shapes_and_centroids(docs)
    for d, c in zip(docs, centres, strict=True):
        if np.isfinite(c[2]):
            assert c[2] == centre_lon(d)


def test_tile_scene_pairs_match_a_direct_intersection_test() -> None:
    """scenes_per_tile (one STRtree query of prepared footprints against the tile boxes) lists exactly the scenes
    whose footprint, grown by 2 output pixels, intersects each tile."""
    from odc.geo.geobox import GeoboxTiles

    from orbitcube.pipeline.footprints import TILE_PAD_PX, scenes_per_tile

    gbox = GeoBox.from_bbox((500000, 5500000, 520000, 5520000), "EPSG:32632", resolution=10)
    tiles = GeoboxTiles(gbox, (300, 300))
    rng = np.random.default_rng(1)
    fps = [shapely.box(x, y, x + w, y + w) for x, y, w in zip(rng.uniform(495000, 518000, 60),
           rng.uniform(5495000, 5518000, 60), rng.uniform(500, 6000, 60), strict=True)]  # fmt: skip
    got = scenes_per_tile(fps, tiles)
    ny, nx = tiles.shape.yx
    for i in range(ny):
        for j in range(nx):
            box = tiles[i, j].extent.geom
            want = tuple(n for n, f in enumerate(fps) if f.distance(box) <= TILE_PAD_PX * 10)
            assert got[i * nx + j] == want


@pytest.mark.parametrize("pad_px", [2, 0, 0.5])
def test_array_tile_match_equals_the_strtree_match(pad_px: float) -> None:
    """tile_scene_pairs on arrays (thinned boundaries, runs of crossed columns, point tests) gives exactly the
    pairs of the reference STRtree query (footprints within the pad of a box, by distance): boxes, convex and star-shaped polygons, rings
    with holes, multipolygons, projected lon/lat footprints (many vertices), footprints beyond the grid's edges
    and boxes touching a tile edge or lying exactly one pad away from it."""
    from odc.geo.geobox import GeoboxTiles

    from orbitcube.pipeline.footprints import (
        _strtree_pairs,
        _tile_edges,
        items_on_grid,
        tile_scene_pairs,
        tile_scenes,
    )

    gbox = GeoBox.from_bbox((0, 0, 10_000, 8_000), "EPSG:32632", resolution=10)
    tiles = GeoboxTiles(gbox, (96, 128))
    rng = np.random.default_rng(5)
    geoms = []
    for i in range(2000):
        cx, cy, r = rng.uniform(-1000, 11000), rng.uniform(-1000, 9000), rng.uniform(5, 3000)
        kind = i % 5
        if kind == 0:
            geoms.append(shapely.box(cx - r, cy - r * 0.7, cx + r, cy + r * 0.7))
        elif kind == 1:
            pts = np.column_stack([cx + rng.normal(0, r, 9), cy + rng.normal(0, r, 9)])
            geoms.append(shapely.convex_hull(shapely.multipoints(pts)))
        elif kind == 2:
            geoms.append(shapely.Point(cx, cy).buffer(r).difference(shapely.Point(cx, cy).buffer(r * 0.6)))
        elif kind == 3:
            geoms.append(
                shapely.box(cx, cy, cx + r, cy + r).union(shapely.box(cx + 2 * r, cy, cx + 3 * r, cy + r / 3))
            )
        else:
            ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
            rad = np.where(np.arange(12) % 2, r, r / 4)
            geoms.append(shapely.Polygon(np.column_stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)])))
    xe, ye = _tile_edges(tiles)
    for j in range(1, 5):
        geoms.append(shapely.box(xe[j] - 100, ye[2], xe[j], ye[1]))  # touches a column edge
        geoms.append(shapely.box(xe[j] - 120, ye[2], xe[j] - 20, ye[1]))  # exactly 2 px away
    lon0, lat0 = rng.uniform(4.4, 4.6, 300), rng.uniform(-0.1, 0.07, 300)  # the grid is near 4.5 E, 0 N
    lonlat = [
        shapely.geometry.mapping(shapely.segmentize(shapely.box(a, b, a + 0.12, b + 0.1), 0.004))
        for a, b in zip(
            lon0, lat0, strict=True
        )  # many vertices, as real footprints have: simplified to match
    ]
    projected = [g for g in items_on_grid(lonlat, gbox) if g is not None]
    assert len(projected) > 100 and shapely.get_num_coordinates(projected).mean() > 10
    geoms = np.array(geoms + projected, dtype=object)
    got, want = tile_scene_pairs(geoms, tiles, pad_px), _strtree_pairs(geoms, tiles, pad_px)
    assert len(got[0]) > 10_000
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    bounds, scene_idx = tile_scenes(geoms, tiles, pad_px)  # the compressed form the graph keeps
    assert len(bounds) == tiles.shape.y * tiles.shape.x + 1 and scene_idx.dtype == np.int32
    np.testing.assert_array_equal(np.repeat(np.arange(len(bounds) - 1), np.diff(bounds)), want[0])
    np.testing.assert_array_equal(scene_idx, want[1])


def test_array_tile_match_of_footprints_that_cross_no_tile_row() -> None:
    """Footprints smaller than a pixel, between rows, or beyond the grid: no pair, no error."""
    from odc.geo.geobox import GeoboxTiles

    from orbitcube.pipeline.footprints import _strtree_pairs, tile_scene_pairs

    tiles = GeoboxTiles(GeoBox.from_bbox((0, 0, 1000, 1000), "EPSG:32632", resolution=10), (32, 32))
    for geoms in ([shapely.box(500, 500, 503, 503)], [shapely.box(5000, 5000, 6000, 6000)]):
        got, want = tile_scene_pairs(geoms, tiles), _strtree_pairs(np.array(geoms, dtype=object), tiles, 2)
        assert [a.tolist() for a in got] == [a.tolist() for a in want]


def test_footprints_across_the_grid_edge_projected_whole_touch_the_tiles_of_their_cut_parts() -> None:
    """Scenes that cross the edge of the grid are projected whole (cutting them to the grid's lon/lat area first
    was most of the time of a large load): the same scenes are on the grid and they touch exactly the tiles
    their parts cut to the area touch; a scene whose interior misses the area is off the grid."""
    from odc.geo.geobox import GeoboxTiles

    from orbitcube.pipeline.footprints import _cut, _project, grid_lonlat, items_on_grid, tile_scene_pairs

    gbox = GeoBox.from_bbox((400_000, 5_500_000, 520_000, 5_600_000), "EPSG:32632", resolution=20)
    w, s, e, n = gbox.geographic_extent.boundingbox
    rng = np.random.default_rng(7)
    lon, lat = rng.uniform(w - 0.8, e + 0.3, 400), rng.uniform(s - 0.8, n + 0.3, 400)
    docs = [
        shapely.geometry.mapping(shapely.box(a, b, a + 0.7, b + 0.6)) for a, b in zip(lon, lat, strict=True)
    ]
    whole = items_on_grid(docs, gbox)
    area = grid_lonlat(gbox)
    shapes = np.array([shapely.geometry.shape(d) for d in docs], dtype=object)
    cut = _project(_cut(shapes, area), gbox.crs.to_wkt(), 0.25 * 20)
    on = np.array([g is not None for g in whole])
    np.testing.assert_array_equal(on, cut != None)  # noqa: E711 (element-wise)
    crossing = ~shapely.contains_properly(area, shapes) & on
    assert crossing.sum() > 50 and (~on).sum() > 20
    tiles = GeoboxTiles(gbox, (256, 256))
    got = tile_scene_pairs([whole[i] for i in np.flatnonzero(on)], tiles)
    want = tile_scene_pairs(list(cut[on]), tiles)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
