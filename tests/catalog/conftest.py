"""Fixtures of the catalog tests: the mixed mission written through orbitcube.catalog.merge (with its parquet index)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import orbitcube.catalog.index
from orbitcube.catalog.merge import write_catalog
from orbitcube.catalog.simulator import Mission

#: row-group size of the indexed fixture: small, so that every search reads across several row groups
SMALL_ROW_GROUPS = 4


@pytest.fixture(scope="session")
def indexed_catalog(mixed_mission: Mission, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mixed mission's items written by ``write_catalog`` (items.parquet in row groups of 4 rows).

    The simulator writes its own catalog without an index, so searching ``mixed_mission.catalog_path`` walks
    the JSON files; this one is searched through the parquet index. Its scene files are copies inside its folder
    (a catalog may only reference its own tree: orbitcube.catalog.policy). Treat it as read-only.
    """
    src = mixed_mission.catalog_path.parent
    root = tmp_path_factory.mktemp("indexed") / "cat"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("*.json"))
    items = []
    for it in mixed_mission.items:
        it = it.clone()
        for a in it.assets.values():
            a.href = str(root / Path(a.get_absolute_href()).relative_to(src))
        items.append(it)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(orbitcube.catalog.index, "ROW_GROUP_ROWS", SMALL_ROW_GROUPS)
        write_catalog(items, root)
    return root
