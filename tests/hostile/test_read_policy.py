"""Hostile catalogs must not make orbitcube read where the user did not point (orbitcube.catalog.policy).

Each test plants a canary (a local file, or the cloud metadata address) behind a link or an asset href and proves
that it is never opened: an audit hook records every ``open`` and ``socket.connect`` of this process, and a
sentinel HTTP server counts the requests that reach it.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.query import search
from orbitcube.catalog.simulator import Mission, MissionConfig, simulate_mission
from orbitcube.catalog.store import open_catalog, reindex
from orbitcube.catalog.validate import validate_catalog
from tests.catalog.stac_server import serve, static_server
from tests.hostile.conftest import assert_clean_error, run_cli

_SEEN: list[tuple[str, str]] = []
_HOOKED = False


def _hook(event: str, args: tuple) -> None:
    if event == "open" and args and isinstance(args[0], str | bytes | Path):
        _SEEN.append(("open", str(args[0])))
    elif event == "socket.connect" and len(args) > 1:
        _SEEN.append(("connect", str(args[1])))


@contextmanager
def watched() -> Iterator[list[tuple[str, str]]]:
    """Every file opened and socket connected by this process while the block runs (audit hook)."""
    global _HOOKED
    if not _HOOKED:  # audit hooks cannot be removed: one for the whole session, recording only inside blocks
        sys.addaudithook(_hook)
        _HOOKED = True
    _SEEN.clear()
    seen: list[tuple[str, str]] = []
    try:
        yield seen
    finally:
        seen.extend(_SEEN)
        _SEEN.clear()


@pytest.fixture(scope="module")
def mission(tmp_path_factory: pytest.TempPathFactory) -> Mission:
    """A tiny Sentinel-2 mission (64 px tiles, ten days)."""
    cfg = MissionConfig(seed=3, tile_size=64, start=dt.date(2023, 5, 1), end=dt.date(2023, 5, 10))
    return simulate_mission(cfg, tmp_path_factory.mktemp("policy-mission"))


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A file outside every catalog that nothing may open (a GeoTIFF-looking name)."""
    p = tmp_path / "private" / "canary.tif"
    p.parent.mkdir()
    p.write_bytes(b"II*\x00 canary: must never be read")
    return p


def _copy_catalog(mission: Mission, dest: Path) -> Path:
    shutil.copytree(mission.catalog_path.parent, dest)
    return dest


def _item_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*/*.json"))


def _edit(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_child_link_out_of_the_folder_is_refused_and_never_read(mission, tmp_path, canary) -> None:
    root = _copy_catalog(mission, tmp_path / "cat")
    outside = canary.parent / "collection.json"
    outside.write_text(json.dumps({"type": "Collection", "id": "evil", "links": []}))
    rel = Path("..") / ".." / outside.relative_to(tmp_path)
    _edit(root / "catalog.json", lambda d: d["links"].append({"rel": "child", "href": str(rel)}))
    with (
        watched() as seen,
        pytest.raises(
            CatalogError, match=r"catalog link: .*collection.json is outside the catalog folder.*--allow"
        ),
    ):
        search(root)
    assert not [p for k, p in seen if k == "open" and Path(p).parent == canary.parent]
    for href in ("../../../../../../etc/passwd", "file:///etc/hostname"):
        _edit(
            root / "catalog.json", lambda d, h=href: d["links"].__setitem__(-1, {"rel": "child", "href": h})
        )
        with watched() as seen, pytest.raises(CatalogError, match="outside the catalog folder"):
            open_catalog(root)
        assert not [p for k, p in seen if k == "open" and p.startswith("/etc/")]


def test_item_linked_from_outside_the_folder_is_refused(mission, tmp_path, canary) -> None:
    root = _copy_catalog(mission, tmp_path / "cat")
    stray = canary.parent / "stray.json"
    shutil.copy(_item_files(root)[0], stray)
    coll = next(root.glob("*/collection.json"))
    _edit(coll, lambda d: d["links"].append({"rel": "item", "href": str(stray)}))
    with watched() as seen, pytest.raises(CatalogError, match=r"catalog link: .*stray\.json is outside"):
        reindex(root)
    assert not [p for k, p in seen if k == "open" and p == str(stray)]
    problems = [str(p) for p in validate_catalog(root)]
    assert any("item link" in p and "stray.json" in p and "outside the catalog folder" in p for p in problems)


def test_asset_hrefs_out_of_the_folder_are_refused_by_search_run_and_validate(
    mission, tmp_path, canary
) -> None:
    root = _copy_catalog(mission, tmp_path / "cat")
    victim = _item_files(root)[0]
    _edit(victim, lambda d: d["assets"]["B04"].update(href=canary.as_uri()))
    reindex_err = None
    try:
        reindex(root)  # links are fine: the index is written; the href is refused when searched
    except CatalogError as exc:  # pragma: no cover (reported below)
        reindex_err = exc
    assert reindex_err is None
    with watched() as seen, pytest.raises(CatalogError) as err:
        search(root)
    msg = str(err.value)
    assert victim.stem in msg and "'B04'" in msg and str(canary) in msg and "--allow" in msg
    assert not [p for k, p in seen if k == "open" and p == str(canary)]
    # the same catalog searched with an allow-list naming the folder: the user decided to trust it
    assert len(search(root, allow=[str(canary.parent)])) == len(mission.items)
    # the catalog's rows handed to load_cube as a table (index_rows) are checked as a search checks them
    from orbitcube.catalog.store import open_catalog
    from orbitcube.pipeline.scenes import index_rows

    cat = open_catalog(root)
    with pytest.raises(CatalogError) as err:
        index_rows(cat, np.arange(len(cat)))
    assert "'B04'" in str(err.value) and str(canary) in str(err.value)
    # validate reports it, as a problem (exit 1) naming the item and field
    res = run_cli("catalog", "validate", str(root))
    assert res.code == 1
    assert any(
        victim.stem in ln and "assets.B04.href" in ln and "outside" in ln for ln in res.out.splitlines()
    )
    assert run_cli("catalog", "validate", str(root), "--allow", str(canary.parent)).code == 0
    # a run refuses before planning a single read: one clean error line
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(str(root), tmp_path / "out.zarr")))
    assert_clean_error(run_cli("run", str(recipe), "--dry-run"), victim.stem, "B04", "--allow")


def test_symlinked_json_out_of_the_folder_is_not_read_by_validate(mission, tmp_path, canary) -> None:
    root = _copy_catalog(mission, tmp_path / "cat")
    (root / "notes.json").symlink_to(canary)
    with watched() as seen:
        problems = [str(p) for p in validate_catalog(root)]
    assert any("notes.json" in p and "not read" in p for p in problems)
    assert not [p for k, p in seen if k == "open" and p in (str(canary), str(root / "notes.json"))]


def _recipe(source: str, out: Path, **catalog) -> dict:
    return {
        "catalog": {"source": source, **catalog},
        "search": {"datetime": "2023-05-01/2023-05-10"},
        "grid": {"crs": "EPSG:32632", "resolution": 40, "tile_shape": [32, 32]},
        "load": {"bands": ["red", "nir"], "mask": None},
        "output": {"path": str(out)},
        "cluster": {"n_workers": 1},
    }


def _remote_copy(mission: Mission, dest: Path, asset_base: str | None) -> Path:
    """The mission's catalog with every asset href absolute: under ``asset_base`` (a URL) or a canary file."""
    root = _copy_catalog(mission, dest)
    for f in _item_files(root):

        def point(d: dict, f: Path = f) -> None:
            for a in d["assets"].values():
                rel = (f.parent / a["href"]).resolve().relative_to(root.resolve())
                a["href"] = f"{asset_base}/{rel.as_posix()}" if asset_base else "file:///etc/hostname"

        _edit(f, point)
    return root


class Sentinel:
    """An HTTP server that answers 404 to everything and counts the requests."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    @contextmanager
    def running(self) -> Iterator[str]:
        from http.server import BaseHTTPRequestHandler

        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                hits.append(self.path)
                self.send_error(404)

            do_HEAD = do_GET  # noqa: N815

            def log_message(self, *args) -> None:
                pass

        with serve(Handler) as url:
            yield url


def test_remote_catalog_with_file_hrefs_never_reads_local_files(mission, tmp_path, canary) -> None:
    root = _copy_catalog(mission, tmp_path / "remote")
    for f in _item_files(root):
        _edit(f, lambda d: [a.update(href=canary.as_uri()) for a in d["assets"].values()])
    with static_server(root) as base:
        with watched() as seen, pytest.raises(CatalogError, match=r"a local file, and the catalog is remote"):
            search(f"{base}/catalog.json")
        assert not [p for k, p in seen if k == "open" and p == str(canary)]
        # the same through a recipe run (the workers never get a graph): one clean error line
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(yaml.safe_dump(_recipe(f"{base}/catalog.json", tmp_path / "o.zarr", kind="static")))
        assert_clean_error(run_cli("run", str(recipe)), "canary.tif", "--allow")
        assert not (tmp_path / "o.zarr").exists()


def test_metadata_address_is_refused_without_a_connection(mission, tmp_path) -> None:
    root = _copy_catalog(mission, tmp_path / "cat")
    first = _item_files(root)[0]
    _edit(
        first, lambda d: d["assets"]["B04"].update(href="http://169.254.169.254/latest/meta-data/iam/x.tif")
    )
    _edit(
        root / "catalog.json",
        lambda d: d["links"].append({"rel": "child", "href": "http://[fe80::1]/c.json"}),
    )
    with watched() as seen, pytest.raises(CatalogError, match=r"fe80::1.*loopback, link-local"):
        open_catalog(root)
    assert not [a for k, a in seen if k == "connect"]
    _edit(root / "catalog.json", lambda d: d["links"].pop())
    # an allowed scheme does not open the metadata address: it must be named itself
    with watched() as seen, pytest.raises(CatalogError, match=r"169\.254\.169\.254.*link-local"):
        search(root, allow=["http", "https"])
    assert not [a for k, a in seen if k == "connect"]


def test_loopback_catalog_references_its_own_origin_and_an_allowed_second_one(mission, tmp_path) -> None:
    sentinel = Sentinel()
    with sentinel.running() as other:
        root = _remote_copy(mission, tmp_path / "remote", other)
        with static_server(root) as base:
            url = f"{base}/catalog.json"
            with pytest.raises(
                CatalogError, match=r"127\.0\.0\.1.*loopback.*--allow http://127\.0\.0\.1:\d+"
            ):
                search(url)
            # allowing every http host does not reach loopback: only the named origin does
            with pytest.raises(CatalogError, match="loopback"):
                search(url, allow=["http"])
            found = search(url, allow=[other])
            assert len(found) == len(mission.items)
            assert all(a.href.startswith(other) for it in found for a in it.assets.values())
            assert sentinel.hits == []  # searching never fetched an asset
        # the catalog's own origin is always fine, loopback included
        own = _remote_copy(mission, tmp_path / "own", None)
        with static_server(own) as base:
            for f in _item_files(own):
                _edit(f, lambda d, b=base: [a.update(href=f"{b}/x.tif") for a in d["assets"].values()])
            assert len(search(f"{base}/catalog.json")) == len(mission.items)


def test_recipe_allow_list_and_cli_allow(mission, tmp_path) -> None:
    from orbitcube.pipeline.plan import catalog_policy
    from orbitcube.pipeline.recipe import load_recipe

    (tmp_path / "scenes").mkdir()
    doc = _recipe(str(mission.catalog_path), tmp_path / "o.zarr", allow=["scenes", "s3://bucket/cogs"])
    doc["storage"] = {"az": {"anon": True}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(doc))
    policy = catalog_policy(load_recipe(path))
    from orbitcube.catalog.policy import violation

    assert violation(str(tmp_path / "scenes" / "a.tif"), policy) is None  # relative to the recipe's folder
    assert violation("s3://bucket/cogs/a.tif", policy) is None
    assert violation("s3://bucket/other/a.tif", policy) is not None
    assert violation("az://container/a.tif", policy) is None  # a configured object store
    assert violation("https://example.org/a.tif", policy) is not None
    assert (
        load_recipe(path).fingerprint() == load_recipe(path.read_text().replace("scenes", "x")).fingerprint()
    )
