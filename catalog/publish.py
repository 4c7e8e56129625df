"""Publish a catalog on disk to object storage (``az://``, ``s3://``, any fsspec URL) as a static STAC catalog.

A catalog written by :mod:`orbitcube.catalog.store` is self-contained (relative hrefs), so a byte copy of its folder is a
valid static catalog at the new place: item JSON, collections, the columnar index and, when the scenes live
inside the folder (as the simulator writes them), the COGs. The pipeline reads it back with a recipe
``catalog: {source: az://.../catalog.json, kind: static}`` and the same storage options.

Readers never see a half-published catalog: every other file is uploaded (and retried on transient errors)
before the root ``catalog.json``, which is uploaded last; a failed publish leaves the previous root (if any) in
place. Credentials come from ``storage_options`` or the environment (:mod:`orbitcube.catalog.storage`) and are never written
into the STAC files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orbitcube.catalog.errors import CatalogError

log = logging.getLogger(__name__)


#: URL schemes a catalog can be published to (object stores fsspec writes to)
PUBLISH_SCHEMES = ("az", "azure", "abfs", "abfss", "s3", "gs", "gcs")


def publish_catalog(
    source: str | Path,
    url: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    include: Callable[[str], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Copy the catalog folder ``source`` (or the folder of its ``catalog.json``) to the prefix ``url``.

    ``include`` filters the files to copy by their path relative to the folder (POSIX, e.g.
    ``"s2/S2A_.../B04.tif"``; JSON and the index are always copied); ``progress(done, total)`` is called after
    each file. Returns the URL of the published ``catalog.json``. Raises CatalogError (URL redacted) when the
    folder is no catalog or the store refuses a write."""
    from orbitcube.catalog.failures import retry
    from orbitcube.catalog.storage import filesystem, is_remote, redact, scheme

    src = Path(source)
    root = src.parent if src.is_file() else src
    top = root / "catalog.json"
    if not top.is_file():
        raise CatalogError(
            f"{source} is not a catalog folder (no catalog.json); pass the folder ingest wrote"
        )
    if not is_remote(url) or scheme(url) not in PUBLISH_SCHEMES:
        raise CatalogError(
            f"{redact(url)!r} is not an object-store URL; use az://container/prefix or s3://bucket/prefix"
        )
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        raise CatalogError(
            f"{redact(url)}: the URL carries credentials (user:secret@); give them as storage options or through "
            "the AZURE_STORAGE_* / AWS_* environment variables, never in the URL"
        )
    prefix = url.rstrip("/")
    if prefix.endswith("/catalog.json"):
        prefix = prefix.removesuffix("/catalog.json")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    files = [
        p
        for p in files
        if p != top
        and (p.suffix in (".json", ".parquet") or include is None or include(p.relative_to(root).as_posix()))
    ]
    fs = filesystem(prefix, storage_options)
    total = len(files) + 1
    for n, path in enumerate([*files, top], start=1):  # the root last: readers see the old one until then
        target = f"{prefix}/{path.relative_to(root).as_posix()}"
        retry(
            lambda p=path, t=target: fs.put_file(str(p), t),
            url=target,
            action="upload",
            error=CatalogError,
        )
        if progress is not None:
            progress(n, total)
    out = f"{prefix}/catalog.json"
    log.info("published %d files of %s to %s", total, root, redact(out))
    return out


__all__ = [
    "PUBLISH_SCHEMES",
    "publish_catalog",
]
