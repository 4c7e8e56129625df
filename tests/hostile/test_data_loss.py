"""Data loss (issue 16): orbitcube deletes or overwrites only what it created.

`run --no-resume` on a folder of user files, on the recipe's own folder (`path: .`) or on a parent of the recipe;
`export --to-cog --overwrite` onto a Zarr store, onto the very store being exported, onto a folder or a non-TIFF
file; a second run on the same store through a symbolic link. Each case: a decoy folder's checksums are the same
before and after, and the user gets one clear error line.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
import yaml
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from orbitcube.catalog.simulator import Mission, MissionConfig, simulate_mission
from orbitcube.pipeline.errors import SinkError
from orbitcube.pipeline.export import export_cog
from orbitcube.pipeline.run import run_recipe
from orbitcube.pipeline.safety import STORE_MARKER, is_orbitcube_store
from orbitcube.pipeline.sink import create_store, mark_tile_done, remove_store, store_lock, write_tile


def _hostile_helpers():
    """The shared helpers of tests/hostile/conftest.py, loaded by file: ``from conftest import`` picks whichever
    conftest module pytest imported first when several test folders run together."""
    spec = importlib.util.spec_from_file_location("hostile_helpers", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_h = _hostile_helpers()
assert_clean_error, run_cli, tree_digest = _h.assert_clean_error, _h.run_cli, _h.tree_digest


# ----- data ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mission(tmp_path_factory: pytest.TempPathFactory) -> Mission:
    """A tiny Sentinel-2 mission (128 px tiles, three weeks): recipes plan against its catalog."""
    cfg = MissionConfig(seed=3, tile_size=128, start=dt.date(2023, 5, 1), end=dt.date(2023, 5, 21))
    return simulate_mission(cfg, tmp_path_factory.mktemp("dataloss-mission"))


def write_recipe(mission: Mission, where: Path, output: str) -> Path:
    """A small recipe file at ``where`` (red and nir on 32 px tiles at 40 m) writing to ``output``."""
    doc = {
        "name": "dataloss",
        "catalog": {"source": str(mission.catalog_path)},
        "search": {"aoi": list(mission.config.aoi_bbox), "collections": ["sentinel-2-l2a-sim"]},
        "grid": {"crs": f"EPSG:{mission.config.truth_epsg}", "resolution": 40, "tile_shape": [32, 32]},
        "load": {"bands": ["red", "nir"]},
        "output": {"path": output},
        "cluster": {"n_workers": 1, "threads_per_worker": 1},
    }
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(yaml.safe_dump(doc))
    return where


def small_store(path: Path) -> Path:
    """An orbitcube run store of one 16 x 16 px variable over two dates, both tiles written and recorded."""
    gbox = GeoBox.from_bbox((732000, 5040000, 732640, 5040320), "EPSG:32632", resolution=20)
    t = np.array(["2023-06-01", "2023-06-06"], dtype="datetime64[ns]")
    data = np.random.default_rng(0).uniform(-1, 1, (2, *gbox.shape.yx)).astype("f4")
    ds = xr.Dataset(
        {"ndvi": (("time", "y", "x"), data)}, coords={"time": t, **xr_coords(gbox, dims=("y", "x"))}
    )
    create_store(ds, path, tile_shape=(16, 16), provenance={"name": "t"}, fingerprint="f1")
    for j in range(2):
        write_tile(ds.isel(y=slice(0, 16), x=slice(16 * j, 16 * (j + 1))), path, (0, j)).compute()
        mark_tile_done(path, (0, j))
    return path


# ----- run --no-resume ----------------------------------------------------------------------------------------------
def test_no_resume_never_deletes_a_folder_of_user_files(mission, decoy: Path, tmp_path: Path) -> None:
    recipe = write_recipe(mission, tmp_path / "recipe.yaml", str(decoy))
    before = tree_digest(decoy)
    res = run_cli("-q", "run", str(recipe), "--no-resume", cwd=tmp_path)
    assert_clean_error(res, str(decoy), "refusing to delete", "not a store written by orbitcube")
    assert tree_digest(decoy) == before
    # nothing created beside it either (the refusal comes before the lock and the report folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decoy", "recipe.yaml"]


def test_no_resume_never_deletes_the_recipes_own_folder(mission, decoy: Path, tmp_path: Path) -> None:
    recipe = write_recipe(mission, decoy / "recipe.yaml", ".")
    before = tree_digest(decoy)
    res = run_cli("-q", "run", str(recipe), "--no-resume", cwd=tmp_path)
    assert_clean_error(res, str(decoy), "refusing to delete", "recipe")
    assert tree_digest(decoy) == before


def test_no_resume_never_deletes_a_parent_of_the_recipe_or_of_the_working_directory(
    mission, decoy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # even a folder that looks like an orbitcube store is kept when it holds the recipe
    (decoy / "zarr.json").write_text(
        json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {STORE_MARKER: {}}})
    )
    recipe = write_recipe(mission, decoy / "nested" / "recipe.yaml", "..")
    before = tree_digest(decoy)
    with pytest.raises(SinkError, match=r"refusing to delete .*: it contains .*recipe"):
        run_recipe(recipe, progress=False, resume=False)
    other = write_recipe(mission, decoy.parent / "elsewhere" / "recipe.yaml", str(decoy))
    monkeypatch.chdir(decoy / "nested")
    with pytest.raises(SinkError, match="refusing to delete.*working directory"):
        run_recipe(other, progress=False, resume=False)
    assert tree_digest(decoy) == before


def test_only_orbitcube_stores_are_removed_including_those_of_older_versions(
    tmp_path: Path, decoy: Path
) -> None:
    new = small_store(tmp_path / "new.zarr")
    assert is_orbitcube_store(new)
    remove_store(new)
    assert not new.exists()
    # a store written before the orbitcube:store marker: recognised by its provenance attributes
    old = small_store(tmp_path / "old.zarr")
    meta = json.loads((old / "zarr.json").read_text())
    del meta["attributes"][STORE_MARKER]
    (old / "zarr.json").write_text(json.dumps(meta))
    assert is_orbitcube_store(old)
    remove_store(old)
    assert not old.exists()
    # any other Zarr group, or an orbitcube store with a user's file inside, is kept
    foreign = small_store(tmp_path / "foreign.zarr")
    (foreign / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    mine = small_store(tmp_path / "mine.zarr")
    shutil.copy(decoy / "notes.txt", mine / "notes.txt")
    for path in (foreign, mine, decoy):
        before = tree_digest(path)
        with pytest.raises(SinkError, match=f"refusing to delete {path}"):
            remove_store(path)
        assert tree_digest(path) == before


def test_run_help_says_what_no_resume_deletes() -> None:
    res = run_cli("run", "--help")
    text = " ".join(res.out.split())
    assert "refuses to continue" not in text and "only a store orbitcube created is ever deleted" in text


# ----- export --to-cog --overwrite ----------------------------------------------------------------------------------
@pytest.fixture
def source(tmp_path: Path) -> Path:
    return small_store(tmp_path / "cube.zarr")


def test_export_overwrite_never_replaces_a_zarr_store_the_source_or_a_folder(
    source: Path, decoy: Path, tmp_path: Path
) -> None:
    other = small_store(tmp_path / "other.zarr")
    note = decoy / "notes.txt"
    cases = [
        (other, "is a folder"),
        (source, "is the source store"),  # arguments swapped
        (source / "ndvi", "is the source store"),
        (decoy, "is a folder"),
        (note, "not a GeoTIFF"),
    ]
    for n, (target, why) in enumerate(cases):
        before = {p: tree_digest(p) for p in (source, other, decoy)}
        if n < 2:  # as a user types it (one line, no traceback); the rest through the library, faster
            args = ("export", str(source), "--to-cog", str(target), "--variable", "ndvi", "--time", "0")
            assert_clean_error(run_cli(*args, "--overwrite"), str(target), why)
        else:
            with pytest.raises(SinkError, match=why):
                export_cog(source, "ndvi", 0, target, overwrite=True)
        assert {p: tree_digest(p) for p in (source, other, decoy)} == before, target


def test_export_overwrite_replaces_a_geotiff_and_a_failed_export_keeps_it(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "ndvi.tif"
    export_cog(source, "ndvi", 0, target)
    export_cog(source, "ndvi", 1, target, overwrite=True)
    with rasterio.open(target) as src:
        second = src.read(1)
    np.testing.assert_array_equal(second, xr.open_zarr(source, consolidated=False).ndvi.isel(time=1).values)
    before = target.read_bytes()
    chunk = next(p for p in (source / "ndvi" / "c").rglob("*") if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[:10])  # a damaged source: the export fails part-way
    with pytest.raises(SinkError, match="truncated"):
        export_cog(source, "ndvi", 0, target, overwrite=True)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".orbitcube")) == []


# ----- concurrent runs through a symbolic link ----------------------------------------------------------------------
def test_a_second_run_through_a_symlinked_path_is_refused_and_keeps_the_partial_files(
    mission, tmp_path: Path
) -> None:
    real = tmp_path / "real"
    store = small_store(real / "cube.zarr")
    link = tmp_path / "link.zarr"  # another name of the same store
    link.symlink_to(store, target_is_directory=True)
    in_flight = store / "ndvi" / "c" / "0" / "0" / "1.4f2a9c.partial"  # a chunk the first run is writing
    in_flight.write_bytes(b"half a chunk")
    recipe = write_recipe(mission, tmp_path / "recipe.yaml", str(link))
    before = tree_digest(store)
    with store_lock(store):  # the first run
        res = run_cli("-q", "run", str(recipe), cwd=tmp_path)
        with pytest.raises(SinkError, match="being written by another run"):
            with store_lock(link):
                pass
    assert_clean_error(res, "being written by another run")
    assert in_flight.exists() and tree_digest(store) == before
