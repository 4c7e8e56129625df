"""Chunk checksums of run stores: `orbitcube verify` names a deleted, truncated or bit-flipped chunk, a rerun of
the recipe rewrites exactly the damaged tiles (byte-identical to an undamaged run), and a damaged chunk read by
export gives a message naming it instead of a codec traceback."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from orbitcube.pipeline.cli import main as cli_main
from orbitcube.pipeline.errors import SinkError
from orbitcube.pipeline.export import export_cog
from orbitcube.pipeline.run import run_recipe
from orbitcube.pipeline.sink import TILE_VAR
from orbitcube.pipeline.verify import verify_store


def files(path: Path) -> dict[str, bytes]:
    """Every file of a store by relative path."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def chunk_files(store: Path, variable: str) -> list[Path]:
    """The stored chunk files of ``variable`` (all-NaN chunks are not stored)."""
    return sorted(p for p in (store / variable / "c").rglob("*") if p.is_file())


def tile_of(chunk: Path) -> tuple[int, int]:
    return int(chunk.parent.name), int(chunk.name)


@pytest.fixture
def damaged(reference_run, tmp_path: Path) -> tuple[Path, dict[str, tuple[str, tuple[int, int]]]]:
    """A copy of the reference store with one chunk deleted, one truncated and one bit-flipped, each in another
    tile: (store, {kind: (chunk key, tile)})."""
    out = tmp_path / "cube.zarr"
    shutil.copytree(reference_run.store, out)
    ndvi, median = chunk_files(out, "ndvi"), chunk_files(out, "ndvi_median")
    gone, cut = ndvi[0], ndvi[-1]
    flip = next(p for p in median if tile_of(p) not in {tile_of(gone), tile_of(cut)})
    assert len({tile_of(gone), tile_of(cut), tile_of(flip)}) == 3
    gone.unlink()
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    data = bytearray(flip.read_bytes())
    data[len(data) // 2] ^= 0x10
    flip.write_bytes(bytes(data))
    keys = {
        kind: (str(p.relative_to(out)), tile_of(p))
        for kind, p in (("missing", gone), ("truncated", cut), ("changed", flip))
    }
    return out, keys


def test_checksums_are_recorded_per_tile_and_an_intact_store_verifies(reference_run) -> None:
    store = Path(reference_run.store)
    doc = json.loads((store / TILE_VAR / "checksums" / "1.2.json").read_text())
    assert doc["algorithm"] == "sha256" and doc["tile"] == [1, 2]
    stored = {str(p.relative_to(store)) for v in ("ndvi", "ndvi_median") for p in chunk_files(store, v)}
    in_tile = {k for k in stored if k.endswith("/1/2")}
    assert {k for k, v in doc["chunks"].items() if v} == in_tile
    t0 = time.perf_counter()
    report = verify_store(store)
    seconds = time.perf_counter() - t0
    assert report.ok and report.tiles_complete == report.tiles_total == 9
    assert report.chunks_checked == 9 * 2 and not report.unrecorded
    assert seconds < 2.0, f"verifying 18 chunks took {seconds:.2f} s"


def test_deleted_truncated_and_bit_flipped_chunks_are_named(damaged, capsys) -> None:
    store, keys = damaged
    report = verify_store(store)
    assert not report.ok
    found = {p.kind: (p.key, p.tile) for p in report.problems}
    assert found == keys
    assert sorted(report.damaged_tiles) == sorted(t for _, t in keys.values())
    # through the CLI: the chunks listed on stdout, one error line, non-zero exit
    code = cli_main(["verify", str(store)])
    out, err = capsys.readouterr()
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.startswith("orbitcube: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    for key, (i, j) in keys.values():
        assert key in lines[0] and f"tile {i}-{j}" in lines[0]
        assert key in out
    assert "rerun the recipe" in lines[0]


def test_cli_verify_of_an_intact_store_exits_zero(reference_run, capsys) -> None:
    assert cli_main(["verify", str(reference_run.store)]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")


def test_rerun_repairs_damaged_tiles_byte_identically(damaged, reference_run, run_recipe_doc) -> None:
    store, keys = damaged
    res = run_recipe(run_recipe_doc(store), progress=False)
    assert (res.tiles_done, res.tiles_skipped) == (3, 6)
    assert files(store) == files(Path(reference_run.store))
    assert verify_store(store).ok


def test_no_resume_deletes_and_rewrites_an_orbitcube_store(damaged, reference_run, run_recipe_doc) -> None:
    store, _ = damaged
    (store / "ndvi" / "c" / "0" / "1" / "0.1a2b.partial").write_bytes(b"left by a killed run")
    res = run_recipe(run_recipe_doc(store), progress=False, resume=False)
    assert (res.tiles_done, res.tiles_skipped) == (9, 0)
    assert files(store) == files(Path(reference_run.store))


def test_damaged_chunks_read_by_export_are_named_never_silent_or_a_traceback(damaged, tmp_path: Path) -> None:
    store, keys = damaged
    # a flipped bit decodes silently into wrong values: the checksums catch it before the export writes
    key, (i, j) = keys["changed"]
    with pytest.raises(SinkError, match=rf"{key} \(variable 'ndvi_median', tile {i}-{j}\).*rerun the recipe"):
        export_cog(store, "ndvi_median", 0, tmp_path / "june.tif")
    key, (i, j) = keys["truncated"]
    with pytest.raises(SinkError, match=rf"{key} \(variable 'ndvi', tile {i}-{j}\): truncated"):
        export_cog(store, "ndvi", 0, tmp_path / "june.tif")
    assert not (tmp_path / "june.tif").exists()


def test_a_deleted_checksum_record_is_damage_not_trust(reference_run, tmp_path: Path) -> None:
    out = tmp_path / "cube.zarr"
    shutil.copytree(reference_run.store, out)
    (out / TILE_VAR / "checksums" / "0.0.json").unlink()
    report = verify_store(out)
    assert report.damaged_tiles == [(0, 0)] and "checksum record missing" in str(report.problems[0])


def test_verify_refuses_a_folder_that_is_no_run_store(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SinkError, match="no Zarr store"):
        verify_store(tmp_path)


def test_a_codec_error_while_reading_names_the_damaged_chunk(damaged) -> None:
    from orbitcube.pipeline.sink import open_cube
    from orbitcube.pipeline.verify import naming_damaged_chunks

    store, keys = damaged
    key, _ = keys["truncated"]
    with pytest.raises(SinkError, match=rf"{key} \(variable 'ndvi'"):
        with naming_damaged_chunks(store):
            open_cube(store).ndvi.load()


def test_checksums_and_store_recognition_work_in_object_storage(moto_s3) -> None:
    """The checksum records live in the store itself: an s3:// store verifies, a deleted chunk is named, and
    only an orbitcube store is removed there too."""
    import numpy as np
    import xarray as xr
    from odc.geo.geobox import GeoBox
    from odc.geo.xr import xr_coords

    from orbitcube.catalog.storage import filesystem
    from orbitcube.pipeline.sink import create_store, mark_tile_done, remove_store, write_tile

    so = moto_s3.options
    fs = filesystem("s3://", so)
    if not fs.exists("verify"):
        fs.mkdir("verify")
    url = f"s3://verify/t{time.monotonic_ns()}.zarr"
    gbox = GeoBox.from_bbox((732000, 5040000, 732320, 5040320), "EPSG:32632", resolution=20)
    data = np.random.default_rng(1).uniform(-1, 1, (1, *gbox.shape.yx)).astype("f4")
    t = np.array(["2023-06-01"], dtype="datetime64[ns]")
    ds = xr.Dataset(
        {"ndvi": (("time", "y", "x"), data)}, coords={"time": t, **xr_coords(gbox, dims=("y", "x"))}
    )
    create_store(ds, url, tile_shape=(8, 8), provenance={"name": "t"}, fingerprint="f1", storage_options=so)
    write_tile(ds.isel(y=slice(0, 8), x=slice(0, 8)), url, (0, 0), so).compute()
    mark_tile_done(url, (0, 0), so)
    assert fs.exists(f"{url}/{TILE_VAR}/checksums/0.0.json")
    report = verify_store(url, so)
    assert report.ok and report.tiles_complete == 1 and report.chunks_checked == 1
    fs.rm_file(f"{url}/ndvi/c/0/0/0")
    fs.invalidate_cache()
    report = verify_store(url, so)
    assert [(p.key, p.kind, p.tile) for p in report.problems] == [("ndvi/c/0/0/0", "missing", (0, 0))]
    fs.pipe_file(f"{url}/notes.txt", b"a user's file")  # no longer only an orbitcube store
    with pytest.raises(SinkError, match="refusing to delete"):
        remove_store(url, so)
    fs.rm_file(f"{url}/notes.txt")
    remove_store(url, so)
    assert not fs.exists(f"{url}/zarr.json")
