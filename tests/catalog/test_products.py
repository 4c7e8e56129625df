"""The product table (orbitcube.catalog.products): what real products encode where their STAC items are silent, checked on
real Planetary Computer items (../shared/data/real-stac-items) and used by ingest and the loader alike."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine

from orbitcube.catalog.items import items_from_files
from orbitcube.catalog.patterns import KNOWN
from orbitcube.catalog.products import (
    LANDSAT_C2_SR,
    S2_L2A_BOA_OFFSET,
    S2_L2A_SCALE,
    band_encoding,
    item_encoding,
)
from orbitcube.pipeline.bands import resolve_band

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-stac-items"


def _real(name: str) -> list[pystac.Item]:
    return [pystac.Item.from_dict(d) for d in json.loads((REAL / name).read_text())]


@pytest.mark.parametrize(
    ("props", "date", "offset"),
    [
        ({"s2:processing_baseline": "05.10"}, None, -0.1),
        ({"s2:processing_baseline": "04.00"}, dt.date(2022, 1, 25), -0.1),
        ({"s2:processing_baseline": "03.01"}, dt.date(2021, 6, 1), 0.0),
        ({}, dt.date(2022, 1, 24), 0.0),  # no baseline: the date decides
        ({}, dt.date(2022, 1, 25), -0.1),
        ({"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": True}, None, 0.0),
    ],
)
def test_sentinel2_offset_follows_the_processing_baseline(props, date, offset) -> None:
    enc = band_encoding("sentinel-2-l2a", props, date, "B04", "red")
    assert (enc.scale, enc.offset, enc.source) == (S2_L2A_SCALE, offset, "product-table")
    assert band_encoding("sentinel-2-l2a", props, date, "SCL") is None  # classes are not scaled


@pytest.mark.parametrize(
    ("collection", "key", "common", "want"),
    [
        ("landsat-c2-l2", "red", "red", (2.75e-05, -0.2)),  # Planetary Computer
        ("landsat-c2l2-sr", "SR_B4", None, (2.75e-05, -0.2)),  # USGS
        ("landsat-c2l2-st", "lwir11", "lwir11", (0.00341802, 149.0)),
        ("landsat-c2-l2", "ST_B10", None, (0.00341802, 149.0)),
        ("landsat-c2-l2", "qa_pixel", None, None),
        ("my-drone", "red", "red", None),
    ],
)
def test_landsat_collection2_level2_encodings(collection, key, common, want) -> None:
    enc = band_encoding(collection, {}, dt.date(2023, 1, 1), key, common)
    assert (None if enc is None else (enc.scale, enc.offset)) == want


def test_real_planetary_computer_items_get_the_right_encoding() -> None:
    """PC S2 (baseline 05.10, no raster:bands): product table; PC Landsat (raster:bands): the item; S1 RTC and
    NAIP as stored; IO land cover is a class layer; NAIP red/nir are bands 1/4 of ``image``."""
    s2 = _real("sentinel-2-l2a-pc.json")[0]
    red = resolve_band(s2, "red")
    assert (red.key, red.scale, red.offset, red.source) == (
        "B04",
        S2_L2A_SCALE,
        S2_L2A_BOA_OFFSET,
        "product-table",
    )
    ls = resolve_band(_real("landsat-c2-l2-pc.json")[0], "red")
    assert (ls.scale, ls.offset, ls.source, ls.nodata) == (*LANDSAT_C2_SR, "item", 0.0)
    naip = _real("naip-pc.json")[0]
    assert [(r.key, r.index) for r in (resolve_band(naip, "red"), resolve_band(naip, "nir"))] == [
        ("image", 1),
        ("image", 4),
    ]
    assert item_encoding(naip, "image", "red").source == "product-table"
    vv = resolve_band(_real("sentinel-1-rtc-pc.json")[0], "vv")
    assert (vv.nodata, vv.scale, vv.data_type) == (-32768.0, 1.0, "float32")
    lc = resolve_band(_real("io-lulc-annual-v02-pc.json")[0], "data")
    assert lc.is_quality and lc.source == "none"


def test_ingest_patterns_read_the_same_table(tmp_path) -> None:
    """The ingest patterns take their numbers from the table, and a Sentinel-2 file acquired before the
    baseline change gets no BOA offset while a later one gets -0.1."""
    by_id = {c.collection_id: c for c in KNOWN}
    assert (by_id["landsat-c2-l2"].scale, by_id["landsat-c2-l2"].offset) == LANDSAT_C2_SR
    hrefs = []
    for stamp in ("20211201T101411", "20230105T101411"):
        path = tmp_path / f"T32TQR_{stamp}_B04_10m.tif"
        profile = dict(driver="GTiff", width=4, height=4, count=1, dtype="uint16", crs="EPSG:32632", nodata=0)
        with rasterio.open(path, "w", transform=Affine(10, 0, 600000, 0, -10, 5000000), **profile) as dst:
            dst.write(np.full((1, 4, 4), 1000, np.uint16))
        hrefs.append(str(path))
    items, skipped = items_from_files(hrefs)
    assert not skipped
    rb = {it.datetime.year: it.assets["B04"].extra_fields["raster:bands"][0] for it in items}
    assert rb[2021].get("offset", 0.0) == 0.0 and rb[2021]["scale"] == S2_L2A_SCALE
    assert rb[2023]["offset"] == S2_L2A_BOA_OFFSET
