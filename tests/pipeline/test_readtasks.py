"""The loader's Dask graph (pipeline/readtasks.py): read tasks of a small load carry their own scenes, so a real
cluster spreads them over its workers; large loads share one scene table; both give the same pixels."""

from __future__ import annotations

import numpy as np
import pytest

from orbitcube.catalog.simulator import Mission
from orbitcube.pipeline import readtasks
from orbitcube.pipeline.load import load_cube


def _cube(mission: Mission, px: int = 64):
    gbox = mission.config.truth_geobox(10)
    return load_cube(mission.items, ["red", "nir"], geobox=gbox, chunks={"y": px, "x": px, "time": -1})


def test_a_small_load_reads_on_every_worker(s2_mission: Mission) -> None:
    """Dask sends a task to the worker holding all its dependencies: with one shared scene table every read task
    of a small graph ran on the worker that held the table, and the other workers idled."""
    from distributed import Client, LocalCluster, get_task_stream

    cube = _cube(s2_mission, 128)
    graph = dict(cube["red"].data.__dask_graph__())
    assert not any(isinstance(k, tuple) and str(k[0]).startswith("scenes-") for k in graph)
    reads = [k for k in graph if isinstance(k, tuple) and str(k[0]).startswith("load-tile-")]
    assert 2 <= len(reads) <= 4  # too few to count as "root-ish" tasks on a 2-thread cluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client, get_task_stream(client) as stream:
            client.wait_for_workers(2)
            cube["red"].data.compute()
    workers = {t["worker"] for t in stream.data if str(t["key"]).startswith("('load-tile-")}
    assert len(workers) == 2, "the read tasks ran on one worker only"


def test_a_shared_scene_table_gives_the_same_pixels(
    s2_mission: Mission, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline = _cube(s2_mission)
    monkeypatch.setattr(readtasks, "INLINE_PAIRS", 0)
    shared = _cube(s2_mission)
    graph = dict(shared["red"].data.__dask_graph__())
    assert any(isinstance(k, tuple) and str(k[0]).startswith("scenes-") for k in graph)
    for band in ("red", "nir"):
        np.testing.assert_array_equal(inline[band].values, shared[band].values)
    assert (
        readtasks.read_tasks(graph).keys()
        == readtasks.read_tasks(dict(inline["red"].data.__dask_graph__())).keys()
    )
