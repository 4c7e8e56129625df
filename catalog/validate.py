"""Offline validation of STAC items, collections and catalogs: the core schemas and the extensions they use.

Core: the STAC 1.1.0 Item / Collection / Catalog JSON Schemas that pystac ships (with GeoJSON), resolved from a
local ``referencing`` registry, so no ``$ref`` ever reaches the network. Extensions: ``catalog/schemas/*.json``,
orbitcube's own renditions of the field rules of eo, projection, raster, view, sat, grid, classification and file
(types, ranges, enums, shapes), applied to item properties and to every asset, for whatever version the
document declares. An extension that is not shipped is reported as a warning, not silently passed.

Also checked: fields of a known extension used without listing it in ``stac_extensions``. Every problem names
the document id, the field path (``properties.eo:cloud_cover``, ``assets.B04.raster:bands[0].data_type``) and
what is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import pystac

from orbitcube.catalog.errors import CatalogError

if TYPE_CHECKING:
    from orbitcube.catalog.policy import AccessPolicy

CORE_VERSION = "1.1.0"
_CORE = "https://schemas.stacspec.org/v1.1.0/{kind}-spec/json-schema/{kind}.json"
_EXT_URL = re.compile(r"^https://stac-extensions\.github\.io/([a-z0-9-]+)/v[0-9][^/]*/schema\.json$")
_PREFIX = {
    "eo": "eo",
    "proj": "projection",
    "raster": "raster",
    "view": "view",
    "sat": "sat",
    "grid": "grid",
    "classification": "classification",
    "file": "file",
}


@dataclass(frozen=True)
class Problem:
    """One validation finding: which document, which field, what is wrong, and how bad."""

    id: str
    field: str
    message: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        return f"{self.severity}: {self.id}: {self.field or '(document)'}: {self.message}"


@lru_cache(maxsize=1)
def _registry():
    from pystac.validation.local_validator import get_local_schema_cache
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    resources_ = [
        (uri, Resource.from_contents(doc, default_specification=DRAFT7))
        for uri, doc in get_local_schema_cache().items()
    ]
    return Registry().with_resources(resources_)


@lru_cache(maxsize=16)
def _extension_schema(name: str) -> dict | None:
    try:
        text = resources.files("orbitcube.catalog").joinpath("schemas", f"{name}.json").read_text()
    except FileNotFoundError:
        return None
    return json.loads(text)


def _validator(schema: dict):
    from jsonschema import Draft7Validator

    return Draft7Validator(schema, registry=_registry(), format_checker=Draft7Validator.FORMAT_CHECKER)


def _path(err) -> str:
    out = ""
    for p in err.absolute_path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _leaf_errors(err) -> Iterable:
    """The most specific errors of a (possibly nested oneOf/anyOf/allOf) failure."""
    if err.context:
        best = {}
        for sub in err.context:
            for leaf in _leaf_errors(sub):
                best.setdefault((tuple(leaf.absolute_path), leaf.message), leaf)
        return best.values()
    return [err]


def validate_dict(doc: dict) -> list[Problem]:
    """Problems of one STAC document (Item, Collection or Catalog as a JSON dict)."""
    doc_id = str(doc.get("id", "?"))
    kind = {"Feature": "item", "Collection": "collection", "Catalog": "catalog"}.get(doc.get("type", ""))
    if kind is None:
        return [Problem(doc_id, "type", f"{doc.get('type')!r} is not Feature (Item), Collection or Catalog")]
    problems: list[Problem] = []
    version = doc.get("stac_version")
    if version != CORE_VERSION:
        problems.append(
            Problem(
                doc_id,
                "stac_version",
                f"{version!r}: validated against the STAC {CORE_VERSION} schemas",
                "warning",
            )
        )
        doc = {**doc, "stac_version": CORE_VERSION}
    seen: set[tuple[str, str]] = set()
    for err in _validator({"$ref": _CORE.format(kind=kind)}).iter_errors(doc):
        for leaf in _leaf_errors(err):
            key = (_path(leaf), leaf.message)
            if key not in seen:
                seen.add(key)
                problems.append(Problem(doc_id, key[0], leaf.message))
    declared = set()
    for url in doc.get("stac_extensions", []) or []:
        m = _EXT_URL.match(str(url))
        name = m.group(1) if m else None
        schema = _extension_schema(name) if name else None
        if schema is None:
            problems.append(
                Problem(
                    doc_id,
                    "stac_extensions",
                    f"{url}: no offline schema for this extension; not checked",
                    "warning",
                )
            )
            continue
        declared.add(name)
        for err in _validator(schema).iter_errors(doc):
            for leaf in _leaf_errors(err):
                problems.append(Problem(doc_id, _path(leaf), f"{leaf.message} ({name} extension)"))
    problems += _undeclared(doc_id, doc, declared)
    return problems


def _undeclared(doc_id: str, doc: dict, declared: set[str]) -> list[Problem]:
    places = [("properties", doc.get("properties") or {})]
    places += [(f"assets.{k}", a) for k, a in (doc.get("assets") or {}).items() if isinstance(a, dict)]
    out = []
    for where, fields in places:
        for key in fields:
            prefix = key.split(":", 1)[0] if ":" in key else None
            ext = _PREFIX.get(prefix or "")
            if ext and ext not in declared and (ext, key) not in {(p.message, p.field) for p in out}:
                out.append(
                    Problem(
                        doc_id,
                        f"{where}.{key}",
                        f"uses the {ext} extension, which stac_extensions does not list",
                    )
                )
    return out


def validate_items(items: Iterable[pystac.Item | dict]) -> list[Problem]:
    """Problems of every item (pystac Items or JSON dicts), in order; an empty list means all valid."""
    out: list[Problem] = []
    for it in items:
        out += validate_dict(it.to_dict(transform_hrefs=False) if isinstance(it, pystac.STACObject) else it)
    return out


#: links orbitcube follows when it walks a catalog (others, e.g. license or via, are never read)
_FOLLOWED = ("child", "item", "parent", "root", "collection")


def reference_problems(doc: dict, where: str, policy: AccessPolicy) -> list[Problem]:
    """Links that walking the document would follow, and asset hrefs, that leave what ``policy``
    (:class:`orbitcube.catalog.policy.AccessPolicy`) allows; ``where`` is the document's own path or URL (relative hrefs
    are resolved against it)."""
    import os

    from orbitcube.catalog.policy import suggestion, violation
    from orbitcube.catalog.storage import redact

    doc_id = str(doc.get("id", "?"))
    refs = [
        (f"links[{i}]", f"{ln.get('rel')} link", ln.get("href"))
        for i, ln in enumerate(doc.get("links") or [])
        if isinstance(ln, dict) and ln.get("rel") in _FOLLOWED
    ]
    refs += [
        (f"assets.{k}.href", f"asset {k!r}", a.get("href"))
        for k, a in (doc.get("assets") or {}).items()
        if isinstance(a, dict)
    ]
    out = []
    for field_, what, href in refs:
        if not isinstance(href, str):
            continue
        full = href if "://" in href or os.path.isabs(href) else os.path.join(os.path.dirname(where), href)
        why = violation(full, policy)
        if why is not None:
            hint = redact(suggestion(full))
            out.append(
                Problem(
                    doc_id,
                    field_,
                    f"{what} {redact(href)} is {why}; allow it with --allow {hint} if you trust it",
                )
            )
    return out


def validate_catalog(path: str | Path, *, allow: Iterable[str] = ()) -> list[Problem]:
    """Problems of every JSON document of a catalog on disk (a folder or its ``catalog.json``): the root catalog,
    each collection and each item, read as they are stored (no pystac normalisation). Offline. Also reported:
    links and asset hrefs that leave the catalog's folder and the ``allow`` entries (:mod:`orbitcube.catalog.policy`), and
    JSON files that are symlinks to outside the folder (not read)."""
    from orbitcube.catalog.policy import AccessPolicy

    root = Path(path)
    root = root.parent if root.is_file() else root
    if not (root / "catalog.json").is_file():
        raise CatalogError(f"no catalog.json in {root}; give a catalog folder or its catalog.json")
    policy = AccessPolicy.for_catalog(root, allow)
    out: list[Problem] = []
    for f in sorted(root.rglob("*.json")):
        name = str(f.relative_to(root))
        why = violation_of_file(f, policy)
        if why is not None:
            out.append(Problem(name, "", why))
            continue
        try:
            doc = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            out.append(Problem(name, "", f"unreadable JSON: {exc}"))
            continue
        if isinstance(doc, dict) and doc.get("type") in ("Feature", "Collection", "Catalog"):
            out += validate_dict(doc)
            out += reference_problems(doc, str(f), policy)
    return out


def violation_of_file(f: Path, policy: AccessPolicy) -> str | None:
    """Why the file ``f`` found under a catalog folder must not be read (a symlink out of it), or None."""
    from orbitcube.catalog.policy import violation

    why = violation(str(f), policy)
    return None if why is None else f"a link to a file {why}; not read"


__all__ = [
    "CORE_VERSION",
    "Problem",
    "reference_problems",
    "validate_catalog",
    "validate_dict",
    "validate_items",
    "violation_of_file",
]
