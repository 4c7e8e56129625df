"""Scenes read from Azure Blob Storage (Azurite) and cubes written to S3 (moto_server), both real servers on
loopback, compared with the same work on local disk; secrets never reach logs or stored metadata."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from catalog.simulator import Mission
from catalog.storage import filesystem, gdal_options
from pipeline.errors import LoadError, SinkError
from pipeline.load import load_cube
from pipeline.sink import open_cube, write_zarr

AZ_KEY_MARK = "AccountKey="


def _upload(mission: Mission, azurite: dict, container: str, n: int = 6) -> list:
    opts = {"connection_string": azurite["connection_string"]}
    fs = filesystem(f"az://{container}", opts)
    if not fs.exists(container):
        fs.mkdir(container)
    out = []
    for it in mission.items[:n]:
        c = it.clone()
        for key in ("B04", "B08", "SCL"):
            remote = f"{container}/{it.id}/{key}.tif"
            fs.put_file(it.assets[key].get_absolute_href(), remote)
            c.assets[key].href = f"az://{remote}"
        out.append(c)
    return out


def test_azurite_scenes_to_s3_cube_equal_local(s2_mission: Mission, azurite, moto_s3, caplog) -> None:
    from pipeline.cluster import start_cluster

    az = {"connection_string": azurite["connection_string"]}
    items = _upload(s2_mission, azurite, "scenes")
    gbox = s2_mission.config.truth_geobox(20)
    local = load_cube(s2_mission.items[:6], ["red", "nir"], geobox=gbox).compute()
    caplog.set_level(logging.DEBUG)
    with start_cluster(n_workers=1, threads_per_worker=2, dashboard_address=None):  # reads happen on a worker
        remote = load_cube(items, ["red", "nir"], geobox=gbox, gdal_env=gdal_options(az)).compute()
    np.testing.assert_array_equal(remote["red"].values, local["red"].values)
    np.testing.assert_array_equal(remote["nir"].values, local["nir"].values)
    assert np.isfinite(remote["red"].values).mean() > 0.3

    s3 = filesystem("s3://", moto_s3)
    s3.mkdir("cubes")
    prov = {"items": [i.id for i in items], "source": "az://scenes/x/B04.tif?sv=1&sig=SIGSECRET"}
    write_zarr(remote, "s3://cubes/cube.zarr", storage_options=moto_s3, provenance=prov)
    back = open_cube("s3://cubes/cube.zarr", storage_options=moto_s3).compute()
    np.testing.assert_array_equal(back["red"].values, local["red"].values)
    assert back.odc.geobox == gbox
    # no secret in any object of the store, nor in the logs
    blobs = b"".join(s3.cat(f) for f in s3.find("cubes/cube.zarr") if f.endswith("zarr.json"))
    for secret in (
        b"SIGSECRET",
        moto_s3["secret"].encode(),
        az["connection_string"].split(AZ_KEY_MARK)[1][:20].encode(),
    ):
        assert secret not in blobs
    assert "SIGSECRET" not in json.dumps(back.attrs)
    assert az["connection_string"].split(AZ_KEY_MARK)[1][:20] not in caplog.text
    with pytest.raises(SinkError, match="already exists"):
        write_zarr(remote, "s3://cubes/cube.zarr", storage_options=moto_s3)


def test_missing_container_and_wrong_credentials_are_clear_errors(
    s2_mission: Mission, azurite, moto_s3
) -> None:
    items = _upload(s2_mission, azurite, "scenes2", n=2)
    gbox = s2_mission.config.truth_geobox(40)
    wrong_key = azurite["connection_string"].replace("Eby8", "XXXX")
    bad = [it.clone() for it in items]
    bad[0].assets["B04"].href = "az://no-such-container/x/B04.tif"
    with pytest.raises(LoadError, match=r"no-such-container/x/B04.tif") as err:
        load_cube(
            bad,
            ["red"],
            geobox=gbox,
            gdal_env=gdal_options({"connection_string": azurite["connection_string"]}),
        ).compute()
    assert AZ_KEY_MARK not in str(err.value)
    with pytest.raises(LoadError, match=r"scenes2/") as err:
        load_cube(
            items, ["red"], geobox=gbox, gdal_env=gdal_options({"connection_string": wrong_key})
        ).compute()
    assert "XXXX" not in str(err.value)
    with pytest.raises(SinkError, match=r"s3://no-such-bucket/cube.zarr"):
        cube = load_cube(s2_mission.items[:2], ["red"], geobox=gbox)
        write_zarr(cube, "s3://no-such-bucket/cube.zarr", storage_options=moto_s3)
