"""Band resolution once per item layout (orbitcube.pipeline.layouts): the cached resolution is the per-item one,
for real Planetary Computer items and items whose layouts differ only in what the cache must not mix."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from pathlib import Path

import pystac
import pytest

from orbitcube.pipeline.bands import resolve_band, with_user_encoding
from orbitcube.pipeline.errors import LoadError
from orbitcube.pipeline.layouts import PRODUCT_PROPERTIES, BandResolver, item_layout
from orbitcube.pipeline.load import quality_band
from orbitcube.pipeline.quality import quality_decoder

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "real-stac-items"


def _per_item(item: pystac.Item, bands, mask, scale_offset=None):
    """What the resolver must give for ``item``: resolve_band per band, the quality layer and its decoder."""
    refs = []
    for b in bands:
        try:
            refs.append(with_user_encoding(resolve_band(item, b), scale_offset))
        except LoadError as exc:
            refs.append(str(exc))
    try:
        q = quality_band(item)
    except LoadError as exc:
        q = str(exc)
    dec = None
    if mask and q is not None and not isinstance(q, str):
        try:
            dec = quality_decoder(item, q.key, mask)
        except LoadError as exc:
            dec = str(exc)
    return refs, q, dec


def _cached(resolver: BandResolver, item: pystac.Item):
    r = resolver(item)
    refs = [str(e) if e is not None else ref for ref, e in zip(r.refs, r.errors, strict=True)]
    q = str(r.quality) if isinstance(r.quality, LoadError) else r.quality
    dec = str(r.decoder) if isinstance(r.decoder, LoadError) else r.decoder
    return refs, q, dec


def _check_all(items, bands, mask=None, scale_offset=None) -> int:
    resolver = BandResolver(bands, mask, scale_offset)
    for it in items:
        got, want = _cached(resolver, it), _per_item(it, bands, mask, scale_offset)
        assert _unnamed(got) == _unnamed(want), it.id
    return len(resolver)


def _unnamed(value):
    """Error messages without the quoted names (a cached error names the first item of the layout)."""
    if isinstance(value, (list, tuple)):
        return [_unnamed(v) for v in value]
    return re.sub(r"'[^']*'", "", value) if isinstance(value, str) else value


def test_product_properties_cover_what_the_product_table_reads() -> None:
    """A property the product table reads but the layout ignores would let two items share a wrong scale."""
    text = (ROOT / "catalog" / "products.py").read_text()
    read = set(re.findall(r'props\.get\("([^"]+)"', text)) | set(re.findall(r'"([^"]+)" in props', text))
    assert read and read <= set(PRODUCT_PROPERTIES), read - set(PRODUCT_PROPERTIES)


@pytest.mark.parametrize("path", sorted(REAL.glob("*.json")), ids=lambda p: p.stem)
def test_real_items_resolve_as_per_item(path: Path) -> None:
    items = [pystac.Item.from_dict(d) for d in json.loads(path.read_text())]
    bands = sorted({k for it in items for k in it.assets})[:6] + ["red", "nir", "nosuchband"]
    _check_all(items, bands)
    _check_all(items, bands, mask=["cloud", "shadow"], scale_offset={"red": (2.0, 1.0)})


def _item(
    n: int, collection: str, when: dt.datetime, rb: dict | None, props: dict | None = None
) -> pystac.Item:
    it = pystac.Item(
        f"it{n}", {"type": "Point", "coordinates": [10, 50]}, [10, 50, 10, 50], when, props or {}
    )
    it.collection_id = collection
    fields = {"eo:bands": [{"name": "B04", "common_name": "red"}]}
    if rb is not None:
        fields["raster:bands"] = [rb]
    it.add_asset("B04", pystac.Asset(f"/data/{n}/B04.tif", extra_fields=fields))
    it.add_asset("SCL", pystac.Asset(f"/data/{n}/SCL.tif"))
    return it


def test_the_cache_never_mixes_two_layouts() -> None:
    """Items that differ in scale/offset, nodata, collection, processing baseline or date (product table) each
    get their own resolution; items that differ only in hrefs share one."""
    t_old, t_new = dt.datetime(2021, 6, 1, tzinfo=dt.UTC), dt.datetime(2023, 6, 1, tzinfo=dt.UTC)
    items = [
        _item(0, "a", t_new, {"scale": 1e-4, "offset": 0.0, "nodata": 0}),
        _item(1, "a", t_new, {"scale": 1e-4, "offset": 0.0, "nodata": 0}),  # same layout as 0
        _item(2, "a", t_new, {"scale": 1e-4, "offset": -0.1, "nodata": 0}),
        _item(3, "a", t_new, {"scale": 1e-4, "offset": 0.0, "nodata": 65535}),
        _item(4, "b", t_new, {"scale": 2e-4, "offset": 0.0, "nodata": 0}),
        _item(5, "sentinel-2-l2a", t_old, None),  # product table: offset 0 before 2022-01-25
        _item(6, "sentinel-2-l2a", t_new, None),  # -0.1 after
        _item(7, "sentinel-2-l2a", t_new, None, {"s2:processing_baseline": "03.00"}),
        _item(8, "sentinel-2-l2a", t_new, None, {"earthsearch:boa_offset_applied": True}),
        _item(9, "c", t_new, {"nodata": 0}),
    ]
    assert item_layout(items[0]) == item_layout(items[1])
    assert len({item_layout(it) for it in items}) == 8  # 5 and 6 differ by date only: resolved per date
    resolver = BandResolver(["red", "SCL"], ["cloud"])
    refs = [resolver(it).refs[0] for it in items]
    assert refs[0] == refs[1] and refs[0] is refs[1]
    assert {(r.offset, r.nodata) for r in refs[:4]} == {(0.0, 0.0), (-0.1, 0.0), (0.0, 65535.0)}
    assert refs[4].scale == 2e-4
    assert [r.offset for r in refs[5:9]] == [0.0, -0.1, 0.0, 0.0]
    assert _check_all(items, ["red", "SCL"], mask=["cloud"]) == 8
    moved = copy.deepcopy(items[0])
    moved.assets["B04"].extra_fields["raster:bands"][0]["scale"] = 3.0  # same ids, changed metadata
    assert resolver(moved).refs[0].scale == 3.0
