"""Batch runs: plan without pixel reads; tile-wise resumable Zarr on a LocalCluster and on a real `dask scheduler`
with `dask worker` processes; SIGKILL + resume and a killed worker give the byte-identical store; concurrent runs
are refused."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
import yaml

from orbitcube.pipeline.errors import SinkError
from orbitcube.pipeline.plan import plan_run
from orbitcube.pipeline.run import run_recipe
from orbitcube.pipeline.sink import TILE_VAR

BIN = Path(sys.executable).parent


def store_files(path: Path) -> dict[str, bytes]:
    """Every file of a store (metadata, chunks, tile markers) by relative path."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def assert_identical(a: Path, b: Path) -> None:
    fa, fb = store_files(a), store_files(b)
    assert sorted(fa) == sorted(fb)
    differ = [k for k in fa if fa[k] != fb[k]]
    assert not differ, f"files differ: {differ}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dask_processes(n_workers: int, *, nanny: bool = True) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """A real `dask scheduler` and `dask worker` processes on loopback; stopped on exit."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        subprocess.Popen(
            [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    workers = []
    try:
        for _ in range(n_workers):
            args = [
                BIN / "dask",
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--no-dashboard",
            ]
            workers.append(
                subprocess.Popen(
                    [*args, "--nanny" if nanny else "--no-nanny"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        procs += workers
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(n_workers, timeout=60)
        yield address, workers
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_plan_reads_no_pixels_and_counts_tiles_items_and_bytes(run_recipe_doc, tmp_path: Path) -> None:
    doc = run_recipe_doc(tmp_path / "cube.zarr")
    plan = plan_run(doc)
    assert plan.tiles.shape == (3, 3) and len(plan.tile_plans) == 9
    assert plan.output_shape["ndvi"]["y"] == plan.geobox.shape.y == 68
    assert plan.output_shape["ndvi_median"]["month"] == 2
    n_time = plan.output_shape["ndvi"]["time"]
    assert 0 < n_time <= len(plan.items)
    # every item overlaps at least one tile; each tile lists only overlapping items
    assert {i for tp in plan.tile_plans for i in tp.items} == {it.id for it in plan.items}
    ny, nx = plan.geobox.shape.yx
    assert plan.bytes_written == 4 * ny * nx * (n_time + 2)
    assert plan.bytes_read > 0
    text = plan.summary()
    assert (
        "tiles: 3 x 3 = 9" in text
        and f"ndvi_median: month=2, y={ny}, x={nx}" in text
        and "estimated read" in text
    )
    res = run_recipe(doc, dry_run=True, progress=False)
    assert res.report is None and res.tiles_done == 0 and res.tiles_total == 9
    assert not (tmp_path / "cube.zarr").exists()


def test_tiled_run_equals_one_whole_cube_and_opens_with_crs(reference_run, run_mission) -> None:
    from odc.geo.xr import ODCExtensionDa  # noqa: F401

    from orbitcube.pipeline.analytics import composite, spectral_index
    from orbitcube.pipeline.load import load_cube

    res = reference_run
    assert (res.tiles_done, res.tiles_skipped, res.tiles_total) == (9, 0, 9)
    ds = xr.open_zarr(res.store, consolidated=False)
    gbox = res.plan.geobox
    assert ds.ndvi.rio.crs.to_epsg() == run_mission.config.truth_epsg
    assert tuple(ds.ndvi_median.rio.transform())[:6] == tuple(gbox.transform)[:6]
    assert ds.odc.geobox == gbox
    assert ds.ndvi.encoding["chunks"] == (ds.sizes["time"], 32, 32)
    assert ds[TILE_VAR].values.tolist() == [[1] * 3] * 3
    # the same computation as one graph over the whole grid (same chunking: odc-stac reads per chunk, and a
    # scene edge can land one pixel differently with other read windows)
    cube = load_cube(res.plan.items, ["red", "nir"], geobox=gbox, chunks={"y": 32, "x": 32})
    ndvi = spectral_index(cube, "NDVI")
    monthly = composite(ndvi, "median", freq="1MS").compute()
    np.testing.assert_allclose(ds.ndvi.values, ndvi.values, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(ds.ndvi_median.values, monthly.values, rtol=1e-6, equal_nan=True)
    assert np.isfinite(ds.ndvi_median.values).mean() > 0.5


def test_external_scheduler_gives_the_identical_store(reference_run, run_recipe_doc, tmp_path: Path) -> None:
    out = tmp_path / "cube.zarr"
    with dask_processes(2) as (address, _):
        res = run_recipe(run_recipe_doc(out), scheduler=address, progress=False)
    assert res.tiles_done == 9 and res.dashboard is not None
    assert_identical(reference_run.store, out)


def test_sigkill_then_resume_gives_the_identical_store(reference_run, run_recipe_doc, tmp_path: Path) -> None:
    out = tmp_path / "cube.zarr"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(run_recipe_doc(out, max_tiles_in_flight=1)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "orbitcube.pipeline.cli", "-q", "run", str(recipe)],
        start_new_session=True,  # its own process group: the kill takes the local cluster's workers too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    markers = out / TILE_VAR / "c"
    refused = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(markers.rglob("*"))) < 2 + 2:  # 2 dirs + >=2 tiles
            time.sleep(0.02)
        # a second run on the same store while the first holds it is refused
        with pytest.raises(SinkError, match="being written by another run") as refused:
            run_recipe(recipe, progress=False)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert refused is not None
    done = [p for p in markers.rglob("*") if p.is_file()]
    assert 2 <= len(done) < 9, "the run must be killed part-way"
    res = run_recipe(recipe, progress=False)
    assert res.tiles_skipped == len(done) and res.tiles_done == 9 - len(done)
    assert_identical(reference_run.store, out)


def test_a_worker_killed_mid_run_does_not_change_the_result(
    reference_run, run_recipe_doc, tmp_path: Path
) -> None:
    out = tmp_path / "cube.zarr"
    markers = out / TILE_VAR / "c"
    with dask_processes(2, nanny=False) as (address, workers):
        killed = threading.Event()

        def kill_one_worker() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(p.is_file() for p in markers.rglob("*")):
                time.sleep(0.02)
            workers[0].send_signal(signal.SIGKILL)
            killed.set()

        killer = threading.Thread(target=kill_one_worker, daemon=True)
        killer.start()
        res = run_recipe(run_recipe_doc(out, max_tiles_in_flight=2), scheduler=address, progress=False)
        killer.join()
        assert killed.is_set() and workers[0].wait(timeout=10) == -signal.SIGKILL
    assert res.tiles_done == 9
    assert_identical(reference_run.store, out)


def test_a_store_of_another_recipe_is_not_resumed(reference_run, run_recipe_doc, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "cube.zarr"
    shutil.copytree(reference_run.store, out)
    doc = run_recipe_doc(out)
    doc["analytics"][1]["stat"] = "mean"
    with pytest.raises(SinkError, match="different recipe"):
        run_recipe(doc, progress=False)
    # a finished store of the same recipe: nothing left to do, nothing changed
    same = run_recipe(run_recipe_doc(out), progress=False)
    assert (same.tiles_done, same.tiles_skipped) == (0, 9)
    assert_identical(reference_run.store, out)
