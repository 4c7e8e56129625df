"""Dask clusters: LocalCluster or an existing scheduler; nothing is installed on the workers (settings and
credentials travel inside the graph)."""

from __future__ import annotations

import datetime
import logging
import os
import time

import pytest

from orbitcube.pipeline.cluster import start_cluster
from orbitcube.pipeline.errors import ClusterError


def _env(keys):
    return {k: os.environ.get(k) for k in keys}


def test_local_cluster_starts_closes_and_installs_nothing_on_its_workers() -> None:
    with start_cluster(2, 1, "1GiB") as client:
        assert client.dashboard_link.startswith("http")
        seen = client.run(_env, ["GDAL_DISABLE_READDIR_ON_OPEN", "VSI_CACHE", "GDAL_CACHEMAX"])
        assert len(seen) == 2
        for name, env in seen.items():  # (the settings travel inside the graph, with each read)
            assert env == {k: os.environ.get(k) for k in env}, name
    assert client.status == "closed"


def _spans(dask_scheduler) -> int:
    return len(dask_scheduler.extensions["spans"].spans)


def _tasks(dask_scheduler) -> int:
    return len(dask_scheduler.tasks)


def _wait_for(event_name: str) -> int:
    from distributed import Event

    Event(event_name).wait(60)
    return 1


def test_pruning_forgets_finished_spans_only_and_keeps_the_last_ones() -> None:
    """A batch run computes one graph per tile; the scheduler keeps a span per computation forever unless pruned
    (dask/distributed#7977). Pruning keeps the newest finished spans and every span still running."""
    import dask.array as da
    from distributed import Client, Event, LocalCluster

    from orbitcube.pipeline.cluster import prune_scheduler_history

    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        for i in range(6):  # six computations, one after the other (as tiles are)
            assert float(da.full((4, 4), i, chunks=2).sum().compute()) == 16 * i
        running = client.submit(_wait_for, "release", pure=False)  # a computation still running
        deadline = time.monotonic() + 30
        while client.run_on_scheduler(_tasks) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)  # the finished computations' tasks are released asynchronously
        assert client.run_on_scheduler(_spans) == 7
        assert prune_scheduler_history(client, keep=2) == 4
        assert client.run_on_scheduler(_spans) == 3  # the two newest finished, and the running one
        Event("release", client=client).set()
        assert running.result(timeout=60) == 1
        assert float(da.ones((4, 4), chunks=2).sum().compute()) == 16  # the scheduler still works
        del running


CANARY = "canary-secret-0123456789"


def test_a_run_on_an_existing_scheduler_leaves_no_credential_on_its_workers(
    reference_run, run_recipe_doc, tmp_path, monkeypatch
) -> None:
    """A shared cluster: credentials of the client's environment and cluster.gdal_env reach the reads through the
    graph only, so the workers' os.environ holds none of them after the run; the store equals the reference."""
    from distributed import LocalCluster
    from test_run import assert_identical

    from orbitcube.pipeline.run import run_recipe

    keys = ["AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_ACCESS_KEY", "GDAL_HTTP_TIMEOUT", "AWS_ACCESS_KEY_ID"]
    with LocalCluster(n_workers=1, processes=True, dashboard_address=":0") as cluster:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "client-key")  # the client's, set after the workers started
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
        out = tmp_path / "cube.zarr"
        doc = run_recipe_doc(out, scheduler=cluster.scheduler_address)
        doc["cluster"]["gdal_env"] = {"GDAL_HTTP_TIMEOUT": "7", "AZURE_STORAGE_ACCESS_KEY": CANARY}
        res = run_recipe(doc, progress=False)
        assert res.tiles_done == 9
        assert_identical(reference_run.store, out)
        with start_cluster(scheduler=cluster.scheduler_address) as client:
            (env,) = client.run(_env, keys).values()
        assert env == dict.fromkeys(keys)
        assert cluster.status.name == "running" and len(cluster.workers) == 1


def test_remote_read_settings_and_environment_credentials_reach_the_read_tasks(
    run_recipe_doc, tmp_path, monkeypatch
) -> None:
    """Items on object storage: the read tasks carry the GDAL settings of orbitcube.catalog.defaults, the credentials of the
    client's environment (as a session rasterio opens them with) and cluster.gdal_env."""
    import pystac

    from orbitcube.catalog.access import Storage
    from orbitcube.catalog.defaults import FAST_COG_READS
    from orbitcube.catalog.storage import Secret
    from orbitcube.pipeline.recipe import load_recipe

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "client-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARY)
    doc = run_recipe_doc(tmp_path / "c.zarr")
    doc["cluster"]["gdal_env"] = {"GDAL_HTTP_TIMEOUT": "7"}
    item = pystac.Item("a", None, None, datetime.datetime(2023, 6, 1), {})
    item.add_asset("red", pystac.Asset("s3://bucket/a/red.tif"))
    recipe = load_recipe(doc)
    storage = Storage.resolve(recipe.storage, recipe.cluster.gdal_env)
    env = storage.read_env([item.assets["red"].href])
    for k, v in FAST_COG_READS.items():
        assert env[k] == (v if k != "GDAL_HTTP_TIMEOUT" else "7"), k
    creds = env["session"].credentials
    assert creds["AWS_ACCESS_KEY_ID"] == "client-key" and creds["AWS_SECRET_ACCESS_KEY"] == CANARY
    assert isinstance(creds["AWS_SECRET_ACCESS_KEY"], Secret) and CANARY not in repr(env)
    local = pystac.Item("b", None, None, item.datetime, {})
    local.add_asset("red", pystac.Asset(str(tmp_path / "red.tif")))
    assert storage.read_env([local.assets["red"].href]) == {
        "GDAL_HTTP_TIMEOUT": "7"
    }  # local: the reader's defaults


def test_unreachable_scheduler_is_a_cluster_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterError, match=f"127.0.0.1:{port}.*dask scheduler"):
        with start_cluster(scheduler=f"tcp://127.0.0.1:{port}", timeout="1s"):
            pass


# ----- Dask Gateway (a real dask-gateway-server on loopback: fixture `dask_gateway` in tests/conftest.py) ----------
def _recipe_on_gateway(run_recipe_doc, out, gw, **gateway) -> dict:
    doc = run_recipe_doc(out, scheduler=gw.url)
    doc["cluster"]["gateway"] = {
        "auth": "basic",
        "username": "orbitcube",
        "password": "${OC_GATEWAY_PASSWORD}",
    }
    doc["cluster"]["gateway"].update(gateway)
    return doc


def test_a_recipe_on_a_dask_gateway_gives_the_identical_store_and_leaks_no_secret(
    dask_gateway, reference_run, run_recipe_doc, tmp_path, monkeypatch, caplog
) -> None:
    from test_run import assert_identical

    from orbitcube.pipeline.run import run_recipe

    monkeypatch.setenv("OC_GATEWAY_PASSWORD", dask_gateway.secret)
    out = tmp_path / "cube.zarr"
    with caplog.at_level(logging.INFO):  # (stac_geoparquet has a broken DEBUG record)
        res = run_recipe(_recipe_on_gateway(run_recipe_doc, out, dask_gateway), progress=False)
    assert res.tiles_done == 9
    assert f"127.0.0.1:{dask_gateway.port}/clusters/" in res.dashboard  # a gateway-managed cluster ran it
    assert_identical(reference_run.store, out)
    assert dask_gateway.clusters() == []  # shut down after the run, not left running on the platform
    texts = [caplog.text, (out / "zarr.json").read_text()]
    texts += [p.read_text(errors="replace") for p in res.report.parent.rglob("*") if p.is_file()]
    assert not [t for t in texts if dask_gateway.secret in t]


def test_a_wrong_gateway_password_is_a_cluster_error_without_the_secret(
    dask_gateway, run_recipe_doc, tmp_path, monkeypatch
) -> None:
    from orbitcube.pipeline.run import run_recipe

    monkeypatch.setenv("OC_GATEWAY_PASSWORD", "not-" + dask_gateway.secret)
    with pytest.raises(ClusterError, match=f"Dask Gateway at http://127.0.0.1:{dask_gateway.port}") as err:
        run_recipe(_recipe_on_gateway(run_recipe_doc, tmp_path / "c.zarr", dask_gateway), progress=False)
    assert dask_gateway.secret not in str(err.value)


def test_gateway_secrets_in_a_recipe_must_be_env_references(run_recipe_doc, tmp_path) -> None:
    from orbitcube.pipeline.errors import RecipeError
    from orbitcube.pipeline.recipe import load_recipe

    doc = run_recipe_doc(tmp_path / "c.zarr", scheduler="gateway://127.0.0.1:1")
    doc["cluster"]["gateway"] = {"auth": "basic", "username": "me", "password": "hunter2-literal"}
    with pytest.raises(RecipeError, match="cluster.gateway.password") as err:
        load_recipe(doc)
    assert "hunter2-literal" not in str(err.value)
