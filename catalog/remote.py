"""Remote catalogs: static STAC catalogs over HTTP(S) and STAC APIs, searched with the same call as local ones.

:func:`orbitcube.catalog.query.search` sends ``http(s)://`` sources here. A STAC API (a landing page that conforms to
STAC API - Item Search) is searched through pystac-client: the area, interval, collections, ids, cloud cover and
CQL2 filter go to the server (the filter only when the server conforms to the Filter extension), pages are
followed, and the result is filtered once more locally so that every source has the same semantics. A static
catalog is walked with pystac and filtered in memory.

URLs in messages and logs are stripped of query strings and user info (SAS tokens, signatures, passwords).

Links (children, items, search pages) are followed, and asset hrefs of the items returned accepted, only inside
the catalog's origin or the user's allow list (:mod:`orbitcube.catalog.policy`): checked before any request is sent.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pystac

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.policy import AccessPolicy, check_items, guarded_stac_io, refusals, request_guard

__all__ = ["fetch_json", "open_remote", "safe_url", "search_remote"]

log = logging.getLogger(__name__)


def safe_url(url: str) -> str:
    """``url`` without user info and query string, fit for messages and logs."""
    p = urlsplit(url)
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    return urlunsplit((p.scheme, host, p.path, "", ""))


def fetch_json(url: str, *, headers: dict[str, str] | None = None, timeout: float = 30.0) -> dict:
    """GET ``url`` and parse it as JSON; CatalogError naming the (redacted) URL on any failure."""
    req = urllib.request.Request(url, headers={"Accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (http(s) only, checked by caller)
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise CatalogError(
            f"{safe_url(url)} answered HTTP {exc.code} {exc.reason}; check the URL (and credentials)"
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CatalogError(f"cannot reach {safe_url(url)}: {reason}; check the URL and the network") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"{safe_url(url)} did not return JSON ({exc}); is it a STAC catalog or API?"
        ) from exc


def _is_api(doc: dict) -> bool:
    conforms = doc.get("conformsTo") or []
    has_search = any(link.get("rel") == "search" for link in doc.get("links", []))
    return has_search or any(str(c).endswith("item-search") for c in conforms)


def open_remote(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    storage_options: dict[str, Any] | None = None,
    policy: AccessPolicy | None = None,
) -> Any:
    """Open the STAC document at ``url``: a ``pystac_client.Client`` for a STAC API (Item Search), else a
    ``pystac.Catalog`` (or Collection) for a static catalog. ``az://`` / ``s3://`` (any fsspec URL) are static
    catalogs read through fsspec with ``storage_options`` (default: credentials from the environment; see
    :mod:`orbitcube.catalog.storage`). CatalogError when it cannot be read. Links are followed only where ``policy``
    (default: the URL's own origin) allows."""
    from orbitcube.catalog.storage import is_remote, redact, stac_io

    if not is_remote(url):
        raise CatalogError(f"{url!r} is not a URL; give a local path to open a catalog on disk")
    policy = policy or AccessPolicy.for_catalog(url)
    if not url.startswith(("http://", "https://")):
        try:
            root = pystac.read_file(url, stac_io=guarded_stac_io(policy, stac_io(storage_options)))
        except CatalogError:
            raise
        except (KeyError, ValueError, pystac.STACError) as exc:
            raise CatalogError(f"{redact(url)} is not a valid STAC catalog: {redact(exc)}") from exc
        if not isinstance(root, pystac.Catalog):
            raise CatalogError(f"{redact(url)} is a STAC {type(root).__name__}, not a Catalog or Collection")
        return root
    doc = fetch_json(url, headers=headers, timeout=timeout)
    if _is_api(doc):
        from pystac_client import Client
        from pystac_client.exceptions import APIError

        try:
            return Client.open(url, headers=headers, timeout=timeout, request_modifier=request_guard(policy))
        except (APIError, OSError) as exc:
            raise CatalogError(f"cannot open the STAC API at {safe_url(url)}: {exc}") from exc
    kind = doc.get("type")
    if kind not in ("Catalog", "Collection"):
        raise CatalogError(
            f"{safe_url(url)} is a {kind!r} document, not a STAC Catalog, Collection or API landing page"
        )
    try:
        cls = pystac.Collection if kind == "Collection" else pystac.Catalog
        root = cls.from_dict(doc, href=url)
        root._stac_io = guarded_stac_io(
            policy
        )  # as pystac's own from_file sets it: every link read is checked
        return root
    except (KeyError, ValueError, pystac.STACError) as exc:
        raise CatalogError(f"{safe_url(url)} is not a valid STAC {kind}: {exc}") from exc


def _api_filter(q: Any) -> dict | None:
    parts = []
    if q.filter:
        parts.append(q.filter)
    if q.max_cloud_cover is not None:
        parts.append({"op": "<=", "args": [{"property": "eo:cloud_cover"}, q.max_cloud_cover]})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"op": "and", "args": parts}


def search_remote(
    url: str,
    q: Any,
    *,
    headers: dict[str, str] | None = None,
    allow: Any = (),
    storage_options: dict[str, Any] | None = None,
) -> pystac.ItemCollection:
    """Run the normalised query ``q`` (:class:`orbitcube.catalog.query.Query`) against a remote static catalog or STAC
    API; asset hrefs come back absolute. The same local filter runs on what the server returns. Links and the
    asset hrefs of the items found must be under the URL's origin or an ``allow`` entry (CatalogError).
    ``storage_options``: credentials of an ``az://`` / ``s3://`` static catalog (see :mod:`orbitcube.catalog.storage`)."""
    from pystac_client import Client
    from shapely.geometry import mapping

    from orbitcube.catalog.query import format_interval, search_items

    policy = AccessPolicy.for_catalog(url, allow)
    src = open_remote(url, headers=headers, policy=policy, storage_options=storage_options)
    if not isinstance(src, Client):  # (a Client is a pystac.Catalog too)
        with refusals():
            items = list(src.get_items(recursive=True))
        for it in items:
            it.make_asset_hrefs_absolute()
        log.info("walked static catalog %s: %d items", safe_url(url), len(items))
        found = search_items(items, q)
        check_items(list(found), policy)
        return found
    from pystac_client.exceptions import APIError

    kwargs: dict[str, Any] = {
        "intersects": mapping(q.aoi) if q.aoi is not None else None,
        "datetime": format_interval(q.interval),
        "collections": list(q.collections) if q.collections else None,
        "ids": list(q.ids) if q.ids else None,
        "max_items": q.limit,
    }
    cql = _api_filter(q)
    if cql is not None and src.conforms_to("FILTER"):
        kwargs.update(filter=cql, filter_lang="cql2-json")
    elif cql is not None:
        log.info("%s does not conform to the Filter extension: filtering properties locally", safe_url(url))
        kwargs["max_items"] = None  # the limit applies after the local filter
    try:
        found = list(src.search(**{k: v for k, v in kwargs.items() if v is not None}).items())
    except (APIError, OSError) as exc:
        raise CatalogError(f"search on {safe_url(url)} failed: {exc}") from exc
    log.info("STAC API %s returned %d items", safe_url(url), len(found))
    result = search_items(found, q, strict=False)
    check_items(list(result), policy)
    return result
