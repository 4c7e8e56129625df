"""Storage access resolved once (catalog/access.py): options per URL prefix, ${ENV} expanded on the client into
Secret strings, picklable for Dask graphs, nothing secret in its repr."""

from __future__ import annotations

import pickle

import pytest

from orbitcube.catalog.access import Storage
from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.storage import Secret

CANARY = "canary-7f3e-not-a-real-key"


def test_env_references_are_expanded_once_into_secrets(monkeypatch) -> None:
    monkeypatch.setenv("OC_TEST_KEY", CANARY)
    storage = Storage.resolve(
        {"az": {"account_name": "dev", "account_key": "${OC_TEST_KEY}"}, "s3://bucket/": {"anon": True}},
        {"GDAL_HTTP_TIMEOUT": "7"},
    )
    monkeypatch.delenv("OC_TEST_KEY")  # resolved already: a worker without the variable gets the value
    opts = storage.options("az://container/cube.zarr")
    assert opts["account_key"] == CANARY and isinstance(opts["account_key"], Secret)
    assert storage.options("s3://bucket/x.tif") == {"anon": True}
    assert storage.options("s3://other/x.tif") == {} and storage.options("/data/x.tif") == {}
    assert storage.fsspec("az://container/cube.zarr")["account_key"] == CANARY
    back = pickle.loads(pickle.dumps(storage))
    assert back == storage and back.options("az://c/k")["account_key"] == CANARY
    assert CANARY not in repr(storage) and CANARY not in repr(opts)
    assert storage.read_env(["/data/x.tif"]) == {"GDAL_HTTP_TIMEOUT": "7"}


def test_longest_prefix_wins() -> None:
    storage = Storage.resolve(
        {"s3": {"region": "a"}, "s3://bucket/": {"region": "b"}, "s3://bucket/deep/": {"region": "c"}}
    )
    assert storage.options("s3://bucket/deep/x")["region"] == "c"
    assert storage.options("s3://bucket/x")["region"] == "b"
    assert storage.options("s3://elsewhere/x")["region"] == "a"


def test_unset_variable_is_named_before_any_work(monkeypatch) -> None:
    monkeypatch.delenv("OC_TEST_UNSET", raising=False)
    with pytest.raises(CatalogError, match="OC_TEST_UNSET"):
        Storage.resolve({"az": {"account_key": "${OC_TEST_UNSET}"}})
