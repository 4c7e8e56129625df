"""orbitcube.catalog.policy: which hrefs a catalog may reference (pure text checks: nothing is opened or resolved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.policy import AccessPolicy, check_href, parse_allow, special_host, violation


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "localhost", "a.localhost", "::1", "[::1]", "0.0.0.0",
     "169.254.169.254", "2852039166", "fe80::1", "::ffff:169.254.169.254", "metadata.google.internal",
     "fd00:ec2::254"],
)  # fmt: skip
def test_loopback_link_local_and_metadata_hosts_in_any_notation(host: str) -> None:
    assert special_host(host)


@pytest.mark.parametrize("host", ["example.org", "10.0.0.1", "8.8.8.8", "2001:db8::1", "bucket-1"])
def test_ordinary_hosts_are_not_special(host: str) -> None:
    assert not special_host(host)


def test_local_catalog_tree_after_dots_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "cat"
    (root / "scenes").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "scenes" / "link").symlink_to(tmp_path / "secret")
    p = AccessPolicy.for_catalog(root / "catalog.json")
    assert violation(str(root / "scenes" / "a.tif"), p) is None
    assert violation((root / "scenes" / "a.tif").as_uri(), p) is None
    assert violation(str(root / "scenes" / ".." / ".." / "secret" / "a.tif"), p) is not None
    assert violation(str(root / "scenes" / "link" / "a.tif"), p) is not None  # resolved through the symlink
    assert violation(str(tmp_path / "cat-other" / "a.tif"), p) is not None  # a sibling sharing the prefix
    assert violation("file://otherhost/etc/passwd", p) is not None
    for gdal in ("/vsicurl/http://example.org/a.tif", "/vsizip//etc/x.zip/a.tif", "NETCDF:/etc/x.nc:v"):
        assert "GDAL" in violation(gdal, p)
    assert violation("https://example.org/a.tif", p) is not None


def test_remote_origin_and_allow_entries() -> None:
    p = AccessPolicy.for_catalog(
        "https://stac.example.org/v1/catalog.json", ["https://cogs.example.org/data", "s3://bucket/pre", "gs"]
    )
    ok = [
        "https://stac.example.org/other/a.tif",
        "https://STAC.example.org:443/a.tif",
        "https://cogs.example.org/data/a.tif",
        "https://cogs.example.org/data",
        "s3://bucket/pre/a.tif",
        "gs://any/a.tif",
    ]
    bad = [
        "http://stac.example.org/a.tif",  # another scheme: another origin
        "https://stac.example.org:8443/a.tif",
        "https://cogs.example.org/database/a.tif",  # prefix on path components only
        "https://cogs.example.org/data/../secret.tif",
        "s3://bucket/prefix/a.tif",
        "s3://other/pre/a.tif",
        "file:///etc/passwd",
        "/etc/passwd",
        "https://169.254.169.254/latest",
    ]
    assert [h for h in ok if violation(h, p)] == []
    assert [h for h in bad if violation(h, p) is None] == []


def test_loopback_only_when_named_or_home() -> None:
    home = AccessPolicy.for_catalog("http://127.0.0.1:8000/catalog.json", ["http"])
    assert violation("http://127.0.0.1:8000/a.tif", home) is None
    assert violation("http://127.0.0.1:9000/a.tif", home) is not None  # "http" does not cover loopback
    assert violation("http://127.0.0.1:9000/a.tif", home.allowing(["http://127.0.0.1:9000"])) is None


def test_allow_entries_parse_and_round_trip(tmp_path: Path) -> None:
    assert parse_allow("s3").kind == "scheme" and parse_allow("https://").kind == "scheme"
    assert parse_allow("scenes", tmp_path).path == str(tmp_path / "scenes")  # a bare word is a folder
    for e in ("s3://bucket/pre", "https://h:8080/p", str(tmp_path), "az://"):
        assert parse_allow(str(parse_allow(e))) == parse_allow(e)
    with pytest.raises(CatalogError, match="empty"):
        parse_allow(" ")


def test_refusal_names_what_and_how_to_allow_without_secrets(tmp_path: Path) -> None:
    p = AccessPolicy.for_catalog(tmp_path)
    with pytest.raises(CatalogError) as err:
        check_href("https://h.example.org/a.tif?sig=SECRETSIG", p, what="item 'x' asset 'B04'")
    msg = str(err.value)
    assert (
        "item 'x' asset 'B04'" in msg and "--allow https://h.example.org" in msg and "catalog: {allow:" in msg
    )
    assert "SECRETSIG" not in msg
    check_href("/etc/passwd", None)  # no policy: items the caller built itself
