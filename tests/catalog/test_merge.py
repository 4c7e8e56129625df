"""Writing a catalog: self-contained layout, sorted stac-geoparquet index, idempotent merges, growing extents,
duplicate ids, and writes that either complete or leave the old catalog exactly as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pystac
import pytest

import orbitcube.catalog.merge
from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.index import _cell_keys, sort_order
from orbitcube.catalog.merge import write_catalog
from orbitcube.catalog.query import search
from orbitcube.catalog.simulator import Mission
from orbitcube.catalog.store import INDEX_NAME, open_catalog


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` (hidden temporaries too) with its bytes and modification time."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    } | {str(p.relative_to(root)) + "/": (b"", 0) for p in root.rglob("*") if p.is_dir()}


def _halves(mission: Mission) -> tuple[list[pystac.Item], list[pystac.Item]]:
    items = sorted(mission.items, key=lambda i: (i.datetime, i.id))
    return items[: len(items) // 2], items[len(items) // 2 :]


def _clone_with(item: pystac.Item, **props) -> pystac.Item:
    new = item.clone()
    new.properties.update(props)
    return new


def test_written_catalog_is_self_contained_with_a_sorted_index(
    mixed_mission: Mission, indexed_catalog: Path
) -> None:
    root = indexed_catalog
    src = mixed_mission.catalog_path.parent

    def copied(href: str) -> str:  # the fixture's copy of a scene file (inside the catalog folder)
        return str(root / Path(href).relative_to(src))

    cat = json.loads((root / "catalog.json").read_text())
    children = sorted(ln["href"] for ln in cat["links"] if ln["rel"] == "child")
    assert children == ["./landsat-c2-l2-sim/collection.json", "./sentinel-2-l2a-sim/collection.json"]
    for sim in mixed_mission.items:
        item_file = root / sim.collection_id / sim.id / f"{sim.id}.json"
        doc = json.loads(item_file.read_text())
        for key, a in doc["assets"].items():
            assert not os.path.isabs(a["href"])  # relative, resolving to the scene's file
            assert (item_file.parent / a["href"]).resolve() == Path(
                copied(sim.assets[key].get_absolute_href())
            ).resolve()
    pf = pq.ParquetFile(root / INDEX_NAME)
    assert pf.metadata.num_rows == len(mixed_mission.items)
    sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
    assert len(sizes) > 1 and set(sizes[:-1]) == {sizes[0]} and sizes[-1] <= sizes[0]  # fixture: 4 rows
    t = pf.read(columns=["id", "datetime", "bbox"])
    # sorted by place (lon/lat cell in Z-order), then datetime, then id: rows of one area and time sit together
    assert sort_order(t).to_pylist() == list(range(t.num_rows)), "the index is written in sort_order"
    cells = _cell_keys(t.column("bbox").combine_chunks())
    keys = list(
        zip(cells.tolist(), t.column("datetime").to_pylist(), t.column("id").to_pylist(), strict=True)
    )
    assert keys == sorted(keys)
    assert b"geo" in pf.schema_arrow.metadata  # GeoParquet metadata, readable by other tools
    # what comes back is what went in
    back = {it.id: it for it in search(root, allow=[mixed_mission.root])}
    for sim in mixed_mission.items:
        got = back[sim.id]
        assert got.datetime == sim.datetime  # (the string may gain microseconds)
        drop = {"datetime"}
        assert {k: v for k, v in got.properties.items() if k not in drop} == {
            k: v for k, v in sim.properties.items() if k not in drop
        }
        assert got.bbox == sim.bbox and got.geometry == sim.geometry
        assert {k: a.get_absolute_href() for k, a in got.assets.items()} == {
            k: copied(a.get_absolute_href()) for k, a in sim.assets.items()
        }
        for key, asset in sim.assets.items():
            assert got.assets[key].extra_fields == asset.extra_fields, (sim.id, key)


def test_rewriting_the_same_items_changes_nothing(mixed_mission: Mission, tmp_path: Path) -> None:
    root = tmp_path / "cat"
    write_catalog(mixed_mission.items, root)
    before = _snapshot(root)
    cat = write_catalog(list(reversed(mixed_mission.items)), root)
    assert _snapshot(root) == before, "not a byte (nor a modification time) changes"
    assert len(cat) == len(mixed_mission.items)


def test_adding_items_grows_extents_index_and_links(mixed_mission: Mission, tmp_path: Path) -> None:
    root = tmp_path / "cat"
    first, second = _halves(mixed_mission)
    write_catalog(first, root)
    s2 = "sentinel-2-l2a-sim"
    c1 = pystac.Collection.from_file(str(root / s2 / "collection.json"))
    end1 = c1.extent.temporal.intervals[0][1]
    assert end1 == max(i.datetime for i in first if i.collection_id == s2)
    write_catalog(second, root)
    c2 = pystac.Collection.from_file(str(root / s2 / "collection.json"))
    everything = [i for i in mixed_mission.items if i.collection_id == s2]
    assert c2.extent.temporal.intervals[0] == [
        min(i.datetime for i in everything),
        max(i.datetime for i in everything),
    ]
    assert c2.extent.temporal.intervals[0][1] > end1
    w = min(i.bbox[0] for i in everything), min(i.bbox[1] for i in everything)
    e = max(i.bbox[2] for i in everything), max(i.bbox[3] for i in everything)
    assert np.allclose(c2.extent.spatial.bboxes[0], [*w, *e])
    links = sorted(ln.href for ln in c2.links if ln.rel == "item")
    assert links == sorted(f"./{i.id}/{i.id}.json" for i in everything)
    assert pq.read_metadata(root / INDEX_NAME).num_rows == len(mixed_mission.items)
    assert sorted(i.id for i in search(root, allow=[mixed_mission.root])) == sorted(
        i.id for i in mixed_mission.items
    )


def test_duplicate_id_with_other_content_is_refused_unless_overwrite(
    mixed_mission: Mission, tmp_path: Path
) -> None:
    root = tmp_path / "cat"
    write_catalog(mixed_mission.items, root)
    before = _snapshot(root)
    target = mixed_mission.items[3]
    changed = _clone_with(target, **{"eo:cloud_cover": 99.5})
    with pytest.raises(CatalogError, match=rf"item '{target.id}' already exists .*overwrite=True"):
        write_catalog([changed], root)
    assert _snapshot(root) == before
    with pytest.raises(CatalogError, match=rf"'{target.id}' is given twice with different content"):
        write_catalog([target, changed], tmp_path / "other")
    assert not (tmp_path / "other").exists()
    write_catalog([changed], root, overwrite=True)
    (got,) = search(root, ids=[target.id], allow=[mixed_mission.root])
    assert got.properties["eo:cloud_cover"] == 99.5
    doc = json.loads((root / target.collection_id / target.id / f"{target.id}.json").read_text())
    assert doc["properties"]["eo:cloud_cover"] == 99.5
    assert len(open_catalog(root)) == len(mixed_mission.items)


def test_a_failed_write_leaves_the_old_catalog_as_it_was(mixed_mission: Mission, tmp_path: Path) -> None:
    root = tmp_path / "cat"
    first, second = _halves(mixed_mission)
    write_catalog(first, root)
    before = _snapshot(root)
    # a file where the folder of one new item must go: the write fails after other new items were staged
    new = sorted(second, key=lambda i: i.id)
    blocked = new[-1]
    (root / blocked.collection_id).mkdir(exist_ok=True)
    (root / blocked.collection_id / blocked.id).write_text("in the way")
    before[f"{blocked.collection_id}/{blocked.id}"] = (
        b"in the way",
        (root / blocked.collection_id / blocked.id).stat().st_mtime_ns,
    )
    before.setdefault(f"{blocked.collection_id}/", (b"", 0))
    with pytest.raises(CatalogError, match=rf"cannot write .*{blocked.id}.*unchanged"):
        write_catalog(second, root)
    assert _snapshot(root) == before, "no new item files, no temporaries, no new folders, old index"
    assert sorted(i.id for i in search(root, allow=[mixed_mission.root])) == sorted(i.id for i in first)
    (root / blocked.collection_id / blocked.id).unlink()
    write_catalog(second, root)
    assert len(search(root, allow=[mixed_mission.root])) == len(mixed_mission.items)


def test_an_interrupted_write_leaves_the_old_catalog_as_it_was(
    mixed_mission: Mission, tmp_path: Path, monkeypatch
) -> None:
    root = tmp_path / "cat"
    first, second = _halves(mixed_mission)
    write_catalog(first, root)
    before = _snapshot(root)

    def interrupted(table, path) -> None:
        Path(path).write_bytes(b"PAR1 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(orbitcube.catalog.merge, "write_index", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_catalog(second, root)
    assert _snapshot(root) == before


def _no_collection(item: pystac.Item) -> pystac.Item:
    new = item.clone()
    new.collection_id = None
    return new


def test_items_without_a_collection_are_refused(mixed_mission: Mission, tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="has no collection"):
        write_catalog([_no_collection(mixed_mission.items[0])], tmp_path / "x")
    assert not (tmp_path / "x").exists()
