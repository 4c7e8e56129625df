"""Ingest raster files into a catalog: real Landsat rows, simulator scenes, bad input, idempotency."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pystac
import pytest
import rasterio

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.items import ingest
from orbitcube.catalog.query import search
from orbitcube.catalog.simulator import Mission


def test_real_landsat_rows_become_two_items(landsat_real_dir: Path, tmp_path: Path) -> None:
    res = ingest(landsat_real_dir, tmp_path / "cat")
    assert sorted(res.added) == [
        "LC08_L1TP_224077_20200518_20200518_01_RT",
        "LC08_L1TP_224078_20200518_20200518_01_RT",
    ]
    assert not res.skipped
    items = search(tmp_path / "cat", allow=[landsat_real_dir])
    for it in items:
        assert it.datetime == dt.datetime(2020, 5, 18, tzinfo=dt.UTC)
        assert it.properties["platform"] == "landsat-8" and it.properties["proj:code"] == "EPSG:32621"
        assert sorted(it.assets) == ["B2", "B3", "B4"]
        commons = {a.extra_fields["eo:bands"][0]["common_name"] for a in it.assets.values()}
        assert commons == {"blue", "green", "red"}
        with rasterio.open(it.assets["B4"].get_absolute_href()) as src:
            assert it.assets["B4"].extra_fields["proj:shape"] == [src.height, src.width]
            assert it.assets["B4"].extra_fields["proj:transform"] == list(src.transform)[:6]
        w, s, e, n = it.bbox
        assert -57.0 < w < e < -54.0 and -26.0 < s < n < -24.5  # southern Brazil / Paraguay border
    # the catalog is self-contained: relative hrefs, and a stac-geoparquet index in sync
    raw = (tmp_path / "cat" / items[0].collection_id / items[0].id / f"{items[0].id}.json").read_text()
    hrefs = [a["href"] for a in __import__("json").loads(raw)["assets"].values()]
    assert all(h.startswith("../") for h in hrefs)
    assert pq.read_table(tmp_path / "cat" / "items.parquet").num_rows == 2


def test_reingest_is_idempotent_and_new_files_extend(landsat_real_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for f in landsat_real_dir.glob("*224077*"):
        shutil.copy(f, src / f.name)
    ingest(src, tmp_path / "cat")
    before = (tmp_path / "cat" / "catalog.json").read_text()
    again = ingest(src, tmp_path / "cat")
    assert again.added == [] and len(again.unchanged) == 1
    assert (tmp_path / "cat" / "catalog.json").read_text() == before
    for f in landsat_real_dir.glob("*224078*"):
        shutil.copy(f, src / f.name)
    more = ingest(src, tmp_path / "cat")
    assert len(more.added) == 1 and len(search(tmp_path / "cat", allow=[src])) == 2
    coll = pystac.Collection.from_file(str(tmp_path / "cat" / "landsat-c1-l1" / "collection.json"))
    assert coll.extent.spatial.bboxes[0][1] < -25.3  # extent grew south with row 078
    assert pq.read_table(tmp_path / "cat" / "items.parquet").num_rows == 2


def test_bad_files_are_reported_and_nothing_half_written(landsat_real_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for f in landsat_real_dir.glob("*224077*"):
        shutil.copy(f, src / f.name)
    (src / "LC08_L1TP_224099_20200518_20200518_01_RT_B4.TIF").write_bytes(b"not a tiff")
    with rasterio.open(src / "LC08_L1TP_224077_20200518_20200518_01_RT_B2.TIF") as s:
        profile = {**s.profile, "crs": None}
        data = s.read(1, window=((0, 64), (0, 64)))
    profile.update(width=64, height=64)
    with rasterio.open(src / "LC08_L1TP_224098_20200518_20200518_01_RT_B4.TIF", "w", **profile) as d:
        d.write(data, 1)
    (src / "notes_B4.tif").write_bytes(b"x")
    res = ingest(src, tmp_path / "cat")
    assert res.added == ["LC08_L1TP_224077_20200518_20200518_01_RT"]
    reasons = dict(res.skipped)
    assert "not a readable raster" in reasons[str(src / "LC08_L1TP_224099_20200518_20200518_01_RT_B4.TIF")]
    assert "no CRS" in reasons[str(src / "LC08_L1TP_224098_20200518_20200518_01_RT_B4.TIF")]
    assert "no known pattern" in reasons[str(src / "notes_B4.tif")]
    with pytest.raises(CatalogError, match="does not exist"):
        ingest(tmp_path / "nope", tmp_path / "cat")


def test_duplicate_id_with_other_content_is_refused_and_catalog_kept(
    landsat_real_dir: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    name = "LC08_L1TP_224077_20200518_20200518_01_RT_B4.TIF"
    shutil.copy(landsat_real_dir / name, a / name)
    ingest(a, tmp_path / "cat")
    before = sorted(p.read_bytes() for p in (tmp_path / "cat").rglob("*.json"))
    with rasterio.open(landsat_real_dir / name) as s:
        profile, data = s.profile, s.read(1)[:100, :100]
    profile.update(width=100, height=100)
    with rasterio.open(b / name, "w", **profile) as d:
        d.write(data, 1)
    with pytest.raises(CatalogError, match="already exists .* different content"):
        ingest(b, tmp_path / "cat")
    assert sorted(p.read_bytes() for p in (tmp_path / "cat").rglob("*.json")) == before


def test_simulator_scenes_ingest_to_equivalent_items(mixed_mission: Mission, tmp_path: Path) -> None:
    res = ingest(mixed_mission.root / "catalog", tmp_path / "cat")
    assert not res.skipped
    ours = {it.id: it for it in search(tmp_path / "cat", allow=[mixed_mission.root])}
    assert set(ours) == {it.id for it in mixed_mission.items}
    for sim in mixed_mission.items:
        it = ours[sim.id]
        assert it.datetime.date() == sim.datetime.date()
        assert set(it.assets) == set(sim.assets)
        for key, asset in sim.assets.items():
            got = it.assets[key].extra_fields
            assert got["proj:shape"] == asset.extra_fields["proj:shape"]
            assert got["proj:transform"] == asset.extra_fields["proj:transform"]
            want_rb, got_rb = asset.extra_fields["raster:bands"][0], got["raster:bands"][0]
            assert (
                got_rb.get("scale", 1.0) == want_rb.get("scale", 1.0)
                and got_rb["nodata"] == want_rb["nodata"]
            )
        assert np.allclose(it.bbox, sim.bbox, atol=0.01)  # header bounds vs valid-data footprint


def test_cli_ingest_and_search(landsat_real_dir: Path, tmp_path: Path, capsys) -> None:
    from orbitcube.pipeline.cli import main

    assert main(["-q", "catalog", "ingest", str(landsat_real_dir), "--catalog", str(tmp_path / "cat")]) == 0
    assert "2 item(s) added" in capsys.readouterr().out
    assert (
        main(
            [
                "-q",
                "catalog",
                "search",
                str(tmp_path / "cat"),
                "--bbox=-54.4,-25.59,-54.3,-25.5",
                "--allow",
                str(landsat_real_dir),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "LC08_L1TP_224078" in out
    assert (
        main(["-q", "catalog", "ingest", str(tmp_path / "missing"), "--catalog", str(tmp_path / "c2")]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
