"""Opening a catalog on disk: searches that decode only the matching rows, catalogs without an index walked and
reindexed, clear errors for unreadable ones, catalog info, relative paths. (Writing one: test_merge.py.)"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.merge import write_catalog
from orbitcube.catalog.query import search
from orbitcube.catalog.simulator import Mission
from orbitcube.catalog.store import INDEX_NAME, catalog_info, open_catalog, reindex


def test_search_decodes_only_the_matching_rows(indexed_catalog: Path) -> None:
    cat = open_catalog(indexed_catalog)
    found = cat.search(max_cloud_cover=30, datetime="2023-06-10/2023-06-30")
    assert found and cat._table is None, "a search must not decode the whole index (assets of every item)"
    assert [i.id for i in found] == [
        i.id for i in search(cat.items, max_cloud_cover=30, datetime="2023-06-10/2023-06-30")
    ]


def test_catalog_without_index_is_walked_and_reindexed(mixed_mission: Mission, tmp_path: Path) -> None:
    root = tmp_path / "cat"
    write_catalog(mixed_mission.items, root)
    kw = {"max_cloud_cover": 40, "datetime": "2023-06-05/..", "collections": ["sentinel-2-l2a-sim"]}
    with_index = [i.to_dict() for i in search(root, **kw, allow=[mixed_mission.root])]
    (root / INDEX_NAME).unlink()
    walked = [i.to_dict() for i in search(root, **kw, allow=[mixed_mission.root])]
    assert walked == with_index and walked
    reindex(root)
    assert (root / INDEX_NAME).exists()
    assert [i.to_dict() for i in search(root, **kw, allow=[mixed_mission.root])] == with_index


def test_unreadable_catalogs_are_clear_errors(mixed_mission: Mission, tmp_path: Path) -> None:
    root = tmp_path / "cat"
    write_catalog(mixed_mission.items[:3], root)
    index = root / INDEX_NAME
    index.write_bytes(index.read_bytes()[:100])
    with pytest.raises(CatalogError, match=r"cannot read index .*reindex"):
        open_catalog(root)
    with pytest.raises(CatalogError, match="no STAC catalog at .*ingest"):
        open_catalog(tmp_path / "nowhere")


def test_catalog_info_counts_and_extents(mixed_mission: Mission, indexed_catalog: Path) -> None:
    info = catalog_info(indexed_catalog)
    assert info["items"] == len(mixed_mission.items) and info["index_bytes"] > 0
    for cid, c in info["collections"].items():
        mine = [i for i in mixed_mission.items if i.collection_id == cid]
        assert c["items"] == len(mine)
        assert dt.datetime.fromisoformat(c["interval"][0]) == min(i.datetime for i in mine)
        assert np.isclose(c["bbox"][0], min(i.bbox[0] for i in mine))


@pytest.mark.parametrize("indexed", [False, True])
def test_catalog_opened_by_a_relative_path_resolves_to_the_files(
    mixed_mission: Mission, indexed_catalog: Path, indexed: bool, monkeypatch
) -> None:
    """`orbitcube demo --out demo` opens its catalog by a relative path: every asset href must come back absolute
    and point at the scene's file, with and without an items.parquet index."""
    root = indexed_catalog if indexed else mixed_mission.catalog_path.parent
    assert (root / "items.parquet").exists() == indexed
    monkeypatch.chdir(root.parent)
    items = open_catalog(root.name).search()
    assert len(items) == len(mixed_mission.items)
    for it in items:
        for a in it.assets.values():
            href = a.get_absolute_href()
            assert os.path.isabs(href) and os.path.exists(href), href
