"""Object-storage hrefs: GDAL paths, credentials as GDAL and fsspec options, and secret redaction."""

from __future__ import annotations

import pytest

from catalog.errors import CatalogError
from catalog.storage import fsspec_options, gdal_options, is_remote, redact, to_gdal_path


def test_gdal_paths() -> None:
    assert to_gdal_path("az://scenes/a/B04.tif") == "/vsiaz/scenes/a/B04.tif"
    assert to_gdal_path("s3://bucket/k/B04.tif") == "/vsis3/bucket/k/B04.tif"
    assert to_gdal_path("gs://b/x.tif") == "/vsigs/b/x.tif"
    assert to_gdal_path("https://h.example/x.tif") == "/vsicurl/https://h.example/x.tif"
    assert (
        to_gdal_path("/data/x.tif") == "/data/x.tif" and to_gdal_path("file:///data/x.tif") == "/data/x.tif"
    )
    assert is_remote("az://c/k") and not is_remote("/data/x.tif") and not is_remote("file:///x")
    with pytest.raises(CatalogError, match="unsupported URL scheme 'ftp'"):
        to_gdal_path("ftp://user:pw@h/x.tif")


def test_credentials_become_gdal_and_fsspec_options(monkeypatch) -> None:
    monkeypatch.setenv("MY_CS", "DefaultEndpointsProtocol=http;AccountName=acc;AccountKey=K3Y==;")
    env = gdal_options({"connection_string": "${MY_CS}"})
    assert env["AZURE_STORAGE_CONNECTION_STRING"].endswith("AccountKey=K3Y==;")
    assert (
        env["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
        and env["GDAL_HTTP_MERGE_CONSECUTIVE_RANGES"] == "YES"
    )
    s3 = gdal_options(
        {"key": "AK", "secret": "SK", "endpoint_url": "http://127.0.0.1:9000", "region": "eu-west-1"}
    )
    assert (s3["AWS_S3_ENDPOINT"], s3["AWS_HTTPS"], s3["AWS_VIRTUAL_HOSTING"]) == (
        "127.0.0.1:9000",
        "NO",
        "FALSE",
    )
    assert fsspec_options("s3://b/x", {"key": "AK", "secret": "SK", "endpoint_url": "http://h:1"}) == {
        "key": "AK",
        "secret": "SK",
        "client_kwargs": {"endpoint_url": "http://h:1"},
    }
    with pytest.raises(CatalogError, match="UNSET_VAR"):
        gdal_options({"secret": "${UNSET_VAR}"})


def test_redact_strips_tokens_signatures_keys_and_passwords() -> None:
    text = (
        "reading https://acc.blob.core.windows.net/c/B04.tif?sv=2022&se=2030&sig=S3CR3T failed; "
        "s3 https://b.s3.amazonaws.com/k?X-Amz-Signature=abc123&X-Amz-Credential=AKIA ok; "
        "cs AccountName=acc;AccountKey=K3Y==;BlobEndpoint=http://u:pw@127.0.0.1:1/acc"
    )
    out = redact(text)
    for secret in ("S3CR3T", "abc123", "AKIA", "K3Y==", "pw@"):
        assert secret not in out
    assert "https://acc.blob.core.windows.net/c/B04.tif" in out and "AccountKey=***" in out
