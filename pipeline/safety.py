"""What orbitcube may delete or overwrite: only stores it created, never a folder that holds the user's work.

* A run store is recognised by its root ``zarr.json``: a Zarr group whose attributes carry ``orbitcube:store``
  (written by :func:`orbitcube.pipeline.sink.create_store`) or, for stores written before that marker existed, the
  provenance attributes ``orbitcube:fingerprint`` / ``orbitcube:provenance``; and whose top level holds nothing
  but Zarr nodes (``zarr.json`` and folders with a ``zarr.json``) and leftover ``*.partial`` files.
* Even such a store is never removed when it is, or contains, the recipe file, the catalog, the report folder,
  the working directory or the home directory.
* A COG export overwrites only a regular file that is a GeoTIFF, never a folder, a Zarr store or the source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from orbitcube.pipeline.errors import SinkError

#: root attribute written by :func:`orbitcube.pipeline.sink.create_store`: the store was created by orbitcube
STORE_MARKER = "orbitcube:store"
#: attributes that identify stores written by earlier orbitcube versions
LEGACY_MARKERS = ("orbitcube:fingerprint", "orbitcube:provenance")

#: the first bytes of a classic (II*\0, MM\0*) or BigTIFF (II+\0, MM\0+) file
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _root_attrs(path: str | Path, storage_options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The attributes of the Zarr group at ``path``, or None when there is no readable group metadata."""
    from orbitcube.catalog.storage import filesystem, is_remote

    meta = str(path).rstrip("/") + "/zarr.json"
    try:
        if is_remote(str(path)):
            raw = filesystem(meta, storage_options).cat_file(meta)
        else:
            raw = Path(meta).read_bytes()
        doc = json.loads(raw)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("node_type") != "group":
        return None
    attrs = doc.get("attributes") or {}
    return attrs if isinstance(attrs, dict) else None


def _foreign_entries(path: str | Path, storage_options: Mapping[str, Any] | None) -> list[str]:
    """Top-level entries of the store at ``path`` that are not Zarr nodes or leftover ``*.partial`` files."""
    from orbitcube.catalog.storage import filesystem, is_remote

    if not is_remote(str(path)):
        root = Path(path)
        return [
            p.name
            for p in sorted(root.iterdir())
            if not (
                p.name == "zarr.json"
                or p.name.endswith(".partial")
                or (p.is_dir() and not p.is_symlink() and (p / "zarr.json").is_file())
            )
        ]
    url = str(path).rstrip("/")
    fs = filesystem(url, storage_options)
    fs.invalidate_cache(url)  # s3fs/adlfs cache listings; the store may have changed since
    out = []
    for child in fs.ls(url, detail=False):
        name = str(child).rstrip("/").rsplit("/", 1)[-1]
        if name == "zarr.json" or name.endswith(".partial"):
            continue
        if not fs.exists(str(child).rstrip("/") + "/zarr.json"):
            out.append(name)
    return out


def is_orbitcube_store(path: str | Path, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether ``path`` (folder or ``az://`` / ``s3://`` URL) holds a Zarr store written by orbitcube and nothing
    else (see the module docstring)."""
    attrs = _root_attrs(path, storage_options)
    if attrs is None or not any(k in attrs for k in (STORE_MARKER, *LEGACY_MARKERS)):
        return False
    return not _foreign_entries(path, storage_options)


def _real(p: str | Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(p))))


def protected_paths(*extra: str | Path | None) -> list[Path]:
    """Paths a removed store must neither be nor contain: the working directory, the home directory and
    ``extra`` (recipe file, catalog, report folder; None and URLs are ignored)."""
    out = [_real(Path.cwd()), _real(Path.home())]
    for p in extra:
        text = str(p).removeprefix("file://") if p is not None else ""
        if text and "://" not in text:
            out.append(_real(text))
    return out


def check_removable(
    path: str | Path,
    storage_options: Mapping[str, Any] | None = None,
    *,
    protect: Iterable[str | Path | None] = (),
    only_if_exists: bool = False,
) -> None:
    """Raise SinkError unless the existing store at ``path`` may be deleted: an orbitcube store (see
    :func:`is_orbitcube_store`) that is not and does not contain any of ``protect``, the working directory or
    the home directory. An empty local folder needs only the second condition. With ``only_if_exists`` a
    missing ``path`` passes."""
    from orbitcube.catalog.storage import is_remote, redact
    from orbitcube.pipeline.sink import exists

    if only_if_exists and not exists(path, storage_options, ""):
        return
    shown = redact(str(path))
    if not is_remote(str(path)):
        real = _real(path)
        shown += f" (= {real})" if str(real) != str(path) else ""
        if Path(path).is_symlink():
            raise SinkError(
                f"refusing to delete {shown}: it is a symbolic link to {real}; set output.path to {real} itself"
            )
        for q in protected_paths(*protect):
            if q == real or real in q.parents or real == Path(real.anchor):
                raise SinkError(
                    f"refusing to delete {shown}: it contains {q} (the recipe, catalog, report folder, working "
                    "directory or home directory); set output.path to a new folder such as "
                    f"{Path(path) / 'cube.zarr'}"
                )
        if real.is_dir() and not any(real.iterdir()):
            return
        if not real.is_dir():
            raise SinkError(
                f"refusing to delete {shown}: it is a file, not a Zarr store; set output.path to a new folder"
            )
    if not is_orbitcube_store(path, storage_options):
        raise SinkError(
            f"refusing to delete {shown}: it is not a store written by orbitcube (no '{STORE_MARKER}' attribute "
            "in its zarr.json, or it holds other files); it may hold your data. Set output.path to a folder that "
            "does not exist yet, or delete it yourself if you no longer need it"
        )


def check_cog_target(
    target: str | Path,
    source: str | Path,
    *,
    overwrite: bool,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Raise SinkError unless a COG may be written at ``target`` for the cube ``source``: the target is not the
    source store, inside it or a folder containing it; an existing target is only replaced with ``overwrite``
    and only when it is a regular GeoTIFF file (never a folder, a Zarr store or any other file)."""
    from orbitcube.catalog.storage import filesystem, is_remote, redact

    shown = redact(str(target))
    remote = is_remote(str(target))
    if not remote and not is_remote(str(source)):
        t, s = _real(target), _real(source)
        if t == s or s in t.parents or t in s.parents:
            raise SinkError(
                f"--to-cog {shown} is the source store {redact(str(source))} or overlaps it; the COG must be a "
                "new .tif file outside the store (did you swap the store and the target?)"
            )
    elif str(target).rstrip("/") == str(source).rstrip("/") or str(target).startswith(
        str(source).rstrip("/") + "/"
    ):
        raise SinkError(f"--to-cog {shown} is inside the source store; choose a .tif outside it")
    fs = filesystem(str(target), storage_options) if remote else None
    exists = fs.exists(str(target)) if fs is not None else os.path.lexists(target)
    if not exists:
        return
    if not overwrite:
        raise SinkError(f"{shown} already exists; choose another path or pass overwrite=True (--overwrite)")
    is_dir = fs.isdir(str(target)) if fs is not None else Path(target).is_dir()
    if is_dir:
        raise SinkError(
            f"refusing to overwrite {shown}: it is a folder (a Zarr store or your files), not a GeoTIFF; "
            "choose a .tif file path"
        )
    if fs is None and not Path(target).is_file():
        raise SinkError(f"refusing to overwrite {shown}: it is not a regular file; choose a .tif file path")
    if fs is not None:
        head = fs.cat_file(str(target), start=0, end=4)
    else:
        with open(target, "rb") as f:
            head = f.read(4)
    if head not in _TIFF_MAGIC:
        raise SinkError(
            f"refusing to overwrite {shown}: it is not a GeoTIFF (it may be your data); choose another path"
        )


def recipe_path(recipe: Any) -> Path | None:
    """The recipe file when ``recipe`` (as given to :func:`orbitcube.pipeline.run.run_recipe`) names one, else None."""
    if isinstance(recipe, Path) or (isinstance(recipe, str) and "\n" not in recipe):
        p = Path(recipe)
        return p if p.is_file() else None
    return None


__all__ = [
    "LEGACY_MARKERS",
    "STORE_MARKER",
    "check_cog_target",
    "check_removable",
    "is_orbitcube_store",
    "protected_paths",
    "recipe_path",
]
