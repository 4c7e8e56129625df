"""Quality layers decoded from their STAC metadata (issue 13, defect 6), proven on real items.

Small rasters are written exactly on the real assets' grids (a window of the real Landsat 9 scene, the real IO
land-cover tile, an HLS tile as LP DAAC publishes it), with quality classes planted in known places; loads with a
mask must remove 100 % of the planted pixels and no clear pixel.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from odc.geo.geobox import GeoBox

from orbitcube.catalog.classes import MASK_NAMES
from orbitcube.pipeline.errors import LoadError
from orbitcube.pipeline.load import load_cube, quality_band
from orbitcube.pipeline.quality import QualityDecoder, decoder_from_fields, quality_decoder

REAL_ITEMS = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-stac-items"
SIZE = 48  # pixels per side of the windows written on the real grids


def _real_item(name: str) -> dict:
    path = REAL_ITEMS / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; the tests expect ../shared/data beside the repository")
    return copy.deepcopy(json.loads(path.read_text())[0])


def _write(path: Path, data: np.ndarray, crs: str, transform: Affine, nodata) -> str:
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return str(path)


def _on_window(
    item: dict, keys: list[str], crs: str, transform: Affine, files: dict[str, str]
) -> pystac.Item:
    """``item`` keeping only ``keys`` (in that order), their hrefs rewritten to ``files`` and their grid set to the
    window ``transform`` (SIZE x SIZE pixels)."""
    item["assets"] = {k: item["assets"][k] for k in keys}
    for k in keys:
        a = item["assets"][k]
        a["href"] = files[k]
        a.update({"proj:code": crs, "proj:shape": [SIZE, SIZE], "proj:transform": list(transform)[:6]})
    for k in ("proj:epsg", "proj:shape", "proj:transform", "proj:bbox"):
        item["properties"].pop(k, None)
    item["links"] = []
    return pystac.Item.from_dict(item)


def _window(item: dict, row: int, col: int) -> tuple[str, Affine, GeoBox]:
    props = item["properties"]
    crs = f"EPSG:{props['proj:epsg']}"
    a, b, x0, d, e, y0 = props["proj:transform"][:6]
    transform = Affine(a, b, x0 + col * a, d, e, y0 + row * e)
    return crs, transform, GeoBox((SIZE, SIZE), transform, crs)


def _regions(seed: int, n: int) -> np.ndarray:
    """Labels 0..n-1 in random blocks of 4 x 4 pixels (every label present), dims (SIZE, SIZE)."""
    rng = np.random.default_rng(seed)
    blocks = rng.permutation(np.arange((SIZE // 4) ** 2) % n).reshape(SIZE // 4, SIZE // 4)
    return np.kron(blocks, np.ones((4, 4), int))


# ----- the real Landsat 9 item: qa_pixel with classification:bitfields --------------------------------------------
@pytest.fixture(scope="module")
def landsat(tmp_path_factory) -> tuple[pystac.Item, GeoBox, np.ndarray]:
    """The real LC09 item on a 48 x 48 window of its real grid (EPSG:32655, corners on odd multiples of 15 m):
    red = 10000 everywhere, qa_pixel with planted regions 0 clear, 1 cloud, 2 cloud shadow, 3 cirrus, 4 dilated
    cloud, 5 snow, 6 water, 7 fill (and the confidence fields a real scene sets with them)."""
    d = tmp_path_factory.mktemp("landsat-real-grid")
    item = _real_item("landsat-c2-l2-pc.json")
    crs, transform, gbox = _window(item, 3000, 2500)
    labels = _regions(1, 8)
    low_cloud = 1 << 8  # cloud confidence low: set on every clear pixel of a real scene
    qa_of = {
        0: 1 << 6 | low_cloud,
        1: 1 << 3 | 3 << 8 | 1 << 1,  # high confidence cloud (+ dilated)
        2: 1 << 4 | 3 << 10 | low_cloud,
        3: 1 << 2 | 3 << 14 | 1 << 6 | low_cloud,
        4: 1 << 1 | low_cloud,
        5: 1 << 5 | 3 << 12 | low_cloud,
        6: 1 << 7 | 1 << 6 | low_cloud,
        7: 1,
    }
    qa = np.vectorize(qa_of.get)(labels).astype(np.uint16)
    files = {
        "red": _write(d / "red.tif", np.full((SIZE, SIZE), 10000, np.uint16), crs, transform, 0),
        "qa_pixel": _write(d / "qa.tif", qa, crs, transform, 1),
        "qa_aerosol": _write(d / "aer.tif", np.zeros((SIZE, SIZE), np.uint8), crs, transform, 1),
    }
    # qa_aerosol (bitfields too, and first) must not be taken for the cloud layer
    return _on_window(item, ["qa_aerosol", "red", "qa_pixel"], crs, transform, files), gbox, labels


@pytest.mark.parametrize(
    ("mask", "planted"),
    [
        (["cloud", "shadow"], {1, 2}),
        (["nodata", "saturated", "cloud", "shadow", "cirrus"], {1, 2, 3, 7}),
        (["dilated_cloud"], {1, 4}),
        (["snow", "water"], {5, 6}),
        (["shadow"], {2}),
        (["cloud_high"], {1}),  # cloud confidence high (bits 8-9 = 3)
    ],
)
def test_real_landsat_bitfields_mask_exactly_the_planted_pixels(landsat, mask, planted) -> None:
    item, gbox, labels = landsat
    assert quality_band(item).key == "qa_pixel"
    red = load_cube([item], ["red"], geobox=gbox, mask=mask, groupby="time")["red"].values[0]
    masked = np.isnan(red)
    want = np.isin(labels, list(planted))
    assert masked[want].all(), f"{(~masked[want]).sum()} planted pixels kept"
    assert not masked[~want].any(), f"{masked[~want].sum()} clear pixels masked"
    np.testing.assert_allclose(red[~want], 10000 * 2.75e-05 - 0.2, rtol=1e-6)


def test_undecodable_mask_name_fails_in_load_cube_naming_the_product_classes(landsat) -> None:
    item, gbox, _ = landsat
    with pytest.raises(LoadError) as err:
        load_cube([item], ["red"], geobox=gbox, mask=["cloud", "dark"])  # no compute: before any read
    msg = str(err.value)
    for part in ("['dark']", item.id, "landsat-c2-l2", "classification:bitfields", "cloud_shadow=shadow"):
        assert part in msg, (part, msg)
    with pytest.raises(LoadError, match=r"unknown mask name\(s\) \['clouds'\]; choose from"):
        load_cube([item], ["red"], geobox=gbox, mask=["clouds"])


# ----- HLS Fmask: bit 3 is cloud shadow (QA_PIXEL's bit 3 is cloud) -----------------------------------------------
def _hls_bitfields() -> list[dict]:
    """The Fmask description of the HLS v2.0 user guide, in the shape of classification:bitfields."""

    def flag(offset: int, name: str, title: str) -> dict:
        return {
            "offset": offset,
            "length": 1,
            "name": name,
            "description": title,
            "classes": [{"value": 0, "name": "no"}, {"value": 1, "name": "yes"}],
        }

    return [
        flag(0, "cirrus", "Cirrus (reserved, not used)"),
        flag(1, "cloud", "Cloud"),
        flag(2, "adjacent_to_cloud_or_shadow", "Adjacent to cloud/shadow"),
        flag(3, "cloud_shadow", "Cloud shadow"),
        flag(4, "snow_ice", "Snow/ice"),
        flag(5, "water", "Water"),
        {
            "offset": 6,
            "length": 2,
            "name": "aerosol_level",
            "classes": [
                {"value": v, "name": n} for v, n in enumerate(("climatology", "low", "moderate", "high"))
            ],
        },
    ]


@pytest.fixture(scope="module", params=["metadata", "built-in"])
def hls(request, tmp_path_factory) -> tuple[pystac.Item, GeoBox, np.ndarray]:
    """An HLS L30 item (UTM 15N, 30 m, B04 int16 scale 1e-4 nodata -9999, Fmask uint8 nodata 255), with or without
    classification metadata on Fmask. Planted: 0 clear, 1 cloud, 2 adjacent, 3 cloud shadow, 4 snow/ice, 5 water,
    6 fill (255); aerosol level "low" (bit 6) on every valid pixel, as in real tiles."""
    d = tmp_path_factory.mktemp(f"hls-{request.param}")
    crs, transform = "EPSG:32615", Affine(30, 0, 199980, 0, -30, 4000020)
    labels = _regions(2, 7)
    fm = np.vectorize({0: 0, 1: 2, 2: 4, 3: 8, 4: 16, 5: 32, 6: 255}.get)(labels).astype(np.uint8)
    fm[labels != 6] |= 1 << 6
    b04 = np.where(labels == 6, -9999, 1200).astype(np.int16)  # fill in every layer, as in real tiles
    files = {
        "B04": _write(d / "B04.tif", b04, crs, transform, -9999),
        "Fmask": _write(d / "Fmask.tif", fm, crs, transform, 255),
    }
    gbox = GeoBox((SIZE, SIZE), transform, crs)
    fmask: dict = {"href": "", "roles": ["data"], "raster:bands": [{"data_type": "uint8", "nodata": 255}]}
    if request.param == "metadata":
        fmask["classification:bitfields"] = _hls_bitfields()
    doc = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "HLS.L30.T15SUA.2023152T165530.v2.0",
        "collection": "hls2-l30",
        "geometry": gbox.extent.to_crs(4326).json,
        "bbox": list(gbox.extent.to_crs(4326).boundingbox),
        "properties": {"datetime": "2023-06-01T16:55:30Z"},
        "assets": {
            "B04": {
                "href": "",
                "roles": ["data"],
                "eo:bands": [{"name": "B04", "common_name": "red"}],
                "raster:bands": [{"data_type": "int16", "nodata": -9999, "scale": 0.0001}],
            },
            "Fmask": fmask,
        },
        "links": [],
    }
    return _on_window(doc, ["B04", "Fmask"], crs, transform, files), gbox, labels


@pytest.mark.parametrize(
    ("mask", "planted"),
    [
        (["shadow"], {3}),
        (["cloud"], {1}),
        (["cloud", "shadow", "adjacent"], {1, 2, 3}),
        (["nodata", "saturated", "cloud", "shadow", "cirrus"], {1, 3}),
        (["snow", "water"], {4, 5}),
    ],
)
def test_hls_fmask_bit_3_is_shadow(hls, mask, planted) -> None:
    item, gbox, labels = hls
    red = load_cube([item], ["red"], geobox=gbox, mask=mask, groupby="time")["red"].values[0]
    masked = np.isnan(red)
    want = np.isin(labels, [*planted, 6])  # fill (6) is nodata in B04 whatever the mask
    assert masked[want].all(), f"{(~masked[want]).sum()} planted pixels kept"
    assert not masked[~want].any(), f"{masked[~want].sum()} clear pixels masked"


# ----- classes by value: the real IO land-cover item (file:values) and classification:classes --------------------
def test_real_io_lulc_file_values_mask_the_clouds_class(tmp_path) -> None:
    """The real IO land-cover item describes its classes with file:values ("Clouds" = 10, "Snow/ice" = 9); its
    own layer is its quality layer: its decoder for mask=["cloud", "snow"] flags classes 9 and 10 exactly, the
    class layer itself comes back as classified (class and quality layers are never masked, as SCL and
    QA_PIXEL), and "shadow" is not offered."""
    item = _real_item("io-lulc-annual-v02-pc.json")
    item["properties"]["datetime"] = item["properties"]["start_datetime"]  # null in the real item
    crs, transform, gbox = _window(item, 40000, 20000)
    lut = np.array([1, 2, 4, 5, 7, 8, 9, 10, 11], np.uint8)
    labels = _regions(3, len(lut))
    classes = lut[labels]
    files = {"data": _write(tmp_path / "lulc.tif", classes, crs, transform, 0)}
    it = _on_window(item, ["data"], crs, transform, files)
    assert quality_band(it).key == "data"
    np.testing.assert_array_equal(
        quality_decoder(it, "data", ["cloud", "snow"]).mask(classes), np.isin(classes, [9, 10])
    )
    got = load_cube([it], ["data"], geobox=gbox, mask=["cloud", "snow"], groupby="time")["data"].values[0]
    np.testing.assert_array_equal(got, classes)
    with pytest.raises(LoadError, match=r"\['shadow'\].*'cloud', 'snow', 'water'.*10=clouds"):
        load_cube([it], ["data"], geobox=gbox, mask=["shadow"])


def test_classification_classes_decode_by_name_not_by_position() -> None:
    """A layer whose values are not SCL's: names decide (cloud = 3 and 4, shadow = 7), including a class whose
    name is only a description (classification v1) and a synonym ("Cloud shadows")."""
    fields = {
        "classification:classes": [
            {"value": 0, "name": "no_data"},
            {"value": 1, "name": "clear"},
            {"value": 3, "name": "cloud"},
            {"value": 4, "description": "Clouds"},
            {"value": 7, "name": "Cloud shadows"},
            {"value": 9, "name": "snow_ice"},
        ]
    }
    dec = decoder_from_fields(json.dumps(fields), ("cloud", "shadow"))
    assert dec == QualityDecoder("values", values=(3, 4, 7), names=("cloud", "shadow"))
    q = np.arange(12, dtype=np.uint8)
    assert np.flatnonzero(dec.mask(q)).tolist() == [3, 4, 7]
    assert np.flatnonzero(dec.mask(q.astype(np.int16))).tolist() == [3, 4, 7]  # without the lookup table
    assert decoder_from_fields(json.dumps(fields), ("nodata", "snow")).values == (0, 9)


def test_decoder_is_small_frozen_hashable_and_picklable() -> None:
    import pickle

    from dask.base import tokenize

    dec = decoder_from_fields(json.dumps({"classification:bitfields": _hls_bitfields()}), ("cloud", "shadow"))
    assert dec.kind == "bits" and dec.bits == ((1, 1, (1,)), (3, 1, (1,)))
    assert pickle.loads(pickle.dumps(dec)) == dec and hash(dec) == hash(pickle.loads(pickle.dumps(dec)))
    assert tokenize(dec) == tokenize(pickle.loads(pickle.dumps(dec)))
    with pytest.raises(AttributeError):
        dec.kind = "values"  # type: ignore[misc]


def test_a_quality_layer_without_metadata_or_built_in_knowledge_is_a_clear_error(landsat) -> None:
    item, _, _ = landsat
    it = item.clone()
    qa = it.assets.pop("qa_pixel")
    qa.extra_fields.pop("classification:bitfields")
    it.add_asset("cloud_mask", qa)
    it.assets.pop("qa_aerosol")
    it.assets["cloud_mask"].extra_fields["classification:classes"] = []
    assert quality_band(it) is None  # empty metadata is no metadata
    with pytest.raises(LoadError, match="no built-in knowledge"):
        quality_decoder(it, "cloud_mask", ["cloud"])


def test_every_vocabulary_name_is_decodable_by_some_built_in_layer() -> None:
    from orbitcube.pipeline.masks import builtin_decoder

    for name in MASK_NAMES:
        ok = []
        for key in ("SCL", "QA_PIXEL", "Fmask"):
            try:
                builtin_decoder(key, [name])
                ok.append(key)
            except LoadError:
                pass
        assert ok, name


# ----- before any work: recipe validate and run --dry-run ---------------------------------------------------------
def test_recipe_validate_checks_mask_names_against_the_one_vocabulary(tmp_path, capsys) -> None:
    import yaml

    from orbitcube.pipeline.cli import main
    from orbitcube.pipeline.recipe import example_recipe

    doc = yaml.safe_load(example_recipe())
    path = tmp_path / "recipe.yaml"
    doc["load"]["mask"] = ["fill", "cloud", "shadow", "adjacent", "dilated_cloud"]  # QA_PIXEL, Fmask names
    path.write_text(yaml.safe_dump(doc))
    assert main(["-q", "recipe", "validate", str(path)]) == 0
    doc["load"]["mask"] = [
        "cloud",
        "cloud_shadow",
    ]  # the name Landsat's bitfields declare: an alias of shadow
    path.write_text(yaml.safe_dump(doc))
    assert main(["-q", "recipe", "validate", str(path)]) == 0
    doc["load"]["mask"] = ["cloud", "cloud_shade"]
    path.write_text(yaml.safe_dump(doc))
    assert main(["-q", "recipe", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "load.mask" in err and "'cloud_shade'" in err and "'shadow'" in err and "'adjacent'" in err


def test_run_dry_run_fails_on_a_mask_name_the_product_cannot_decode(run_recipe_doc, tmp_path, capsys) -> None:
    """Sentinel-2 SCL has no dilated-cloud class: the dry run says so, naming the classes SCL offers, before any
    tile is read or written."""
    import yaml

    from orbitcube.pipeline.cli import main

    doc = run_recipe_doc(tmp_path / "cube.zarr")
    doc["load"]["mask"] = ["cloud", "dilated_cloud"]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["-q", "run", str(path), "--dry-run"]) != 0
    err = capsys.readouterr().err
    for part in ("dilated_cloud", "sentinel-2-l2a-sim", "cloud_shadows", "thin_cirrus", "mask=None"):
        assert part in err, (part, err)
    assert not (tmp_path / "cube.zarr").exists()
    doc["load"]["mask"] = ["cloud", "shadow", "snow"]
    path.write_text(yaml.safe_dump(doc))
    assert main(["-q", "run", str(path), "--dry-run"]) == 0
