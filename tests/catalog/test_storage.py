"""Object-storage hrefs: GDAL paths, credentials as GDAL and fsspec options, secret redaction, error
classification and bounded retries."""

from __future__ import annotations

import logging
import pickle

import pytest

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.failures import classify, retry, storage_error
from orbitcube.catalog.storage import (
    FAST_COG_READS,
    GdalCredentials,
    Secret,
    from_gdal_path,
    fsspec_options,
    gdal_options,
    is_remote,
    parse_url,
    redact,
    to_gdal_path,
)


def test_gdal_paths_and_url_parts() -> None:
    assert to_gdal_path("az://scenes/a/B04.tif") == "/vsiaz/scenes/a/B04.tif"
    assert to_gdal_path("s3://bucket/k/B04.tif") == "/vsis3/bucket/k/B04.tif"
    assert to_gdal_path("gs://b/x.tif") == "/vsigs/b/x.tif"
    assert to_gdal_path("https://h.example/x.tif") == "/vsicurl/https://h.example/x.tif"
    assert to_gdal_path("/data/x.tif") == "/data/x.tif"
    assert to_gdal_path("file:///data/x.tif") == "/data/x.tif"
    for href in ("az://scenes/a/B04.tif", "s3://bucket/k/B04.tif", "https://h.example/x.tif"):
        assert from_gdal_path(to_gdal_path(href)) == href
    assert is_remote("az://c/k") and not is_remote("/data/x.tif") and not is_remote("file:///x")
    u = parse_url("s3://bucket/a/b.zarr")
    assert (u.scheme, u.bucket, u.key, u.is_remote) == ("s3", "bucket", "a/b.zarr", True)
    assert parse_url("/tmp/x.zarr").key == "/tmp/x.zarr" and not parse_url("/tmp/x.zarr").is_remote
    with pytest.raises(CatalogError, match="unsupported URL scheme 'ftp'") as err:
        to_gdal_path("ftp://user:pw@h/x.tif")
    assert "pw" not in str(err.value)


def test_credentials_become_gdal_and_fsspec_options(monkeypatch) -> None:
    for k in (
        "AZURE_STORAGE_CONNECTION_STRING",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
    ):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("MY_CS", "DefaultEndpointsProtocol=http;AccountName=acc;AccountKey=K3Y==;")
    env = gdal_options({"connection_string": "${MY_CS}"})
    assert env["AZURE_STORAGE_CONNECTION_STRING"].endswith("AccountKey=K3Y==;")
    for k in ("GDAL_DISABLE_READDIR_ON_OPEN", "GDAL_CACHEMAX", "GDAL_HTTP_MULTIPLEX", "VSI_CACHE"):
        assert env[k] == FAST_COG_READS[k]
    assert env["GDAL_HTTP_MERGE_CONSECUTIVE_RANGES"] == "YES"
    assert ".tif" in env["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"]
    s3 = gdal_options(
        {"key": "AK", "secret": "SK", "endpoint_url": "http://127.0.0.1:9000", "region": "eu-west-1"}
    )
    assert (s3["AWS_S3_ENDPOINT"], s3["AWS_HTTPS"], s3["AWS_VIRTUAL_HOSTING"], s3["AWS_REGION"]) == (
        "127.0.0.1:9000",
        "NO",
        "FALSE",
        "eu-west-1",
    )
    assert fsspec_options("s3://b/x", {"key": "AK", "secret": "SK", "endpoint_url": "http://h:1"}) == {
        "key": "AK",
        "secret": "SK",
        "client_kwargs": {"endpoint_url": "http://h:1"},
        "use_listings_cache": False,
    }
    assert fsspec_options("az://c/x", {"connection_string": "${MY_CS}", "key": "ignored"}) == {
        "connection_string": "DefaultEndpointsProtocol=http;AccountName=acc;AccountKey=K3Y==;",
        "use_listings_cache": False,
    }
    with pytest.raises(CatalogError, match="UNSET_VAR"):
        gdal_options({"secret": "${UNSET_VAR}"})


def test_gdal_options_from_the_environment(monkeypatch) -> None:
    """Without storage options the usual variables are carried (so remote workers get them); the boto-style
    AWS_ENDPOINT_URL becomes GDAL's endpoint settings; options of one family override only that family."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVAK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ENVSK")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://minio.example:9443")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=a;AccountKey=ENVKEY")
    env = gdal_options()
    assert env["session"].get_credential_options() == {
        "AWS_ACCESS_KEY_ID": "ENVAK",
        "AWS_SECRET_ACCESS_KEY": "ENVSK",
    }
    assert (env["AWS_S3_ENDPOINT"], env["AWS_HTTPS"], env["AWS_VIRTUAL_HOSTING"]) == (
        "minio.example:9443",
        "YES",
        "FALSE",
    )
    assert env["AZURE_STORAGE_CONNECTION_STRING"].endswith("ENVKEY")
    mine = gdal_options({"key": "AK", "secret": "SK"})
    assert mine["session"].credentials["AWS_SECRET_ACCESS_KEY"] == "SK" and "AWS_S3_ENDPOINT" not in mine
    assert mine["AZURE_STORAGE_CONNECTION_STRING"].endswith("ENVKEY")  # the other family still from env


def test_credentials_hidden_from_reprs_but_usable() -> None:
    """Credentials travel inside Dask graphs: picklable, hashable, hidden from reprs, and accepted by rasterio.Env
    (which refuses AWS keys as plain options: they go in a rasterio session)."""
    env = gdal_options({"secret": "SUPERSECRET", "key": "AK", "connection_string": "AccountKey=K3Y"})
    assert isinstance(env["AZURE_STORAGE_CONNECTION_STRING"], Secret)
    assert isinstance(env["session"], GdalCredentials) and "AWS_SECRET_ACCESS_KEY" not in env
    as_spec = tuple(sorted(env.items()))  # how the loader puts them in its read spec
    assert "SUPERSECRET" not in repr(as_spec) and "K3Y" not in repr(as_spec) and hash(as_spec)
    back = pickle.loads(pickle.dumps(env))  # travels to Dask workers
    assert back == env and isinstance(back["AZURE_STORAGE_CONNECTION_STRING"], Secret)
    from dask.base import tokenize

    assert tokenize(as_spec) == tokenize(tuple(sorted(back.items())))
    import rasterio
    from rasterio.env import get_gdal_config

    with rasterio.Env(**back):
        assert get_gdal_config("AWS_SECRET_ACCESS_KEY") == "SUPERSECRET"
        assert get_gdal_config("AWS_ACCESS_KEY_ID") == "AK"
        assert get_gdal_config("AZURE_STORAGE_CONNECTION_STRING") == "AccountKey=K3Y"
        assert get_gdal_config("GDAL_DISABLE_READDIR_ON_OPEN") == "EMPTY_DIR"
        # bytes (rasterio sets it with GDALSetCacheMax64), not the MiB GDAL reads from the environment
        assert get_gdal_config("GDAL_CACHEMAX") == FAST_COG_READS["GDAL_CACHEMAX"] == 16 * 2**20


def test_redact_strips_tokens_signatures_keys_and_passwords() -> None:
    text = (
        "reading https://acc.blob.core.windows.net/c/B04.tif?sv=2022&se=2030-01-01&sig=S3CR3T failed; "
        "s3 https://b.s3.amazonaws.com/k?X-Amz-Signature=abc123&X-Amz-Credential=AKIA ok; "
        "cs AccountName=acc;AccountKey=K3Y==;BlobEndpoint=http://u:pw@127.0.0.1:1/acc "
        "sas sv=2022-11-02&se=2031-01-01T00%3A00Z&sp=r&sig=B4R3SAS; password=hunter2 "
        """json {"secret": "JSONSECRET", "account_key": "ACCKEY", "key": "AK"} repr {'sas_token': 'SASREPR'}"""
    )
    out = redact(text)
    for secret in ("S3CR3T", "abc123", "AKIA", "K3Y==", "pw@", "2031-01-01", "B4R3SAS", "hunter2",
                   "JSONSECRET", "ACCKEY", "SASREPR"):  # fmt: skip
        assert secret not in out, secret
    assert "https://acc.blob.core.windows.net/c/B04.tif" in out and "AccountKey=***" in out
    assert "http://127.0.0.1:1/acc" in out and "AccountName=acc" in out
    assert redact("s3://cubes/cube.zarr/ndvi/c/0/0") == "s3://cubes/cube.zarr/ndvi/c/0/0"


def test_classify_and_clear_errors() -> None:
    assert classify(FileNotFoundError("cubes/x")) == "missing"
    assert classify(PermissionError("nope")) == "denied"
    assert classify(ConnectionResetError()) == "transient"
    assert classify(OSError(111, "Connection refused")) == "transient"
    assert classify(ValueError("bad")) == "other"
    try:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert classify(outer) == "transient"  # the cause counts
    err = storage_error(PermissionError("403 for https://h/x?sig=ABC"), "az://c/k?sig=ABC", "read")
    assert isinstance(err, CatalogError) and "az://c/k" in str(err) and "ABC" not in str(err)
    assert "credentials" in str(err)


def test_retry_is_bounded_and_only_for_transient_errors(caplog) -> None:
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("connection reset by peer")
        return "ok"

    caplog.set_level(logging.WARNING, logger="orbitcube.catalog.storage")
    assert retry(flaky, url="s3://b/k?X-Amz-Signature=SIG", attempts=3, delay=0.01) == "ok"
    assert len(calls) == 3 and "retry 2 of 2" in caplog.text and "SIG" not in caplog.text

    calls.clear()
    with pytest.raises(CatalogError, match=r"cannot write s3://b/k: the storage service did not answer"):
        retry(lambda: flaky() and None, url="s3://b/k", action="write", attempts=2, delay=0.01)
    assert len(calls) == 2

    calls.clear()

    def missing():
        calls.append(1)
        raise FileNotFoundError("no bucket")

    with pytest.raises(CatalogError, match="does not exist"):
        retry(missing, url="s3://nope/k", attempts=5, delay=0.01)
    assert len(calls) == 1  # not retried
