"""Dask clusters: LocalCluster or an existing scheduler; GDAL settings and credentials reach every worker."""

from __future__ import annotations

import logging
import os

import pytest

from pipeline.cluster import start_cluster
from pipeline.errors import ClusterError


def _env(keys):
    return {k: os.environ.get(k) for k in keys}


def test_local_cluster_forwards_gdal_settings_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "7")
    keys = [
        "AWS_ACCESS_KEY_ID",
        "GDAL_HTTP_TIMEOUT",
        "GDAL_DISABLE_READDIR_ON_OPEN",
        "CPL_VSIL_CURL_USE_HEAD",
    ]
    with start_cluster(2, 1, "1GiB", gdal_env={"CPL_VSIL_CURL_USE_HEAD": "NO"}) as client:
        assert client.dashboard_link.startswith("http")
        seen = client.run(_env, keys)
        assert len(seen) == 2
        for env in seen.values():
            assert env == {
                "AWS_ACCESS_KEY_ID": "test-key",
                "GDAL_HTTP_TIMEOUT": "7",
                "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
                "CPL_VSIL_CURL_USE_HEAD": "NO",
            }
    assert client.status == "closed"


def test_existing_scheduler_gets_the_env_and_is_left_running() -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=True, dashboard_address=":0") as cluster:
        with start_cluster(scheduler=cluster.scheduler_address, gdal_env={"GDAL_CACHEMAX": "64"}) as client:
            (env,) = client.run(_env, ["GDAL_CACHEMAX"]).values()
            assert env == {"GDAL_CACHEMAX": "64"}
        assert cluster.status.name == "running" and len(cluster.workers) == 1


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

    from pipeline.run import run_recipe

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
    from pipeline.run import run_recipe

    monkeypatch.setenv("OC_GATEWAY_PASSWORD", "not-" + dask_gateway.secret)
    with pytest.raises(ClusterError, match=f"Dask Gateway at http://127.0.0.1:{dask_gateway.port}") as err:
        run_recipe(_recipe_on_gateway(run_recipe_doc, tmp_path / "c.zarr", dask_gateway), progress=False)
    assert dask_gateway.secret not in str(err.value)


def test_gateway_secrets_in_a_recipe_must_be_env_references(run_recipe_doc, tmp_path) -> None:
    from pipeline.errors import RecipeError
    from pipeline.recipe import load_recipe

    doc = run_recipe_doc(tmp_path / "c.zarr", scheduler="gateway://127.0.0.1:1")
    doc["cluster"]["gateway"] = {"auth": "basic", "username": "me", "password": "hunter2-literal"}
    with pytest.raises(RecipeError, match="cluster.gateway.password") as err:
        load_recipe(doc)
    assert "hunter2-literal" not in str(err.value)
