"""Servers on loopback for remote-catalog tests: a static file server and a small STAC API.

The STAC API implements the parts of STAC API - Core and Item Search that clients use (landing page with
conformance classes, ``/collections``, ``GET``/``POST /search`` with bbox, intersects, datetime, collections,
ids, CQL2 JSON ``filter`` and paging through ``next`` links). Its filtering engine is orbitcube's in-memory
search, so the tests exercise the client side: HTTP, paging, parameter encoding and result parsing.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pystac

from orbitcube.catalog.query import search

CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/collections",
]
FILTER = [
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
]


@contextmanager
def serve(handler) -> Iterator[str]:
    """Run ``handler`` on 127.0.0.1 (a free port) in a thread; yields the base URL; stops it afterwards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def static_server(root: Path) -> Iterator[str]:
    """Serve the files under ``root`` over HTTP."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    with serve(functools.partial(Quiet, directory=str(root))) as url:
        yield url


class StacApi:
    """State of one fake STAC API: its items, page size, whether it offers the Filter extension, requests seen."""

    def __init__(
        self, items: list[pystac.Item], *, page_size: int = 5, filter_extension: bool = True
    ) -> None:
        self.items = items
        self.page_size = page_size
        self.filter_extension = filter_extension
        self.requests: list[tuple[str, str, dict]] = []
        self.fail_with: int | None = None

    @contextmanager
    def running(self) -> Iterator[str]:
        api = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, code: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's names)
                parts = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                self._route("GET", parts.path, params)

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                self._route("POST", urlsplit(self.path).path, body)

            def _route(self, method: str, path: str, params: dict) -> None:
                api.requests.append((method, path, params))
                if api.fail_with:
                    return self._send(api.fail_with, {"code": "Error", "description": "failing on purpose"})
                base = f"http://{self.headers['Host']}"
                if path in ("", "/"):
                    return self._send(200, api.landing(base))
                if path == "/conformance":
                    return self._send(200, {"conformsTo": api.conforms()})
                if path == "/collections":
                    return self._send(200, {"collections": [], "links": []})
                if path == "/search":
                    return self._send(200, api.search(base, method, params))
                return self._send(404, {"code": "NotFound", "description": path})

        with serve(Handler) as url:
            yield url

    def conforms(self) -> list[str]:
        return CONFORMS + (FILTER if self.filter_extension else [])

    def landing(self, base: str) -> dict:
        return {
            "type": "Catalog",
            "id": "test-api",
            "stac_version": "1.1.0",
            "description": "orbitcube test STAC API",
            "conformsTo": self.conforms(),
            "links": [
                {"rel": "self", "href": f"{base}/", "type": "application/json"},
                {"rel": "root", "href": f"{base}/", "type": "application/json"},
                {"rel": "data", "href": f"{base}/collections", "type": "application/json"},
                {"rel": "conformance", "href": f"{base}/conformance", "type": "application/json"},
                {"rel": "search", "href": f"{base}/search", "type": "application/geo+json", "method": "GET"},
                {"rel": "search", "href": f"{base}/search", "type": "application/geo+json", "method": "POST"},
            ],
        }

    def search(self, base: str, method: str, p: dict) -> dict:
        def listy(v):
            if v is None:
                return None
            return v.split(",") if isinstance(v, str) else v

        bbox = listy(p.get("bbox"))
        intersects = p.get("intersects")
        if isinstance(intersects, str):
            intersects = json.loads(intersects)
        flt = p.get("filter") if self.filter_extension else None
        if isinstance(flt, str):
            flt = json.loads(flt) if flt.lstrip().startswith("{") else flt
        found = search(
            self.items,
            bbox=[float(v) for v in bbox] if bbox else None,
            intersects=intersects,
            datetime=p.get("datetime"),
            collections=listy(p.get("collections")),
            ids=listy(p.get("ids")),
            filter=flt,
        )
        start = int(p.get("token") or 0)
        size = min(int(p.get("limit") or self.page_size), self.page_size)
        page = list(found)[start : start + size]
        links = []
        if start + size < len(found):
            if method == "POST":
                links.append(
                    {
                        "rel": "next",
                        "href": f"{base}/search",
                        "method": "POST",
                        "body": {**p, "token": start + size},
                    }
                )
            else:
                q = "&".join(f"{k}={v}" for k, v in {**p, "token": start + size}.items())
                links.append({"rel": "next", "href": f"{base}/search?{q}", "method": "GET"})
        return {
            "type": "FeatureCollection",
            "features": [it.to_dict() for it in page],
            "links": links,
            "numberMatched": len(found),
            "numberReturned": len(page),
        }
