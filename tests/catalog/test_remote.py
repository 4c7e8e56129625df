"""Remote catalogs through the same search call: a static catalog and a STAC API, both served on loopback."""

from __future__ import annotations

import pytest
from stac_server import StacApi, static_server

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.query import search
from orbitcube.catalog.remote import open_remote, safe_url
from orbitcube.catalog.simulator import Mission


def _ids(items) -> list[str]:
    return [i.id for i in items]


def test_static_catalog_over_http_searches_like_the_local_one(mixed_mission: Mission) -> None:
    root = mixed_mission.catalog_path.parent
    w, s, e, n = mixed_mission.config.aoi_bbox
    kw = {"bbox": (w, s, (w + e) / 2, n), "datetime": "2023-06-01/2023-06-30", "max_cloud_cover": 60}
    with static_server(root) as base:
        remote = search(f"{base}/catalog.json", **kw)
        assert remote and all(
            a.href.startswith("http://127.0.0.1") for i in remote for a in i.assets.values()
        )
    local = search(mixed_mission.catalog_path, **kw)
    assert _ids(remote) == _ids(local)


def test_stac_api_search_pages_and_sends_the_filter_to_the_server(mixed_mission: Mission) -> None:
    items = list(mixed_mission.items)
    api = StacApi(items, page_size=4)
    kw = {"datetime": "2023-06", "filter": "eo:cloud_cover < 50", "collections": ["sentinel-2-l2a-sim"]}
    with api.running() as base:
        assert type(open_remote(base + "/")).__name__ == "Client"
        got = search(base + "/", **kw, allow=[mixed_mission.root])
    want = search(items, **kw)
    assert _ids(got) == _ids(want) and len(got) > 4  # more than one page
    searches = [r for r in api.requests if r[1] == "/search"]
    assert len(searches) >= 2, "the client followed the next links"
    assert all("filter" in params for _m, _p, params in searches)


def test_api_without_the_filter_extension_is_filtered_locally(mixed_mission: Mission) -> None:
    items = list(mixed_mission.items)
    api = StacApi(items, page_size=50, filter_extension=False)
    with api.running() as base:
        got = search(base + "/", max_cloud_cover=30, limit=3, allow=[mixed_mission.root])
    want = search(items, max_cloud_cover=30, limit=3)
    assert _ids(got) == _ids(want) and len(got) == 3
    assert all("filter" not in p for _m, path, p in api.requests if path == "/search")


def test_remote_errors_name_the_url_without_secrets(mixed_mission: Mission) -> None:
    api = StacApi(list(mixed_mission.items))
    with api.running() as base:
        api.fail_with = 503
        with pytest.raises(CatalogError, match=r"HTTP 503") as err:
            search(base + "/?sig=SECRET123&se=2030")
        assert "SECRET123" not in str(err.value) and "127.0.0.1" in str(err.value)
    with pytest.raises(CatalogError, match="cannot reach http://127.0.0.1:9/"):
        search("http://user:pw@127.0.0.1:9/catalog.json?token=abc")
    assert (
        safe_url("https://u:p@host.example:8443/a/b.json?sv=1&sig=x") == "https://host.example:8443/a/b.json"
    )
