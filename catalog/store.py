"""A self-contained STAC catalog on disk, opened through its stac-geoparquet index.

Layout under ``root``::

    catalog.json                      root catalog, one child link per collection
    items.parquet                     stac-geoparquet index of every item (what search reads)
    <collection>/collection.json      extents computed from its items
    <collection>/<id>/<id>.json       items; asset hrefs relative to the item file (absolute URLs stay URLs)

In the index, local asset hrefs and each item's ``self`` link are relative to ``root``, so the folder can be
moved or copied as a whole. This module reads catalogs (:func:`open_catalog`, :func:`reindex`,
:func:`catalog_info`) and holds the item-dict conversions the writer shares; writing and merging items into a
catalog (staged, all or nothing) is :mod:`orbitcube.catalog.merge`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pystac

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.index import ItemIndex, atomic_write_index, index_table, sort_table
from orbitcube.catalog.policy import AccessPolicy, check_href, guarded_stac_io, refusals

log = logging.getLogger(__name__)

INDEX_NAME = "items.parquet"
#: link relations a catalog writer sets itself (dropped from items before they are written or compared)
STRUCTURAL_RELS = frozenset({"self", "root", "parent", "collection", "item", "child"})


def _is_url(href: str) -> bool:
    return "://" in href


def drop_nones(value: Any) -> Any:
    """``value`` with the None entries of its dicts removed, recursively (what stac-geoparquet fills in)."""
    if isinstance(value, dict):
        return {k: drop_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nones(v) for v in value]
    return value


def absolute_item_dict(item: pystac.Item) -> dict:
    """The item as a dict with absolute asset hrefs (normalised paths or URLs) and no structural links."""
    d = item.to_dict(include_self_link=False, transform_hrefs=False)
    for key, a in d["assets"].items():
        href = item.assets[key].get_absolute_href() or a["href"]
        a["href"] = href if _is_url(href) else os.path.normpath(os.path.abspath(href))
    d["links"] = [ln for ln in d.get("links", []) if ln.get("rel") not in STRUCTURAL_RELS]
    return d


def relocate_item_dict(d: dict, base: Path, self_href: str | None) -> dict:
    """Copy of an absolute-href item dict with local hrefs relative to ``base`` and an optional self link."""
    out = json.loads(json.dumps(d))
    for a in out["assets"].values():
        if not _is_url(a["href"]):
            a["href"] = Path(os.path.relpath(a["href"], start=base)).as_posix()
    if self_href is not None:
        out["links"] = [{"rel": "self", "href": self_href, "type": "application/json"}, *out["links"]]
    return out


class Catalog(ItemIndex):
    """A catalog folder opened through its index: ``len()``, ``.items``, ``.collections``, ``.search(...)``.

    Open one with :func:`open_catalog`. Only the index columns a search filters on are read (once, then
    cached), and whole items only for the matches, so repeated searches on one opened catalog are fast.
    """

    def __init__(
        self,
        root: Path,
        catalog_dict: dict,
        *,
        table: pa.Table | None = None,
        path: Path | None = None,
        policy: AccessPolicy | None = None,
    ) -> None:
        super().__init__(table=table, path=path)
        self.root = root
        #: where links and asset hrefs may point (:mod:`orbitcube.catalog.policy`), checked on every search result; None (the
        #: catalogs write_catalog and ingest return: the caller's own items) checks nothing
        self.policy = policy
        self.catalog_file = root / "catalog.json"
        self.catalog_dict = catalog_dict
        self._collections: dict[str, pystac.Collection] | None = None

    def __repr__(self) -> str:
        return f"Catalog({str(self.root)!r}, {len(self)} items, collections={sorted(self.collection_ids)})"

    @property
    def ids(self) -> list[str]:
        """Item ids in index order."""
        return self.column("id").to_pylist() if len(self) else []

    @property
    def collection_ids(self) -> list[str]:
        """Ids of the collections the root catalog links to."""
        return [
            Path(ln["href"]).parent.name
            for ln in self.catalog_dict.get("links", [])
            if ln.get("rel") == "child"
        ]

    @property
    def collections(self) -> dict[str, pystac.Collection]:
        """Collections by id, read from their ``collection.json`` (with computed extents)."""
        if self._collections is None:
            out = {}
            for ln in self.catalog_dict.get("links", []):
                if ln.get("rel") == "child":
                    path = (self.root / ln["href"]).resolve()
                    check_href(str(path), self.policy, what=f"{self.catalog_file} child link {ln['href']!r}")
                    coll = pystac.Collection.from_file(str(path))
                    out[coll.id] = coll
            self._collections = out
        return self._collections

    @property
    def items(self) -> list[pystac.Item]:
        """Every item, sorted by datetime then id, asset hrefs absolute."""
        return list(self.search())

    def get_item(self, item_id: str) -> pystac.Item:
        """The item with id ``item_id``; CatalogError if there is none."""
        found = self.search(ids=[item_id])
        if not found:
            raise CatalogError(f"no item {item_id!r} in {self.root}; list ids with Catalog.ids")
        return found[0]

    def search(self, **kwargs: Any) -> pystac.ItemCollection:
        """Same filters as :func:`orbitcube.catalog.query.search`, on this catalog's index."""
        from orbitcube.catalog.query import search

        return search(self, **kwargs)

    def materialise(self, rows: np.ndarray | Sequence[int]) -> list[pystac.Item]:
        """Items of the given index rows, in that order; asset and self hrefs absolute."""
        import stac_geoparquet.arrow as sga

        if len(rows) == 0:
            return []
        sub = self.take(rows)
        out = []
        for d in sga.stac_table_to_items(sub):
            out.append(pystac.Item.from_dict(self._resolve(d), preserve_dict=False))
        return out

    def absolute_href(self, href: str) -> str:
        """An asset href of this catalog as a read uses it: URLs and absolute paths as they are, relative local
        paths joined to the catalog's root and normalised (pystac would resolve them against the item's self
        link, which is under the root)."""
        if _is_url(href) or os.path.isabs(href):
            return href
        return os.path.normpath(os.path.abspath(self.root / href))

    def _resolve(self, d: dict) -> dict:
        when = d.get("properties", {}).get("datetime", "missing")
        d = drop_nones(d)
        if when is None:
            d["properties"]["datetime"] = None
        for a in d.get("assets", {}).values():
            a["href"] = self.absolute_href(a["href"])
        for ln in d.get("links", []):
            if ln.get("rel") == "self" and not _is_url(ln["href"]) and not os.path.isabs(ln["href"]):
                ln["href"] = str((self.root / ln["href"]).absolute())
        return d

    def info(self) -> dict:
        """Summary for ``orbitcube catalog info``: root, item count, index size, and per collection the item
        count, spatial extent (WGS84 bbox), temporal extent (ISO 8601) and asset keys."""
        colls = {}
        light = (
            self.columns([n for n in ("collection", "bbox", *_TIME_COLUMNS) if n in self.schema.names])
            if len(self)
            else pa.table({})
        )
        keys = sorted(self.schema.field("assets").type.names) if "assets" in self.schema.names else []
        for cid in self.collection_ids:
            mask = collection_mask(light, cid)
            n = int(np.count_nonzero(mask))
            ext = index_extent(light.filter(pa.array(mask))) if n else None
            colls[cid] = {
                "items": n,
                "bbox": ext[0] if ext else None,
                "interval": [t.isoformat() for t in ext[1]] if ext else None,
                "asset_keys": keys if n else [],
            }
        index = self.root / INDEX_NAME
        return {
            "root": str(self.root),
            "id": self.catalog_dict.get("id"),
            "items": len(self),
            "index": str(index) if index.exists() else None,
            "index_bytes": index.stat().st_size if index.exists() else 0,
            "collections": colls,
        }


_TIME_COLUMNS = ("datetime", "start_datetime", "end_datetime")


def collection_mask(table: pa.Table, cid: str) -> np.ndarray:
    """Boolean mask of the rows of an index table in collection ``cid``."""
    if table.num_rows == 0:
        return np.zeros(0, bool)
    return pc.fill_null(pc.equal(table.column("collection"), cid), False).to_numpy(zero_copy_only=False)


def index_extent(table: pa.Table) -> tuple[list[float], list[dt.datetime]]:
    """WGS84 bbox and [start, end] of the items in an index table."""
    b = table.column("bbox").combine_chunks()
    bbox = [
        float(pc.min(b.field("xmin")).as_py()),
        float(pc.min(b.field("ymin")).as_py()),
        float(pc.max(b.field("xmax")).as_py()),
        float(pc.max(b.field("ymax")).as_py()),
    ]
    times = []
    for name in _TIME_COLUMNS:
        if name in table.schema.names:
            col = table.column(name)
            for v in (pc.min(col).as_py(), pc.max(col).as_py()):
                if v is not None:
                    times.append(v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(str(v)))
    return bbox, [min(times), max(times)]


def _read_catalog_dict(root: Path) -> dict:
    path = root / "catalog.json"
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise CatalogError(
            f"no STAC catalog at {root}; give the folder holding catalog.json (create one with ingest)"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(f"cannot read {path}: {exc}; fix or re-create the catalog") from exc
    if d.get("type") not in ("Catalog", "Collection"):
        raise CatalogError(f"{path} is not a STAC catalog (type {d.get('type')!r}); give a catalog folder")
    return d


def _index_from_json(root: Path, policy: AccessPolicy | None = None) -> pa.Table:
    """Build the index by walking the JSON tree (for catalogs written by other tools); links out of the
    catalog's tree (``policy``, default its folder) are refused before they are read."""
    stac_io = guarded_stac_io(policy or AccessPolicy.for_catalog(root))
    with refusals():
        cat = pystac.read_file(str(root / "catalog.json"), stac_io=stac_io)
        found = list(cat.get_items(recursive=True))
    dicts = []
    for it in found:
        self_href = it.get_self_href()
        d = absolute_item_dict(it)
        rel = Path(os.path.relpath(self_href, root)).as_posix() if self_href else None
        dicts.append(relocate_item_dict(d, root, rel))
    return sort_table(index_table(dicts))


def open_catalog(path: str | Path, *, allow: Sequence[str] = ()) -> Catalog:
    """Open a catalog folder (or its ``catalog.json``) through its ``items.parquet`` index.

    A catalog without an index (written by another tool) is indexed in memory from its JSON files; write the
    index with :func:`reindex` to make later opens fast. Raises CatalogError if there is no readable catalog.
    Links and asset hrefs may point into the catalog's folder and into the ``allow`` entries only
    (:mod:`orbitcube.catalog.policy`): CatalogError naming the link or item otherwise (asset hrefs: when searched).
    """
    root = Path(path)
    if root.name.endswith(".json"):
        root = root.parent
    cat_dict = _read_catalog_dict(root)
    policy = AccessPolicy.for_catalog(root, allow)
    index = root / INDEX_NAME
    if index.exists():
        cat = Catalog(root, cat_dict, path=index, policy=policy)
        try:
            cat.schema  # noqa: B018 (reads and checks the parquet footer now, not at the first search)
        except (OSError, pa.ArrowException) as exc:
            raise CatalogError(
                f"cannot read index {index}: {exc}; rebuild it with reindex({str(root)!r})"
            ) from exc
        return cat
    log.info("%s has no %s; indexing its JSON files in memory", root, INDEX_NAME)
    try:
        table = _index_from_json(root, policy)
    except (pystac.STACError, json.JSONDecodeError, OSError, KeyError, TypeError, ValueError) as exc:
        raise CatalogError(
            f"cannot read the items of {root}: {exc}; list the broken files with `orbitcube catalog validate "
            f"{root}`, then fix or remove them"
        ) from exc
    return Catalog(root, cat_dict, table=table, policy=policy)


def reindex(path: str | Path) -> Catalog:
    """Rebuild ``items.parquet`` of a catalog from its JSON files (after editing them with other tools)."""
    root = Path(path)
    if root.name.endswith(".json"):
        root = root.parent
    cat_dict = _read_catalog_dict(root)
    policy = AccessPolicy.for_catalog(root)
    table = _index_from_json(root, policy)
    atomic_write_index(table, root / INDEX_NAME)
    return Catalog(root, cat_dict, table=table, policy=policy)


def catalog_info(source: str | Path | Catalog) -> dict:
    """:meth:`Catalog.info` of a catalog folder (for ``orbitcube catalog info``)."""
    cat = source if isinstance(source, Catalog) else open_catalog(source)
    return cat.info()


def item_records(items: Iterable[pystac.Item]) -> list[dict]:
    """Absolute-href dicts of items (what the index is built from), for in-memory search of item lists."""
    return [absolute_item_dict(it) for it in items]


__all__ = [
    "INDEX_NAME",
    "STRUCTURAL_RELS",
    "Catalog",
    "absolute_item_dict",
    "catalog_info",
    "collection_mask",
    "drop_nones",
    "index_extent",
    "item_records",
    "open_catalog",
    "reindex",
    "relocate_item_dict",
]
