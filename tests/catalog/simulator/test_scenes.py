"""Scene files: valid COGs with the products' encodings and quality layers consistent with the planted truth."""

from __future__ import annotations

import numpy as np
import rasterio

from orbitcube.catalog.simulator import SCL, Mission, QABit


def _asset_path(item, key):
    return item.assets[key].get_absolute_href()


def test_scene_files_are_cloud_optimized_geotiffs(mixed_mission: Mission) -> None:
    for item in mixed_mission.items[:6]:
        for key in item.assets:
            with rasterio.open(_asset_path(item, key)) as src:
                bh, bw = src.block_shapes[0]
                assert bh == bw and bh % 16 == 0, f"{key}: blocks {bh}x{bw} are strips, not tiles"
                assert src.profile["tiled"] or bh >= src.width, key  # one tile when the image is small
                assert src.overviews(1), f"{item.id}/{key} has no overviews"
                assert src.compression is not None
                assert src.nodata is not None
                layout = src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")
                assert layout == "COG", f"{item.id}/{key} layout {layout}"


def test_encodings_follow_the_real_products(mixed_mission: Mission) -> None:
    s2 = next(i for i in mixed_mission.items if i.collection_id.startswith("sentinel-2"))
    ls = next(i for i in mixed_mission.items if i.collection_id.startswith("landsat"))
    rb = s2.assets["B04"].extra_fields["raster:bands"][0]
    assert (rb["scale"], rb["offset"], rb["nodata"], rb["data_type"]) == (0.0001, -0.1, 0, "uint16")
    rb = ls.assets["SR_B4"].extra_fields["raster:bands"][0]
    assert (rb["scale"], rb["offset"], rb["nodata"]) == (2.75e-05, -0.2, 0)
    with rasterio.open(_asset_path(s2, "B04")) as a, rasterio.open(_asset_path(s2, "B05")) as b:
        assert a.res == (10.0, 10.0) and b.res == (20.0, 20.0)
    with rasterio.open(_asset_path(ls, "SR_B4")) as a:
        assert a.res == (30.0, 30.0)


def test_quality_layers_record_planted_clouds_and_shadows(mixed_mission: Mission) -> None:
    truth = mixed_mission.truth
    checked = 0
    for acq, item in zip(truth.acquisitions, mixed_mission.items, strict=True):
        assert acq.item_id == item.id
        key = acq.spec.mask_band
        gbox = acq.tile.geobox(acq.spec.band(key).resolution)
        with rasterio.open(_asset_path(item, key)) as src:
            layer = src.read(1)
        planted = truth.masks(gbox, acq)
        if key == "SCL":
            cloud = np.isin(
                layer, [SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY, SCL.THIN_CIRRUS]
            )
            shadow = layer == SCL.CLOUD_SHADOWS
            nodata = layer == SCL.NO_DATA
        else:
            cloud = (layer & (1 << QABit.CLOUD | 1 << QABit.CIRRUS)) > 0
            shadow = (layer & (1 << QABit.CLOUD_SHADOW)) > 0
            nodata = (layer & (1 << QABit.FILL)) > 0
        covered = planted["covered"]
        np.testing.assert_array_equal(nodata, ~covered)
        np.testing.assert_array_equal(cloud & covered, planted["cloud"] & covered)
        np.testing.assert_array_equal(shadow & covered, planted["shadow"] & covered)
        checked += int(planted["cloud"].any())
    assert checked >= 3, "the fixture should contain cloudy scenes"


def test_partial_swath_scenes_have_nodata_edges(mixed_mission: Mission) -> None:
    cut = [i for i in mixed_mission.items if i.properties["orbitcube:valid_fraction"] < 0.9]
    assert cut, "some passes should be cut by a swath edge"
    with rasterio.open(_asset_path(cut[0], next(iter(cut[0].assets)))) as src:
        band = src.read(1)
    assert (band == 0).any() and (band != 0).any()


def test_clear_pixels_match_planted_reflectance(mixed_mission: Mission) -> None:
    truth = mixed_mission.truth
    acq = next(a for a in truth.acquisitions if a.sensor == "sentinel-2" and a.swath_cut is None)
    item = next(i for i in mixed_mission.items if i.id == acq.item_id)
    gbox = acq.tile.geobox(10)
    with rasterio.open(_asset_path(item, "B08")) as src:
        nir = src.read(1).astype("f4") * 1e-4 - 0.1
    planted = truth.masks(gbox, acq)
    clear = ~planted["cloud"] & ~planted["shadow"]
    expected = truth.reflectance(gbox, acq.datetime.date(), ["nir"])["nir"]
    err = np.abs(nir - expected)[clear]
    assert np.median(err) < 0.005 and np.quantile(err, 0.99) < 0.015  # sensor noise 0.003 + haze


def test_landsat_corners_sit_at_odd_multiples_of_15_m(mixed_mission: Mission) -> None:
    """As on real Landsat (issue 13): 30 m pixel corners at odd multiples of 15 m, not on the 60 m grid that
    Sentinel-2 uses; a native load copies the scene's pixels exactly."""
    from orbitcube.pipeline.load import load_cube

    ls = next(i for i in mixed_mission.items if i.collection_id.startswith("landsat"))
    with rasterio.open(_asset_path(ls, "SR_B4")) as src:
        assert src.transform.c % 30 == 15 and src.transform.f % 30 == 15
        raw = src.read(1)
    cube = load_cube([ls], ["SR_B4"], mask=None).compute()
    gt, tr = cube.odc.geobox.transform, src.transform
    col, row = (tr.c - gt.c) / 30, (gt.f - tr.f) / 30  # the file's corner in cube pixels: whole pixels
    assert col == int(col) and row == int(row)
    r, c = int(row), int(col)
    got = cube["SR_B4"].isel(time=0).values[r : r + raw.shape[0], c : c + raw.shape[1]]
    valid = raw != 0
    assert got.shape == raw.shape and valid.mean() > 0.5
    want = raw[valid] * np.float32(2.75e-05) + np.float32(-0.2)
    np.testing.assert_allclose(got[valid], want, rtol=0, atol=1e-6)
