"""A self-contained STAC catalog on disk with a stac-geoparquet index kept in sync.

Layout under ``root``::

    catalog.json                      root catalog, one child link per collection
    items.parquet                     stac-geoparquet index of every item (what search reads)
    <collection>/collection.json      extents computed from its items
    <collection>/<id>/<id>.json       items; asset hrefs relative to the item file (absolute URLs stay URLs)

In the index, local asset hrefs and each item's ``self`` link are relative to ``root``, so the folder can be
moved or copied as a whole. Writes are staged: every file (items, index, collections, root catalog) is first
written in full to a temporary file beside its target; only when all of them exist are they renamed into place,
items -> index -> collections -> root catalog. An error while staging (disk full, a path that cannot be
created, an interrupt) removes the temporary files and leaves the catalog exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pystac

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.index import ItemIndex, atomic_write_index, index_table, sort_table, write_index
from orbitcube.catalog.policy import AccessPolicy, check_href, guarded_stac_io, refusals

log = logging.getLogger(__name__)

INDEX_NAME = "items.parquet"
_STRUCTURAL = {"self", "root", "parent", "collection", "item", "child"}


def _is_url(href: str) -> bool:
    return "://" in href


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


class _Staging:
    """Files written in full to temporary names first, renamed into place only by :meth:`commit`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staged: list[tuple[Path, Path]] = []
        self.new_dirs: list[Path] = []

    def _mkdir(self, folder: Path) -> None:
        missing = []
        for d in (folder, *folder.parents):
            if d.exists():
                break
            missing.append(d)
        folder.mkdir(parents=True, exist_ok=True)
        self.new_dirs += reversed(missing)

    def stage(self, path: Path, write) -> None:
        """Run ``write(tmp_path)`` for the file that will become ``path``."""
        try:
            self._mkdir(path.parent)
            tmp = _tmp_name(path)
            self.staged.append((tmp, path))
            write(tmp)
        except OSError as exc:
            raise CatalogError(
                f"cannot write {path}: {exc.strerror or exc}; check that the folder is writable, has free space "
                f"and holds no file where a folder must go. The catalog at {self.root} is unchanged"
            ) from exc

    def commit(self) -> None:
        for tmp, path in self.staged:
            os.replace(tmp, path)
        self.staged = []

    def abort(self) -> None:
        for tmp, _ in self.staged:
            tmp.unlink(missing_ok=True)
        for d in reversed(self.new_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        self.staged, self.new_dirs = [], []


def _dumps(d: dict) -> bytes:
    return (json.dumps(d, indent=2, ensure_ascii=False) + "\n").encode()


def _drop_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nones(v) for v in value]
    return value


def _absolute_dict(item: pystac.Item) -> dict:
    """The item as a dict with absolute asset hrefs (normalised paths or URLs) and no structural links."""
    d = item.to_dict(include_self_link=False, transform_hrefs=False)
    for key, a in d["assets"].items():
        href = item.assets[key].get_absolute_href() or a["href"]
        a["href"] = href if _is_url(href) else os.path.normpath(os.path.abspath(href))
    d["links"] = [ln for ln in d.get("links", []) if ln.get("rel") not in _STRUCTURAL]
    return d


def _comparable(d: dict) -> str:
    return json.dumps({k: v for k, v in d.items() if k != "links"}, sort_keys=True, default=str)


def _relocate(d: dict, root: Path, base: Path, self_href: str | None) -> dict:
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

    def _resolve(self, d: dict) -> dict:
        when = d.get("properties", {}).get("datetime", "missing")
        d = _drop_nones(d)
        if when is None:
            d["properties"]["datetime"] = None
        for a in d.get("assets", {}).values():
            if not _is_url(a["href"]) and not os.path.isabs(a["href"]):
                # absolute: pystac resolves a relative asset href against the item's (absolute) self link
                a["href"] = os.path.normpath(os.path.abspath(self.root / a["href"]))
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
            mask = _collection_mask(light, cid)
            n = int(np.count_nonzero(mask))
            ext = _extent(light.filter(pa.array(mask))) if n else None
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


def _present(table: pa.Table) -> set[str]:
    return set(table.column("collection").to_pylist()) if table.num_rows else set()


def _collection_mask(table: pa.Table, cid: str) -> np.ndarray:
    if table.num_rows == 0:
        return np.zeros(0, bool)
    return pc.fill_null(pc.equal(table.column("collection"), cid), False).to_numpy(zero_copy_only=False)


def _extent(table: pa.Table) -> tuple[list[float], list[dt.datetime]]:
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
        d = _absolute_dict(it)
        rel = Path(os.path.relpath(self_href, root)).as_posix() if self_href else None
        dicts.append(_relocate(d, root, root, rel))
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


@dataclass
class MergePlan:
    """Items to write into ``root``: ``new`` (added or replaced, absolute-href dicts), ids ``added`` and
    ``unchanged``, and the existing catalog (``None`` when ``root`` holds none yet)."""

    root: Path
    existing: Catalog | None
    new: dict[str, dict] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    collections: dict[str, pystac.Collection] = field(default_factory=dict)
    catalog_meta: dict[str, str] = field(default_factory=dict)


def merge_items(
    root: str | Path,
    items: Iterable[pystac.Item],
    *,
    overwrite: bool = False,
    collections: Iterable[pystac.Collection] | None = None,
) -> MergePlan:
    """Compare ``items`` with the catalog at ``root`` (if any): same id and content -> unchanged; new id ->
    added; same id, other content -> CatalogError naming the id, unless ``overwrite``. Nothing is written."""
    root = Path(root)
    existing = open_catalog(root) if (root / "catalog.json").exists() else None
    old_ids = dict(zip(existing.ids, range(len(existing)), strict=True)) if existing is not None else {}
    plan = MergePlan(root, existing, collections={c.id: c for c in collections or ()})
    given: dict[str, dict] = {}
    for it in items:
        if not it.collection_id:
            raise CatalogError(f"item {it.id!r} has no collection; set item.collection_id before writing it")
        d = _absolute_dict(it)
        if it.id in given:
            if _comparable(given[it.id]) != _comparable(d):
                raise CatalogError(
                    f"item id {it.id!r} is given twice with different content; give the scenes distinct ids"
                )
            continue
        given[it.id] = d
    known = [iid for iid in given if iid in old_ids]
    olds = existing.materialise([old_ids[i] for i in known]) if known else []
    same = {
        iid
        for iid, old in zip(known, olds, strict=True)
        if _comparable(_absolute_dict(old)) == _comparable(given[iid])
    }
    for iid, d in given.items():
        if iid in same:
            plan.unchanged.append(iid)
            continue
        if iid in old_ids and not overwrite:
            raise CatalogError(
                f"item {iid!r} already exists in {root} with different content; pass overwrite=True "
                "(CLI: --overwrite) to replace it, or give the new files another id"
            )
        plan.new[iid] = d
        plan.added.append(iid)
    return plan


def write_merged(plan: MergePlan) -> Catalog:
    """Write what :func:`merge_items` planned; a no-op (not a byte written) when nothing changed."""
    root, existing = plan.root, plan.existing
    if existing is not None and not plan.new and not plan.collections and not _meta_changed(existing, plan):
        existing.policy = None  # like the catalog written below: the caller's own items, not checked
        return existing
    files: dict[Path, bytes] = {}
    new_rows = []
    for iid, d in sorted(plan.new.items()):
        item_dir = root / d["collection"] / iid
        rel_self = f"{d['collection']}/{iid}/{iid}.json"
        item_json = _relocate(d, root, item_dir, None)
        item_json["links"] = [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            *item_json["links"],
        ]
        files[item_dir / f"{iid}.json"] = _dumps(item_json)
        new_rows.append(_relocate(d, root, root, rel_self))
    table = _merge_tables(existing, new_rows, set(plan.new))
    cat_dict = _catalog_dict(root, existing, plan)
    coll_ids = sorted(set(_present(table)) | set(existing.collection_ids if existing else ()))
    coll_ids = [c for c in coll_ids if c in _present(table)]
    for cid in coll_ids:
        files[root / cid / "collection.json"] = _dumps(_collection_dict(root, cid, table, existing, plan))
    cat_dict["links"] = [ln for ln in cat_dict.get("links", []) if ln.get("rel") not in _STRUCTURAL] + [
        {"rel": "root", "href": "./catalog.json", "type": "application/json"},
        *(
            {"rel": "child", "href": f"./{cid}/collection.json", "type": "application/json"}
            for cid in coll_ids
        ),
    ]
    files[root / "catalog.json"] = _dumps(cat_dict)
    moved = _moved_items(existing, plan)
    # stage every file in full (items, index, collections, root catalog), then rename them into place
    staging = _Staging(root)
    try:
        for path, data in files.items():
            if path.name not in ("collection.json", "catalog.json"):
                staging.stage(path, lambda tmp, data=data: tmp.write_bytes(data))
        staging.stage(root / INDEX_NAME, lambda tmp: write_index(table, tmp))
        for path, data in files.items():
            if path.name in ("collection.json", "catalog.json"):
                staging.stage(path, lambda tmp, data=data: tmp.write_bytes(data))
        staging.commit()
    except BaseException:
        staging.abort()
        raise
    for old in moved:
        old.unlink(missing_ok=True)
    return Catalog(root, cat_dict, table=table)


def _meta_changed(existing: Catalog, plan: MergePlan) -> bool:
    return any(existing.catalog_dict.get(k) != v for k, v in plan.catalog_meta.items())


def _moved_items(existing: Catalog | None, plan: MergePlan) -> list[Path]:
    """JSON files of replaced items whose collection changed (removed after the new files are in place)."""
    if existing is None or not plan.new:
        return []
    ids = existing.column("id").to_pylist()
    colls = existing.column("collection").to_pylist()
    return [
        plan.root / c / i / f"{i}.json"
        for i, c in zip(ids, colls, strict=True)
        if i in plan.new and plan.new[i]["collection"] != c
    ]


def _merge_tables(existing: Catalog | None, new_rows: list[dict], replaced: set[str]) -> pa.Table:
    new = index_table(new_rows) if new_rows else None
    if existing is None or len(existing) == 0:
        if new is None:
            raise CatalogError("no items to write; ingest at least one readable scene")
        return sort_table(new)
    old = existing.table
    if replaced:
        keep = pc.invert(pc.is_in(old.column("id"), pa.array(sorted(replaced)))).to_numpy(
            zero_copy_only=False
        )
        old = old.filter(pa.array(keep))
    if new is None:
        return sort_table(old)
    try:
        merged = pa.concat_tables([old, new], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        import stac_geoparquet.arrow as sga

        merged = index_table([_drop_nones(d) for d in sga.stac_table_to_items(old)] + new_rows)
    return sort_table(merged)


def _catalog_dict(root: Path, existing: Catalog | None, plan: MergePlan) -> dict:
    if existing is not None:
        d = dict(existing.catalog_dict)
    else:
        d = pystac.Catalog(
            id=plan.catalog_meta.get("id") or root.name or "catalog",
            description=plan.catalog_meta.get("description") or "Scenes catalogued by orbitcube",
            title=plan.catalog_meta.get("title") or "orbitcube catalog",
        ).to_dict(include_self_link=False, transform_hrefs=False)
    for key in ("id", "title", "description"):
        if plan.catalog_meta.get(key):
            d[key] = plan.catalog_meta[key]
    return d


def _collection_dict(
    root: Path, cid: str, table: pa.Table, existing: Catalog | None, plan: MergePlan
) -> dict:
    if cid in plan.collections:
        coll = plan.collections[cid].clone()
    elif existing is not None and cid in existing.collection_ids:
        coll = existing.collections[cid].clone()
    else:
        coll = pystac.Collection(
            id=cid,
            description=f"{cid}: scenes catalogued by orbitcube",
            extent=pystac.Extent(pystac.SpatialExtent([[0, 0, 0, 0]]), pystac.TemporalExtent([[None, None]])),
            license="other",
        )
    sub = table.filter(pa.array(_collection_mask(table, cid)))
    bbox, (t0, t1) = _extent(sub)
    coll.extent = pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[t0, t1]]))
    d = coll.to_dict(include_self_link=False, transform_hrefs=False)
    order = (
        np.lexsort(
            (np.asarray(sub.column("id").to_pylist(), dtype=object), sub.column("datetime").to_numpy())
        )
        if "datetime" in sub.schema.names
        else np.argsort(np.asarray(sub.column("id").to_pylist(), dtype=object))
    )
    ids = sub.column("id").to_pylist()
    d["links"] = [ln for ln in d.get("links", []) if ln.get("rel") not in _STRUCTURAL] + [
        {"rel": "root", "href": "../catalog.json", "type": "application/json"},
        {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
        *(
            {"rel": "item", "href": f"./{ids[i]}/{ids[i]}.json", "type": "application/geo+json"}
            for i in order
        ),
    ]
    return d


def write_catalog(
    items: Iterable[pystac.Item],
    root: str | Path,
    collections: Iterable[pystac.Collection] | None = None,
    *,
    overwrite: bool = False,
    catalog_id: str | None = None,
    title: str | None = None,
    description: str | None = None,
) -> Catalog:
    """Write ``items`` into a self-contained catalog at ``root`` (created, or merged into the one there).

    One collection per ``item.collection_id``: metadata from ``collections`` when given (e.g. ``item_assets``,
    ``summaries``), else from the existing ``collection.json``, else a minimal one; extents are always computed
    from the items (WGS84 bbox; datetime range). Items already present with the same content are left alone;
    same id, other content -> CatalogError unless ``overwrite``. ``items.parquet`` is rewritten in step.
    Returns the opened :class:`Catalog`.
    """
    plan = merge_items(root, items, overwrite=overwrite, collections=collections)
    plan.catalog_meta = {
        k: v for k, v in (("id", catalog_id), ("title", title), ("description", description)) if v
    }
    return write_merged(plan)


def catalog_info(source: str | Path | Catalog) -> dict:
    """:meth:`Catalog.info` of a catalog folder (for ``orbitcube catalog info``)."""
    cat = source if isinstance(source, Catalog) else open_catalog(source)
    return cat.info()


def item_records(items: Iterable[pystac.Item]) -> list[dict]:
    """Absolute-href dicts of items (what the index is built from), for in-memory search of item lists."""
    return [_absolute_dict(it) for it in items]


__all__ = [
    "INDEX_NAME",
    "Catalog",
    "MergePlan",
    "catalog_info",
    "merge_items",
    "open_catalog",
    "reindex",
    "write_catalog",
    "write_merged",
]
