"""Real-world item JSON (hand-written after Earth Search, Planetary Computer and USGS Landsat C2 L2 items) loads,
validates offline, and gives the loader the right bands, grids and scalings."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest

from orbitcube.catalog.validate import validate_items
from orbitcube.pipeline.load import quality_band, resolve_band

FIXTURES = Path(__file__).parent / "fixtures"


def _item(name: str) -> pystac.Item:
    return pystac.Item.from_dict(json.loads((FIXTURES / name).read_text()))


@pytest.mark.parametrize(
    ("name", "red_key", "nir", "scale", "offset", "quality"),
    [
        ("earth-search-s2-l2a.json", "red", ("nir", "nir"), 0.0001, -0.1, "scl"),
        ("planetary-computer-s2-l2a.json", "B04", ("nir", "B08"), 0.0001, -0.1, "SCL"),
        ("landsat-c2-l2.json", "red", ("nir08", "nir08"), 2.75e-05, -0.2, "qa_pixel"),
    ],
)
def test_real_world_items_resolve_bands(name, red_key, nir, scale, offset, quality) -> None:
    item = _item(name)
    red = resolve_band(item, "red")  # by eo common name, whatever the asset key
    # Planetary Computer's S2 items carry no raster:bands: no nodata (the loader then takes the file's) and no
    # scale/offset: the product table fills in DN / 10000 - 0.1 from s2:processing_baseline 05.09 (>= 04.00)
    assert (red.key, red.scale, red.offset) == (red_key, scale, offset)
    assert red.source == ("product-table" if "planetary" in name else "item")
    assert red.nodata == (None if "planetary" in name else 0)
    assert resolve_band(item, nir[0]).key == nir[1]
    q = quality_band(item)
    assert q is not None and q.key == quality and q.is_quality
    code = item.properties.get("proj:code") or f"EPSG:{item.properties.get('proj:epsg')}"
    assert code in ("EPSG:32632", "EPSG:32633")  # pystac migrates proj:epsg (projection v1) to proj:code
    assert len(item.assets[red_key].extra_fields["proj:transform"]) == 6


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_real_world_items_validate_offline(name) -> None:
    problems = validate_items([json.loads((FIXTURES / name).read_text())])
    assert [p for p in problems if p.severity == "error"] == [], problems
    # STAC 1.0.0 documents are checked against 1.1.0 and say so; unshipped extensions are warnings, not passes
    assert any(p.field == "stac_version" for p in problems)
