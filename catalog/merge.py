"""Write items into a self-contained catalog folder: merge with the catalog there, then write all or nothing.

:func:`write_catalog` (and :func:`orbitcube.catalog.items.ingest`) first compare the items with the catalog at
``root`` (:func:`merge_items`: unchanged, added, or a conflict), then write what changed
(:func:`write_merged`). Writes are staged: every file (items, index, collections, root catalog) is first
written in full to a temporary file beside its target; only when all of them exist are they renamed into place,
items -> index -> collections -> root catalog. An error while staging (disk full, a path that cannot be
created, an interrupt) removes the temporary files and leaves the catalog exactly as it was. The layout is
described in :mod:`orbitcube.catalog.store`, which reads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pystac

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.index import index_table, sort_table, write_index
from orbitcube.catalog.store import (
    INDEX_NAME,
    STRUCTURAL_RELS,
    Catalog,
    absolute_item_dict,
    collection_mask,
    drop_nones,
    index_extent,
    open_catalog,
    relocate_item_dict,
)


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

    def stage(self, path: Path, write: Callable[[Path], object]) -> None:
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


def _comparable(d: dict) -> str:
    return json.dumps({k: v for k, v in d.items() if k != "links"}, sort_keys=True, default=str)


def _present(table: pa.Table) -> set[str]:
    return set(table.column("collection").to_pylist()) if table.num_rows else set()


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
        d = absolute_item_dict(it)
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
        if _comparable(absolute_item_dict(old)) == _comparable(given[iid])
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
        item_json = relocate_item_dict(d, item_dir, None)
        item_json["links"] = [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            *item_json["links"],
        ]
        files[item_dir / f"{iid}.json"] = _dumps(item_json)
        new_rows.append(relocate_item_dict(d, root, rel_self))
    table = _merge_tables(existing, new_rows, set(plan.new))
    cat_dict = _catalog_dict(root, existing, plan)
    coll_ids = sorted(set(_present(table)) | set(existing.collection_ids if existing else ()))
    coll_ids = [c for c in coll_ids if c in _present(table)]
    for cid in coll_ids:
        files[root / cid / "collection.json"] = _dumps(_collection_dict(root, cid, table, existing, plan))
    cat_dict["links"] = [ln for ln in cat_dict.get("links", []) if ln.get("rel") not in STRUCTURAL_RELS] + [
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

        merged = index_table([drop_nones(d) for d in sga.stac_table_to_items(old)] + new_rows)
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
    sub = table.filter(pa.array(collection_mask(table, cid)))
    bbox, (t0, t1) = index_extent(sub)
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
    d["links"] = [ln for ln in d.get("links", []) if ln.get("rel") not in STRUCTURAL_RELS] + [
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


__all__ = ["MergePlan", "merge_items", "write_catalog", "write_merged"]
