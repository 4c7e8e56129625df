"""Object storage end to end, against real emulators on loopback started by tests/conftest.py: scenes and a static
STAC catalog in Azure Blob Storage (Azurite), cubes in S3 (moto_server with IAM authentication on), compared with
the same work on local disk. Also: run-store leases and resume in object stores, clear errors for a missing
container/bucket, wrong credentials and a server that stops mid-read, bounded retries of transient failures
(HTTP 503, connection resets, injected by a proxy), and no secret in logs, stores, reports or STAC JSON."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from flaky_proxy import FlakyProxy
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from orbitcube.catalog.errors import CatalogError, OrbitcubeError
from orbitcube.catalog.simulator import Mission
from orbitcube.catalog.storage import filesystem, gdal_options
from orbitcube.pipeline.errors import LoadError, SinkError
from orbitcube.pipeline.load import load_cube
from orbitcube.pipeline.sink import (
    completed_tiles,
    create_store,
    mark_tile_done,
    open_cube,
    remove_store,
    store_lock,
    store_state,
    write_tile,
    write_zarr,
)

BANDS = ("B04", "B08", "SCL")


def _upload_mission(mission: Mission, az, container: str) -> str:
    """The mission's self-contained catalog (JSON, index, and the red, nir and SCL COGs) published to Azurite;
    returns the az:// URL of its catalog.json (asset hrefs are relative, so they resolve to az:// URLs)."""
    from orbitcube.catalog.publish import publish_catalog

    fs = filesystem(f"az://{container}", az.options)
    if not fs.exists(container):
        fs.mkdir(container)
    return publish_catalog(
        mission.catalog_path,
        f"az://{container}/catalog",
        storage_options=az.options,
        include=lambda rel: rel.rsplit("/", 1)[-1].removesuffix(".tif") in BANDS,
    )


@pytest.fixture(scope="module")
def az_catalog(run_mission: Mission, azurite) -> str:
    return _upload_mission(run_mission, azurite, "mission")


@pytest.fixture(scope="module")
def az_items(s2_mission: Mission, azurite) -> list:
    """Six scenes of the s2 mission uploaded to Azurite, as items whose hrefs are az:// URLs."""
    fs = filesystem("az://scenes", azurite.options)
    fs.mkdir("scenes")
    out = []
    for it in s2_mission.items[:6]:
        c = it.clone()
        for key in BANDS:
            remote = f"scenes/{it.id}/{key}.tif"
            fs.put_file(it.assets[key].get_absolute_href(), remote)
            c.assets[key].href = f"az://{remote}"
        out.append(c)
    return out


def _bucket(s3, name: str) -> str:
    fs = filesystem("s3://", s3.options)
    if not fs.exists(name):
        fs.mkdir(name)
    return name


def _storage(monkeypatch, azurite, moto_s3, az_port: int | None = None) -> dict:
    """Recipe storage options with the secrets as ${ENV} references (set here, never written in the recipe)."""
    az = azurite.via(az_port) if az_port else azurite.options
    monkeypatch.setenv("OC_TEST_AZ_CONNECTION", az["connection_string"])
    monkeypatch.setenv("OC_TEST_S3_SECRET", moto_s3.secret)
    return {
        "az": {"connection_string": "${OC_TEST_AZ_CONNECTION}"},
        "s3": {**moto_s3.options, "secret": "${OC_TEST_S3_SECRET}"},
    }


def _everything(fs, prefix: str) -> bytes:
    return b"".join(fs.cat_file(f) for f in fs.find(prefix))


def _chunks(fs, url: str) -> dict[str, bytes]:
    root = url.split("://", 1)[1]
    return {f.removeprefix(root + "/"): fs.cat_file(f) for f in fs.find(root) if "/c/" in f}


def _local_chunks(path: Path) -> dict[str, bytes]:
    return {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in path.rglob("*")
        if p.is_file() and "/c/" in p.as_posix()
    }


# ----- the whole pipeline -------------------------------------------------------------------------------------------
def test_recipe_from_azurite_to_s3_equals_the_local_run(
    reference_run, run_recipe_doc, az_catalog, azurite, moto_s3, monkeypatch, tmp_path, caplog
) -> None:
    """The batch-run recipe with its static catalog and scenes in Azurite and its output in S3, on a LocalCluster of
    worker processes (credentials reach them inside the graph only: they are in no worker's environment), writes
    the same chunks as the same recipe run on local disk; no secret anywhere in what it wrote or logged."""
    from orbitcube.pipeline.run import run_recipe

    url = f"s3://{_bucket(moto_s3, 'cubes')}/run.zarr"
    doc = run_recipe_doc(url)
    doc["catalog"] = {"source": az_catalog, "kind": "static"}
    doc["storage"] = _storage(monkeypatch, azurite, moto_s3)
    doc["output"]["report_dir"] = str(tmp_path / "report")
    caplog.set_level(logging.INFO)
    res = run_recipe(doc, progress=False)
    assert res.store == url and res.tiles_done == res.tiles_total == 9

    so = {**moto_s3.options}
    remote, local = open_cube(url, storage_options=so), open_cube(reference_run.store)
    assert sorted(remote.data_vars) == sorted(local.data_vars) == ["ndvi", "ndvi_median"]
    for name in local.data_vars:
        np.testing.assert_array_equal(remote[name].values, local[name].values)
    assert remote.odc.geobox == local.odc.geobox
    s3 = filesystem("s3://", so)
    assert _chunks(s3, url) == _local_chunks(reference_run.store)  # byte-identical chunks and tile markers
    assert completed_tiles(url, so) == {(i, j) for i in range(3) for j in range(3)}
    assert not s3.exists("cubes/run.zarr.lock")  # the lease is released

    written = [
        _everything(s3, "cubes/run.zarr"),
        *(p.read_bytes() for p in (tmp_path / "report").rglob("*") if p.is_file()),
        caplog.text.encode(),
        json.dumps(remote.attrs).encode(),
    ]
    assert (tmp_path / "report" / "index.html").exists() and (tmp_path / "report" / "run.log").exists()
    for blob in written:
        for secret in (azurite.secret, moto_s3.secret):
            assert secret.encode() not in blob
    prov = json.loads(remote.attrs["orbitcube:provenance"])
    assert (
        "storage" not in prov["recipe"]
        and prov["items"] == json.loads(local.attrs["orbitcube:provenance"])["items"]
    )


def test_catalog_of_azurite_scenes_loads_on_worker_processes(
    s2_mission: Mission, az_items, azurite, moto_s3, tmp_path, caplog
) -> None:
    """A catalog written with az:// hrefs, searched and loaded on worker processes with the credentials in the
    graph, equals the local load; the cube written to S3 with a SAS-signed href in its provenance keeps none."""
    from orbitcube.catalog.merge import write_catalog
    from orbitcube.catalog.store import open_catalog
    from orbitcube.pipeline.cluster import start_cluster

    write_catalog(az_items, tmp_path / "stac")
    # scenes in Azurite and in the mission folder: both outside the catalog's own folder (orbitcube.catalog.policy)
    items = open_catalog(tmp_path / "stac", allow=["az", str(s2_mission.root)]).search()
    assert {it.assets["B04"].href.split("://")[0] for it in items} == {"az"}
    gbox = s2_mission.config.truth_geobox(20)
    local = load_cube(s2_mission.items[:6], ["red", "nir"], geobox=gbox).compute()
    caplog.set_level(logging.DEBUG)
    with start_cluster(n_workers=1, threads_per_worker=2, dashboard_address=None):
        remote = load_cube(
            items, ["red", "nir"], geobox=gbox, gdal_env=gdal_options(azurite.options)
        ).compute()
    for b in ("red", "nir"):
        np.testing.assert_array_equal(remote[b].values, local[b].values)
    assert np.isfinite(remote["red"].values).mean() > 0.3

    url = f"s3://{_bucket(moto_s3, 'cubes')}/load.zarr"
    prov = {"source": "https://acc.blob.core.windows.net/c/B04.tif?sv=2024&se=2031&sig=SIGSECRET"}
    write_zarr(remote, url, storage_options=moto_s3.options, provenance=prov)
    back = open_cube(url, storage_options=moto_s3.options)
    np.testing.assert_array_equal(back["nir"].values, local["nir"].values)
    s3 = filesystem("s3://", moto_s3.options)
    stac = b"".join(p.read_bytes() for p in (tmp_path / "stac").rglob("*.json"))
    for blob in (_everything(s3, "cubes/load.zarr"), stac, caplog.text.encode()):
        for secret in (b"SIGSECRET", azurite.secret.encode(), moto_s3.secret.encode()):
            assert secret not in blob
    with pytest.raises(SinkError, match="already exists"):
        write_zarr(remote, url, storage_options=moto_s3.options)


def test_published_catalog_is_searchable_in_object_storage(
    run_mission: Mission, az_catalog, azurite, moto_s3, monkeypatch
) -> None:
    """A catalog published to Azurite is a valid static catalog there: the same search on it and on the local
    folder finds the same items, whose asset hrefs point into the container; the root went up last and the
    STAC files carry no credentials. Publishing to a missing bucket is a clear error naming the URL."""
    from orbitcube.catalog.publish import publish_catalog
    from orbitcube.catalog.query import search

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.options["connection_string"])
    query = {"bbox": run_mission.config.aoi_bbox, "datetime": "2023-05-15/2023-06-15", "max_cloud_cover": 60}
    local, remote = search(run_mission.catalog_path, **query), search(az_catalog, **query)
    assert len(local) > 0 and [it.id for it in remote] == [it.id for it in local]
    assert all(it.assets["B04"].href.startswith("az://mission/catalog/") for it in remote)
    fs = filesystem("az://mission", azurite.options)
    stac = b"".join(fs.cat_file(f) for f in fs.find("mission/catalog") if f.endswith(".json"))
    assert azurite.secret.encode() not in stac and b"AccountKey" not in stac
    with pytest.raises(CatalogError, match=r"s3://no-such-bucket/c/.*does not exist"):
        publish_catalog(run_mission.catalog_path, "s3://no-such-bucket/c", storage_options=moto_s3.options)


# ----- run stores in object storage: lease, resume ------------------------------------------------------------------
def _template() -> xr.Dataset:
    gbox = GeoBox.from_bbox((732000, 5040000, 732640, 5040320), "EPSG:32632", resolution=20)
    t = np.array(["2023-06-01", "2023-06-06"], dtype="datetime64[ns]")
    data = np.random.default_rng(3).uniform(-1, 1, (2, *gbox.shape.yx)).astype("f4")
    ds = xr.Dataset(
        {"ndvi": (("time", "y", "x"), data)}, coords={"time": t, **xr_coords(gbox, dims=("y", "x"))}
    )
    return ds.chunk({"time": -1, "y": 8, "x": 8})


@pytest.fixture(params=["s3", "az"])
def store_url(request, azurite, moto_s3):
    if request.param == "s3":
        return f"s3://{_bucket(moto_s3, 'runs')}/t{time.monotonic_ns()}.zarr", moto_s3.options
    fs = filesystem("az://runs", azurite.options)
    if not fs.exists("runs"):
        fs.mkdir("runs")
    return f"az://runs/t{time.monotonic_ns()}.zarr", azurite.options


def test_run_store_in_object_storage_resumes(store_url) -> None:
    url, so = store_url
    cube = _template()
    assert store_state(url, "f1", so) is None
    assert (
        create_store(
            cube, url, tile_shape=(8, 8), provenance={"name": "t"}, fingerprint="f1", storage_options=so
        )
        == url
    )
    assert store_state(url, "f1", so) == set()
    write_tile(cube.isel(y=slice(8, 16), x=slice(0, 8)), url, (1, 0), so).compute()
    mark_tile_done(url, (1, 0), so)
    assert store_state(url, "f1", so) == completed_tiles(url, so) == {(1, 0)}
    got = open_cube(url, storage_options=so)["ndvi"].values
    np.testing.assert_array_equal(got[:, 8:16, 0:8], cube["ndvi"].values[:, 8:16, 0:8])
    assert np.isnan(got[:, :8, :8]).all()  # unwritten tiles are the fill value
    with pytest.raises(SinkError, match="different recipe"):
        store_state(url, "f2", so)
    with pytest.raises(SinkError, match="already exists"):
        create_store(cube, url, tile_shape=(8, 8), provenance={}, fingerprint="f1", storage_options=so)
    remove_store(url, so)
    assert store_state(url, "f1", so) is None


def test_object_store_lease_refuses_a_second_run_and_expires(store_url) -> None:
    from orbitcube.pipeline.locks import _Lease

    url, so = store_url
    fs = filesystem(url, so)
    lock_key = url.split("://", 1)[1] + ".lock"
    with store_lock(url, so):
        assert fs.exists(lock_key)
        with pytest.raises(SinkError, match="being written by another run") as err:
            with store_lock(url, so):
                pass
        assert "pid" in str(err.value) and str(so.get("secret", "none")) not in str(err.value)
    assert not fs.exists(lock_key)  # released
    with store_lock(url, so):  # and free again
        pass

    dead = _Lease(url, so, ttl=1.0)  # a run killed while holding the lease: no more heartbeats, no release
    dead.acquire()
    dead._stop.set()
    dead._thread.join()
    with pytest.raises(SinkError, match="expires"):
        with store_lock(url, so, ttl=1.0):
            pass
    time.sleep(1.2)
    with store_lock(url, so, ttl=1.0) as held:  # taken over once abandoned for longer than the ttl
        time.sleep(0.6)  # two heartbeats of the new holder
        held.check()
        with pytest.raises(FileExistsError):  # the dead holder's conditional renewal now fails
            dead._put(if_match=dead.etag)
    assert not fs.exists(lock_key)


# ----- errors -------------------------------------------------------------------------------------------------------
def test_missing_container_bucket_and_wrong_credentials_are_clear_errors(
    s2_mission: Mission, az_items, azurite, moto_s3, run_recipe_doc, monkeypatch
) -> None:
    gbox = s2_mission.config.truth_geobox(40)
    bad = [it.clone() for it in az_items[:2]]
    bad[0].assets["B04"].href = "az://no-such-container/x/B04.tif"
    with pytest.raises(LoadError, match=r"no-such-container/x/B04.tif") as err:
        load_cube(bad, ["red"], geobox=gbox, gdal_env=gdal_options(azurite.options)).compute()
    assert azurite.secret not in str(err.value)
    wrong_az = {"connection_string": azurite.options["connection_string"].replace("Eby8", "XXXX")}
    with pytest.raises(LoadError, match=r"scenes/") as err:
        load_cube(az_items[:2], ["red"], geobox=gbox, gdal_env=gdal_options(wrong_az)).compute()
    assert "XXXX" not in str(err.value)

    cube = load_cube(s2_mission.items[:2], ["red"], geobox=gbox)
    with pytest.raises(
        SinkError, match=r"cannot write Zarr store s3://no-such-bucket/cube.zarr: .*does not exist"
    ):
        write_zarr(cube, "s3://no-such-bucket/cube.zarr", storage_options=moto_s3.options)
    wrong_s3 = {**moto_s3.options, "secret": "not-the-secret-0123"}
    with pytest.raises(SinkError, match=r"s3://cubes/denied.zarr(/zarr.json)?: access denied") as err:
        write_zarr(cube, f"s3://{_bucket(moto_s3, 'cubes')}/denied.zarr", storage_options=wrong_s3)
    assert "not-the-secret-0123" not in str(err.value)
    with pytest.raises(SinkError, match=r"az://no-such-container/cube.zarr: .*does not exist"):
        write_zarr(cube, "az://no-such-container/cube.zarr", storage_options=azurite.options)
    with pytest.raises(SinkError, match=r"az://scenes/cube.zarr(/zarr.json)?: access denied") as err:
        write_zarr(cube, "az://scenes/cube.zarr", storage_options=wrong_az)
    assert "XXXX" not in str(err.value)

    # through a recipe: the run's lease cannot be created with a wrong secret (from the environment)
    monkeypatch.setenv("OC_TEST_S3_SECRET", "not-the-secret-0123")
    doc = run_recipe_doc("s3://cubes/recipe.zarr")
    doc["storage"] = {"s3": {**moto_s3.options, "secret": "${OC_TEST_S3_SECRET}"}}
    from orbitcube.pipeline.run import run_recipe

    with pytest.raises(SinkError, match=r"s3://cubes/recipe.zarr.lock: access denied") as err:
        run_recipe(doc, progress=False)
    assert "not-the-secret-0123" not in str(err.value)


def test_transient_failures_are_retried_a_bounded_number_of_times(
    s2_mission: Mission, az_items, azurite, moto_s3
) -> None:
    """HTTP 503 and connection resets from a proxy in front of the emulators: GDAL reads and fsspec writes retry
    and succeed; a store that keeps failing gives a clear error after a bounded number of attempts."""
    gbox = s2_mission.config.truth_geobox(40)
    local = load_cube(s2_mission.items[:2], ["red"], geobox=gbox).compute()
    with FlakyProxy(azurite.port) as proxy:
        proxy.fail("503", "reset", "503")
        env = gdal_options(azurite.via(proxy.port))
        env.update(GDAL_HTTP_RETRY_DELAY="0.05")
        got = load_cube(az_items[:2], ["red"], geobox=gbox, gdal_env=env).compute()
        assert proxy.failed == 3
    np.testing.assert_array_equal(got["red"].values, local["red"].values)

    _bucket(moto_s3, "cubes")
    with FlakyProxy(moto_s3.port) as proxy:
        proxy.fail("reset", "503", "reset", "503")
        url = "s3://cubes/flaky.zarr"
        write_zarr(local, url, storage_options=moto_s3.via(proxy.port))
        assert proxy.failed == 4
    np.testing.assert_array_equal(
        open_cube(url, storage_options=moto_s3.options)["red"].values, local["red"].values
    )

    cube = _template()
    url = "s3://cubes/markers.zarr"
    create_store(
        cube, url, tile_shape=(8, 8), provenance={}, fingerprint="f", storage_options=moto_s3.options
    )
    with FlakyProxy(moto_s3.port) as proxy:
        proxy.always = "503"
        t0 = time.monotonic()
        with pytest.raises(
            SinkError, match=r"cannot record tile \(0, 0\) as complete in s3://cubes/markers.zarr"
        ):
            mark_tile_done(
                url, (0, 0), moto_s3.via(proxy.port, config_kwargs={"retries": {"max_attempts": 2}})
            )
        assert time.monotonic() - t0 < 60 and 4 <= proxy.connections <= 100  # retried, but bounded


def test_a_permanently_failing_object_gets_at_most_the_retry_policy_s_requests(
    run_recipe_doc, az_catalog, azurite, moto_s3, monkeypatch, tmp_path
) -> None:
    """Every asset request answered 503 once the run's store exists: GDAL, the reader and the runner retry, each
    within its limit of orbitcube.catalog.defaults.RETRY_POLICY, and the run fails clearly after at most
    RETRY_POLICY.max_requests (24) requests on any one object; both tile attempts went through all the retries."""
    from orbitcube.catalog.defaults import RETRY_POLICY
    from orbitcube.pipeline.run import run_recipe

    out = tmp_path / "cube.zarr"
    with FlakyProxy(azurite.port) as proxy:
        doc = run_recipe_doc(out, n_workers=1, max_tiles_in_flight=1)
        doc["catalog"] = {"source": az_catalog, "kind": "static"}
        doc["storage"] = _storage(monkeypatch, azurite, moto_s3, az_port=proxy.port)
        doc["storage"][az_catalog] = {
            "connection_string": azurite.options["connection_string"]
        }  # STAC: direct
        doc["cluster"]["gdal_env"] = {  # GDAL's own retries as the policy says, only faster; no caches
            "GDAL_HTTP_RETRY_DELAY": "0.01",
            "GDAL_CACHEMAX": "0",
            "CPL_VSIL_CURL_CACHE_SIZE": "0",
            "VSI_CACHE": "FALSE",
        }

        def fail_once_the_store_exists() -> None:
            while not (out / "zarr.json").exists() and not proxy.stopped:
                time.sleep(0.005)
            proxy.always = "503"

        threading.Thread(target=fail_once_the_store_exists, daemon=True).start()
        with pytest.raises(OrbitcubeError, match=r"az://mission/catalog/.*\.tif"):
            run_recipe(doc, progress=False)
    per_object: dict[str, int] = {}
    for line in proxy.refused:
        path = line.split(" ")[1].split("?")[0]
        per_object[path] = per_object.get(path, 0) + 1
    assert RETRY_POLICY.max_requests == 24
    assert per_object and max(per_object.values()) <= RETRY_POLICY.max_requests, per_object
    assert sum(per_object.values()) >= RETRY_POLICY.max_requests, per_object  # every layer retried in full
    assert completed_tiles(out) == set()


def test_server_stopped_mid_read_fails_clearly_and_the_rerun_resumes(
    reference_run, run_recipe_doc, az_catalog, azurite, moto_s3, monkeypatch, tmp_path
) -> None:
    """The Azure endpoint dies part-way through a run: the run fails with a LoadError naming the scene URL (no
    key), after bounded retries; the tiles written before are kept, and a rerun once the endpoint is back resumes
    and ends byte-identical to the uninterrupted local run."""
    from orbitcube.pipeline.run import run_recipe

    out = tmp_path / "cube.zarr"
    with FlakyProxy(azurite.port) as proxy:
        doc = run_recipe_doc(out, n_workers=1, max_tiles_in_flight=1)
        doc["catalog"] = {"source": az_catalog, "kind": "static"}
        doc["storage"] = _storage(monkeypatch, azurite, moto_s3, az_port=proxy.port)
        # no caches: the scenes are a few blocks each, so with caches every tile after the first reads from memory
        doc["cluster"]["gdal_env"] = {
            "GDAL_HTTP_MAX_RETRY": "1",
            "GDAL_HTTP_RETRY_DELAY": "0.1",
            "GDAL_CACHEMAX": "0",
            "CPL_VSIL_CURL_CACHE_SIZE": "0",
            "VSI_CACHE": "FALSE",
        }

        def stop_after_two_tiles() -> None:  # the endpoint dies once two tiles are recorded as complete
            while not proxy.stopped:
                if sum(p.is_file() for p in (out / "tile_done" / "c").rglob("*")) >= 2:
                    proxy.stop()
                time.sleep(0.01)

        watcher = threading.Thread(target=stop_after_two_tiles, daemon=True)
        watcher.start()
        t0 = time.monotonic()
        with pytest.raises(OrbitcubeError, match=r"az://mission/catalog/.*\.tif") as err:
            run_recipe(doc, progress=False)
        assert time.monotonic() - t0 < 120
    assert isinstance(err.value, LoadError | SinkError)
    assert azurite.secret not in str(err.value) and "AccountKey" not in str(err.value)
    done = completed_tiles(out)
    assert 0 < len(done) < 9, done

    doc["storage"] = _storage(monkeypatch, azurite, moto_s3)  # the endpoint is back
    res = run_recipe(doc, progress=False)
    assert res.tiles_skipped == len(done) and res.tiles_done == 9 - len(done)
    assert _local_chunks(out) == _local_chunks(reference_run.store)
