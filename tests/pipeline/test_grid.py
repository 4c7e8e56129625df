"""Output grids (pipeline/grid.py): alignment with the items' pixel grid, AOI forms, tiles and error paths."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from odc.geo import xy_
from odc.geo.geom import box

from orbitcube.pipeline.errors import GridError
from orbitcube.pipeline.grid import aoi_geometry, items_anchor, output_grid, tile_grid
from orbitcube.pipeline.load import load_cube

UTM21S = "EPSG:32721"


def write_scene(
    path: Path, origin: tuple[float, float], res: float, data: np.ndarray, crs: str = UTM21S, nodata=0
) -> Path:
    """A single-band GeoTIFF with its top-left corner at ``origin`` (x, y) and square ``res`` pixels."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs=crs,
        transform=Affine(res, 0, origin[0], 0, -res, origin[1]),
        nodata=nodata,
        tiled=True,
        blockxsize=64,
        blockysize=64,
    ) as dst:
        dst.write(data, 1)
    return path


def scene_item(
    item_id: str,
    files: dict[str, Path],
    when=dt.datetime(2023, 6, 1, 13, tzinfo=dt.UTC),
    props: dict | None = None,
):
    """A STAC item for files written by :func:`write_scene` (proj fields per asset, footprint from the first)."""
    from odc.geo.geom import Geometry

    assets, footprint = {}, None
    for key, path in files.items():
        with rasterio.open(path) as src:
            g = box(*src.bounds, crs=src.crs).to_crs(4326)
            footprint = footprint or g
            assets[key] = pystac.Asset(
                str(path),
                extra_fields={
                    "proj:code": src.crs.to_string(),
                    "proj:shape": [src.height, src.width],
                    "proj:transform": list(src.transform)[:6],
                    "raster:bands": [{"nodata": src.nodata, "data_type": src.dtypes[0]}],
                    "eo:bands": [{"name": key, "common_name": key}],
                },
            )
    assert isinstance(footprint, Geometry)
    it = pystac.Item(
        item_id, footprint.json, list(footprint.boundingbox), when, props or {}, collection="test"
    )
    for k, a in assets.items():
        it.add_asset(k, a)
    return it


@pytest.fixture(scope="module")
def odd15_scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[pystac.Item, dict[str, np.ndarray]]:
    """A Landsat-like scene on a 30 m grid with corners at odd multiples of 15 m (as real Landsat): a random
    uint16 band with a nodata border, and a QA-like uint8 class band on the same grid."""
    d = tmp_path_factory.mktemp("odd15")
    rng = np.random.default_rng(4)
    red = rng.integers(1, 60000, size=(150, 170), dtype=np.uint16)
    red[:5], red[:, -7:] = 0, 0  # nodata border, as scene edges are
    qa = rng.integers(1, 255, size=(150, 170), dtype=np.uint8)
    origin = (500_025.0, 7_199_985.0)  # 15 x 33335, 15 x 479999: odd multiples of 15
    files = {
        "red": write_scene(d / "red.tif", origin, 30, red),
        "qa": write_scene(d / "qa.tif", origin, 30, qa),
    }
    return scene_item("odd15", files), {"red": red, "qa": qa}


def _window(cube, path: Path) -> tuple[slice, slice]:
    """Where the file's pixels sit in the cube's grid (whole pixels, asserted)."""
    gt = cube.odc.geobox.transform
    with rasterio.open(path) as src:
        col = (src.transform.c - gt.c) / gt.a
        row = (src.transform.f - gt.f) / gt.e
        assert col == round(col) and row == round(row), "the cube grid is not aligned with the file's"
        r, c = round(row), round(col)
        return slice(r, r + src.height), slice(c, c + src.width)


def test_native_load_of_an_odd_15m_grid_copies_the_pixels(odd15_scene) -> None:
    """A grid derived from the items (no crs/resolution) and one given at the native resolution both follow the
    items' pixel grid: every band (bilinear by default, and the nearest-neighbour class band) comes back exactly."""
    item, truth = odd15_scene
    for kw in ({}, {"crs": UTM21S, "resolution": 30}):
        cube = load_cube([item], ["red", "qa"], mask=None, **kw).compute()
        assert cube.odc.geobox.resolution.x == 30
        for band in ("red", "qa"):
            ys, xs = _window(cube, Path(item.assets[band].href))
            got = cube[band].isel(time=0).values[ys, xs]
            valid = truth[band] != 0
            np.testing.assert_array_equal(got[valid], truth[band][valid].astype(np.float32))
            assert np.isnan(got[~valid]).all()


def test_items_anchor_follows_the_items_and_explicit_anchor_wins(odd15_scene) -> None:
    item, _ = odd15_scene
    assert tuple(items_anchor([item], ["red"], UTM21S, 30).xy) == (0.5, 0.5)
    assert items_anchor([item], ["red"], UTM21S, 60) is None  # not the native resolution
    assert items_anchor([item], ["red"], "EPSG:32722", 30) is None  # not the items' CRS
    native = output_grid([item], bands=["red"])
    assert native.transform.c % 30 == 15 and native.transform.f % 30 == 15
    edge = output_grid([item], bands=["red"], anchor="edge")
    assert edge.transform.c % 30 == 0 and edge.transform.f % 30 == 0
    quarter = output_grid([item], crs=UTM21S, resolution=30, anchor=xy_(0.25, 0.75))
    assert (quarter.transform.c % 30, quarter.transform.f % 30) == (7.5, 22.5)
    coarse = output_grid([item], crs=UTM21S, resolution=60)  # another resolution: multiples of it
    assert coarse.transform.c % 60 == 0
    with pytest.raises(GridError, match="anchor"):
        output_grid([item], crs=UTM21S, resolution=30, anchor="middle")


def test_items_whose_grids_disagree_snap_to_multiples(odd15_scene, tmp_path: Path) -> None:
    item, truth = odd15_scene
    other = scene_item(
        "edge", {"red": write_scene(tmp_path / "e.tif", (500_010.0, 7_199_970.0), 30, truth["red"])}
    )
    assert items_anchor([item, other], ["red"], UTM21S, 30) is None
    gbox = output_grid([item, other], bands=["red"])
    assert gbox.transform.c % 30 == 0


def test_real_landsat_native_load_equals_the_files(landsat_real_dir: Path, tmp_path: Path) -> None:
    """The real Landsat 8 rows (corners at odd multiples of 15 m, uint16): ingested, loaded on their native grid
    without crs/resolution, every pixel inside the scene equals the file's value (read with rasterio), and the
    time label is the acquisition date 2020-05-18 (a date-only file name in the western hemisphere)."""
    from orbitcube.catalog.items import ingest

    items = ingest(landsat_real_dir, tmp_path / "cat").items
    row77 = next(it for it in items if "224077" in it.id)
    cube = load_cube([row77], ["red", "blue"], mask=None).compute()
    assert str(cube.time.values[0])[:10] == "2020-05-18"
    for band, key in (("red", "B4"), ("blue", "B2")):
        path = Path(row77.assets[key].href)
        with rasterio.open(path) as src:
            truth = src.read(1)
        ys, xs = _window(cube, path)
        got = cube[band].isel(time=0).values[ys, xs]
        inside = truth != 0  # the scene's footprint (Collection 1 fills outside it with 0)
        assert inside.mean() > 0.5
        np.testing.assert_array_equal(got[inside], truth[inside].astype(np.float32))
    both = load_cube(items, ["red"], mask=None)
    assert both.sizes["time"] == 1 and str(both.time.values[0])[:10] == "2020-05-18"


# ----- AOI forms ------------------------------------------------------------------------------------------------------
def test_aoi_forms(odd15_scene) -> None:
    item, _ = odd15_scene
    w, s, e, n = item.bbox
    b = (w + 0.01, s + 0.01, w + 0.03, s + 0.02)
    as_box = aoi_geometry(b)
    poly = {
        "type": "Polygon",
        "coordinates": [[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]], [b[0], b[1]]]],
    }
    feature = {"type": "Feature", "geometry": poly, "properties": {}}
    second = {"type": "Polygon", "coordinates": [[[c + 0.05, d] for c, d in poly["coordinates"][0]]]}
    fc = {"type": "FeatureCollection", "features": [feature, {"type": "Feature", "geometry": second}]}
    assert aoi_geometry(poly).geom.equals(as_box.geom)
    assert aoi_geometry(feature).geom.equals(as_box.geom)
    union = aoi_geometry(fc)
    assert union.geom.area == pytest.approx(2 * as_box.geom.area)
    g1 = output_grid([item], crs=UTM21S, resolution=30, aoi=fc, bands=["red"])
    g2 = output_grid([item], crs=UTM21S, resolution=30, aoi=b, bands=["red"])
    assert g1.shape.x > g2.shape.x and g1.shape.y == pytest.approx(g2.shape.y, abs=1)
    assert (g1.transform.c - g2.transform.c) % 30 == 0  # both follow the items' grid


def test_tile_id_aoi_is_the_union_of_matching_items(odd15_scene) -> None:
    item, _ = odd15_scene
    a = item.clone()
    a.properties["grid:code"] = "MGRS-21KXA"
    b = item.clone()
    b.id = "other"
    b.properties["s2:mgrs_tile"] = "21KXB"
    assert aoi_geometry("21KXA", [a, b]).geom.equals(aoi_geometry(item.geometry).geom)
    assert aoi_geometry("21KXB", [a, b]).geom.equals(aoi_geometry(item.geometry).geom)
    with pytest.raises(GridError, match="matches no item.*MGRS-21KXA"):
        aoi_geometry("32TQR", [a, b])


@pytest.mark.parametrize(
    "aoi, match",
    [
        ((10, 5, 0, 6), "west < east"),
        ((0, 0, 1), "not a \\(west, south, east, north\\)"),
        ({"type": "Point", "coordinates": [0, 0]}, "not an area"),
        ({"type": "FeatureCollection", "features": []}, "no features"),
    ],
)
def test_bad_aois_are_grid_errors(aoi, match: str) -> None:
    with pytest.raises(GridError, match=match):
        output_grid(crs=UTM21S, resolution=30, aoi=aoi)


def test_other_error_paths(odd15_scene) -> None:
    item, _ = odd15_scene
    with pytest.raises(GridError, match="needs items"):
        output_grid(aoi=(0, 0, 1, 1))
    with pytest.raises(GridError, match="resolution"):
        output_grid([item], crs=UTM21S, resolution=-30)
    with pytest.raises(GridError, match="cannot project the AOI"):
        output_grid([item], crs="EPSG:999999", resolution=30)
    bare = item.clone()
    for a in bare.assets.values():
        a.extra_fields = {}
    with pytest.raises(GridError, match="pass crs= and resolution="):
        output_grid([bare])


def test_tiles_cover_the_grid() -> None:
    gbox = output_grid(crs=UTM21S, resolution=30, aoi=(-57.0, -25.1, -56.9, -25.0))
    tiles = tile_grid(gbox, (64, 48))
    ny, nx = tiles.shape.yx
    assert sum(tiles[i, 0].shape.y for i in range(ny)) == gbox.shape.y
    assert sum(tiles[0, j].shape.x for j in range(nx)) == gbox.shape.x
    assert tiles[0, 0].transform.c == gbox.transform.c
    with pytest.raises(GridError, match="tile_shape"):
        tile_grid(gbox, (0, 512))


def test_grid_from_items_across_the_antimeridian() -> None:
    """The real io-lulc item 60U (UTM zone 60, a footprint ring jumping from 180 to -180, bbox -180..180): the
    grid derived from it covers the tile (its proj:bbox), not a band round the globe."""
    import json

    from tests.conftest import SHARED_DATA

    docs = json.loads((SHARED_DATA / "real-stac-items" / "io-lulc-annual-v02-pc.json").read_text())
    item = pystac.Item.from_dict(next(d for d in docs if d["id"] == "60U-2023"))
    gbox = output_grid([item], crs="EPSG:32660", resolution=1000)
    x0, y0, x1, y1 = item.properties["proj:bbox"]
    left, bottom, right, top = gbox.extent.boundingbox
    assert left == pytest.approx(x0, abs=20_000) and right == pytest.approx(x1, abs=20_000)
    assert bottom == pytest.approx(y0, abs=20_000) and top == pytest.approx(y1, abs=20_000)


def _meta_item(origin: tuple[float, float], res: float, shape=(200, 300), crs: str = UTM21S) -> pystac.Item:
    """An item with projection metadata only (no file): asset ``red`` on the grid (origin, res, shape)."""
    from odc.geo.geom import Geometry

    x0, y1 = origin
    fp = Geometry(box(x0, y1 - shape[0] * res, x0 + shape[1] * res, y1, crs=crs).geom, crs=crs).to_crs(4326)
    it = pystac.Item("m", fp.json, list(fp.boundingbox), dt.datetime(2023, 6, 1, tzinfo=dt.UTC), {})
    tr = [res, 0.0, x0, 0.0, -res, y1]
    extra = {
        "proj:code": crs,
        "proj:shape": list(shape),
        "proj:transform": tr,
        "eo:bands": [{"common_name": "red"}],
    }
    it.add_asset("red", pystac.Asset("red.tif", extra_fields=extra))
    return it


@settings(max_examples=60, deadline=None)
@given(
    res=st.sampled_from([10.0, 20.0, 30.0, 60.0, 0.5]),
    kx=st.integers(10_000, 40_000),
    ky=st.integers(200_000, 240_000),
    fx=st.floats(0, 1, exclude_max=True),
    fy=st.floats(0, 1, exclude_max=True),
)
def test_derived_grids_align_with_any_sub_pixel_origin(res, kx, ky, fx, fy) -> None:
    """Whatever the items' origin (whole multiples, odd multiples of half the pixel, any sub-pixel phase), the
    grid derived from them and the grid given at their resolution put pixel edges on the items' edges."""
    origin = (kx * res + round(fx, 4) * res, ky * res + round(fy, 4) * res)
    item = _meta_item(origin, res)
    for gbox in (output_grid([item], bands=["red"]), output_grid([item], crs=UTM21S, resolution=res)):
        col = (gbox.transform.c - origin[0]) / res
        row = (gbox.transform.f - origin[1]) / res
        assert abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6
        assert gbox.resolution.x == res
