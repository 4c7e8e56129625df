"""Offline validation: simulator catalogs are valid, broken items are reported by id and field, no network."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from orbitcube.catalog.simulator import Mission
from orbitcube.catalog.validate import validate_catalog, validate_items


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test: validation must never fetch a schema."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_simulated_catalog_is_valid_offline(mixed_mission: Mission, no_network) -> None:
    problems = validate_catalog(mixed_mission.catalog_path)
    assert [p for p in problems if p.severity == "error"] == []


def test_broken_items_are_reported_with_id_and_field(mixed_mission: Mission, no_network) -> None:
    s2 = next(i for i in mixed_mission.items if i.collection_id.startswith("sentinel")).to_dict()
    s2["properties"]["eo:cloud_cover"] = 140
    s2["assets"]["B04"]["raster:bands"][0]["data_type"] = "uint17"
    s2["assets"]["B04"]["proj:shape"] = [10]
    ls = next(i for i in mixed_mission.items if i.collection_id.startswith("landsat")).to_dict()
    del ls["properties"]["datetime"]
    ls["stac_extensions"] = [e for e in ls["stac_extensions"] if "/view/" not in e]
    found = {(p.id, p.field) for p in validate_items([s2, ls]) if p.severity == "error"}
    assert (s2["id"], "properties.eo:cloud_cover") in found
    assert (s2["id"], "assets.B04.raster:bands[0].data_type") in found
    assert (s2["id"], "assets.B04.proj:shape") in found
    assert (ls["id"], "properties") in found  # datetime (or start/end) missing
    assert (ls["id"], "properties.view:sun_elevation") in found  # view fields without the view extension


def test_cli_validate_exit_codes(mixed_mission: Mission, tmp_path) -> None:
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "orbitcube.pipeline.cli",
            "catalog",
            "validate",
            str(mixed_mission.catalog_path),
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 error(s)" in ok.stderr
    # a copy of the catalog with one broken item
    import shutil

    bad = tmp_path / "cat"
    shutil.copytree(mixed_mission.catalog_path.parent, bad, ignore=shutil.ignore_patterns("*.tif"))
    item_file = next(p for p in bad.rglob("*.json") if json.loads(p.read_text()).get("type") == "Feature")
    doc = json.loads(item_file.read_text())
    doc["properties"]["eo:cloud_cover"] = -5
    item_file.write_text(json.dumps(doc))
    out = subprocess.run(
        [sys.executable, "-m", "orbitcube.pipeline.cli", "catalog", "validate", str(bad)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert f"{doc['id']}: properties.eo:cloud_cover" in out.stdout
    assert "Traceback" not in out.stderr
