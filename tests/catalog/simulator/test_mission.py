"""Whole missions: determinism, metadata agreeing with pixels, ground truth on disk, refusing to overwrite."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from orbitcube.catalog.errors import SimulatorError
from orbitcube.catalog.simulator import SCL, Mission, MissionConfig, QABit, simulate_mission

TINY = dict(
    tile_size=64, start=dt.date(2023, 3, 1), end=dt.date(2023, 3, 20), sensors=("sentinel-2", "landsat")
)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    a = simulate_mission(MissionConfig(seed=3, **TINY), tmp_path / "a")
    b = simulate_mission(MissionConfig(seed=3, workers=2, **TINY), tmp_path / "b")
    c = simulate_mission(MissionConfig(seed=4, **TINY), tmp_path / "c")
    da, db, dc = _digest(a.root), _digest(b.root), _digest(c.root)
    assert len(da) > 20
    assert da == db, "same seed (1 vs 2 worker processes) must give identical files"
    assert {k for k in da if da[k] != dc.get(k)}, "another seed must give other pixels"


def test_cloud_cover_equals_masked_fraction(mixed_mission: Mission) -> None:
    for item in mixed_mission.items:
        key = "SCL" if "SCL" in item.assets else "QA_PIXEL"
        with rasterio.open(item.assets[key].get_absolute_href()) as src:
            q = src.read(1)
        if key == "SCL":
            valid = q != SCL.NO_DATA
            cloud = np.isin(q, [SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY, SCL.THIN_CIRRUS])
        else:
            valid = (q & (1 << QABit.FILL)) == 0
            cloud = (q & (1 << QABit.CLOUD | 1 << QABit.CIRRUS)) > 0
        measured = 100.0 * (cloud & valid).sum() / valid.sum()
        assert item.properties["eo:cloud_cover"] == pytest.approx(measured, abs=1e-3), item.id


def test_items_round_trip_and_agree_with_files(mixed_mission: Mission) -> None:
    for item in mixed_mission.items:
        again = pystac.Item.from_dict(json.loads(json.dumps(item.to_dict())))
        assert again.to_dict() == item.to_dict()
        assert item.properties["proj:code"].startswith("EPSG:326")
        for key, asset in item.assets.items():
            with rasterio.open(asset.get_absolute_href()) as src:
                assert list(src.shape) == asset.extra_fields["proj:shape"], (item.id, key)
                assert list(src.transform)[:6] == pytest.approx(asset.extra_fields["proj:transform"])
                assert f"EPSG:{src.crs.to_epsg()}" == item.properties["proj:code"]
                assert src.dtypes[0] == asset.extra_fields["raster:bands"][0]["data_type"]
                assert src.nodata == asset.extra_fields["raster:bands"][0]["nodata"]


def test_catalog_is_self_contained_with_collections(mixed_mission: Mission) -> None:
    cat = pystac.Catalog.from_file(str(mixed_mission.catalog_path))
    colls = {c.id: c for c in cat.get_collections()}
    assert set(colls) == {"sentinel-2-l2a-sim", "landsat-c2-l2-sim"}
    for coll in colls.values():
        items = list(coll.get_items())
        assert items
        (w, s, e, n) = coll.extent.spatial.bboxes[0]
        for it in items:
            assert w <= it.bbox[0] and it.bbox[2] <= e and s <= it.bbox[1] and it.bbox[3] <= n
            assert not Path(it.assets[next(iter(it.assets))].href).is_absolute()
        assert coll.item_assets
    raw = json.loads((mixed_mission.catalog_path).read_text())
    assert all(not link["href"].startswith("/") for link in raw["links"])


def test_ground_truth_written_beside_the_scenes(mixed_mission: Mission) -> None:
    t = mixed_mission.truth_dir
    events = json.loads((t / "events.geojson").read_text())
    kinds = {f["properties"]["kind"] for f in events["features"]}
    assert kinds == {"deforestation", "burn", "flood"}
    with rasterio.open(t / "landcover.tif") as src:
        lc = src.read(1)
    assert set(np.unique(lc)) >= {0, 1, 2, 3}  # water, forest, cropland, grassland at least
    days = sorted({i.datetime.date() for i in mixed_mission.items})
    files = sorted(p.stem for p in (t / "reflectance").glob("*.tif"))
    assert files == [d.isoformat() for d in days]


def test_existing_mission_is_not_overwritten(mixed_mission: Mission) -> None:
    before = mixed_mission.catalog_path.read_bytes()
    with pytest.raises(SimulatorError, match="already holds"):
        simulate_mission(mixed_mission.config, mixed_mission.root)
    assert mixed_mission.catalog_path.read_bytes() == before
