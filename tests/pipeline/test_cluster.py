"""Dask clusters: LocalCluster or an existing scheduler; GDAL settings and credentials reach every worker."""

from __future__ import annotations

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
