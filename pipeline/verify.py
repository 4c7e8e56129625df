"""Chunk checksums of run stores: recorded per tile at write time, checked by ``orbitcube verify`` and on resume.

When a tile is recorded as complete (:func:`orbitcube.pipeline.sink.mark_tile_done`), the SHA-256 and size of the stored
(compressed) bytes of each of its chunks, per variable, are written beside the tile marker, in the store itself
(local folders and ``az://`` / ``s3://`` stores alike), as ``tile_done/checksums/<tile_y>.<tile_x>.json``:
``{"algorithm": "sha256", "tile": [i, j], "chunks": {"ndvi/c/0/1/2": {"sha256": "...", "size": 1234}, ...}}``.
A chunk that is all fill value (NaN) is not stored by Zarr; it is recorded as ``null`` (it must stay absent).

:func:`verify_store` reads every chunk of every complete tile back and reports each chunk that is missing,
truncated, changed (bit flips) or present where none was written, naming the variable, the chunk key and the
tile. A resumed run (:func:`recheck_tiles`) does the same for the tiles it would skip, and rewrites the damaged
ones. Tiles completed before checksums existed cannot be checked and are reported as such.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orbitcube.catalog.errors import OrbitcubeError
from orbitcube.pipeline.errors import SinkError

if TYPE_CHECKING:
    import zarr

log = logging.getLogger(__name__)

Tile = tuple[int, int]
ALGORITHM = "sha256"
#: where the per-tile checksum documents live inside the store (beside the ``tile_done`` markers)
CHECKSUM_PREFIX = "tile_done/checksums"
#: threads reading chunks back (I/O bound: local disks and object stores both gain from a few in parallel)
READ_THREADS = 8


@dataclass(frozen=True)
class ChunkProblem:
    """One damaged chunk: the tile it belongs to, its variable, its store key (``ndvi/c/0/1/2``), the kind of
    damage ("missing", "truncated", "changed", "unexpected") and a human-readable detail."""

    tile: Tile
    variable: str
    key: str
    kind: str
    detail: str

    def __str__(self) -> str:
        where = f"tile {self.tile[0]}-{self.tile[1]}"
        if not self.variable:  # the tile's checksum record itself
            return f"{self.key} ({where}): {self.detail}"
        return f"chunk {self.key} (variable {self.variable!r}, {where}): {self.detail}"


@dataclass
class VerifyReport:
    """What :func:`verify_store` found: tile counts, chunks checked, the damaged chunks and the complete tiles
    that carry no checksums (written before orbitcube recorded them)."""

    store: str
    tiles_total: int
    tiles_complete: int
    chunks_checked: int
    problems: list[ChunkProblem] = field(default_factory=list)
    unrecorded: list[Tile] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no checked chunk is damaged."""
        return not self.problems

    @property
    def damaged_tiles(self) -> list[Tile]:
        """The tiles with at least one damaged chunk, sorted."""
        return sorted({p.tile for p in self.problems})

    def summary(self) -> str:
        """One line: what was checked and the verdict."""
        head = (
            f"{self.store}: {self.tiles_complete} of {self.tiles_total} tiles complete, "
            f"{self.chunks_checked} chunks checked in {self.seconds:.2f} s"
        )
        if self.unrecorded:
            head += (
                f", {len(self.unrecorded)} complete tile(s) without checksums (written by an older orbitcube)"
            )
        if self.ok:
            return head + ": ok"
        return head + f": {len(self.problems)} damaged chunk(s) in {len(self.damaged_tiles)} tile(s)"

    def raise_for_problems(self) -> None:
        """Raise SinkError (one line) naming the damaged chunks and how to repair them, if there are any."""
        if self.ok:
            return
        shown = "; ".join(map(str, self.problems[:5]))
        more = f"; and {len(self.problems) - 5} more" if len(self.problems) > 5 else ""
        raise SinkError(
            f"{self.store}: {len(self.problems)} damaged chunk(s) in {len(self.damaged_tiles)} tile(s): "
            f"{shown}{more}; rerun the recipe (orbitcube run RECIPE) to rewrite the damaged tiles"
        )


class _Keys:
    """Byte access to the keys of a store (local folder or object-store URL), retried on transient errors."""

    def __init__(self, path: str | Path, storage_options: Mapping[str, Any] | None) -> None:
        from orbitcube.catalog.storage import filesystem, is_remote, redact

        self.remote = is_remote(str(path))
        self.root = str(path).rstrip("/")
        self.shown = redact(self.root)
        self.fs = filesystem(self.root, storage_options) if self.remote else None

    def get(self, key: str) -> bytes | None:
        """The bytes stored under ``key``, or None when there is no such key."""
        from orbitcube.catalog.failures import retry

        if self.fs is None:
            try:
                return (Path(self.root) / key).read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                return None
        url = f"{self.root}/{key}"

        def cat() -> bytes | None:
            try:
                return self.fs.cat_file(url)
            except FileNotFoundError:
                return None

        return retry(cat, url=url, action="read", error=SinkError)

    def put(self, key: str, data: bytes) -> None:
        """Write ``key`` atomically (local: a ``*.partial`` file renamed into place; object stores: one PUT)."""
        from orbitcube.catalog.failures import retry

        if self.fs is None:
            dest = Path(self.root) / key
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f"{dest.name}.{uuid.uuid4().hex}.partial")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            return
        url = f"{self.root}/{key}"
        retry(lambda: self.fs.pipe_file(url, data), url=url, action="write", error=SinkError)

    def delete(self, key: str) -> None:
        """Remove ``key`` if it exists."""
        if self.fs is None:
            (Path(self.root) / key).unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(f"{self.root}/{key}")


def _open_group(path: str | Path, storage_options: Mapping[str, Any] | None):
    import zarr

    from orbitcube.catalog.storage import redact
    from orbitcube.pipeline.sink import TILE_VAR, exists, zarr_target

    target, shown = zarr_target(path, storage_options)
    if not exists(path, storage_options):
        raise SinkError(f"no Zarr store at {shown}; check the path")
    try:
        group = zarr.open_group(target, mode="r", zarr_format=3)
        shape = tuple(group.attrs["orbitcube:tile_shape"])
        has_markers = TILE_VAR in group
    except KeyError as exc:
        raise SinkError(
            f"{shown} is not an orbitcube run store (no {exc} metadata); only stores written by `orbitcube run` "
            "carry tile checksums"
        ) from exc
    except Exception as exc:  # zarr raises several types for unreadable metadata
        raise SinkError(
            f"{shown}: cannot read the store's metadata ({redact(exc)}); it may be damaged"
        ) from exc
    if len(shape) != 2 or not has_markers:
        raise SinkError(f"{shown} has no tile markers ({TILE_VAR}); it was not written by `orbitcube run`")
    return group


def tile_chunk_keys(group: zarr.Group, tile: Tile) -> list[tuple[str, str]]:
    """(variable, store key) of every chunk of tile ``tile`` = (tile_y, tile_x), over all the store's (..., y, x)
    arrays and all chunks along their leading axes."""
    import itertools

    from orbitcube.pipeline.sink import TILE_VAR

    out = []
    for name, arr in sorted(group.arrays()):
        dims = tuple(arr.metadata.dimension_names or ())
        if name == TILE_VAR or arr.ndim < 2 or dims[-2:] != ("y", "x"):
            continue
        lead = [range(n) for n in arr.cdata_shape[:-2]]
        for coords in itertools.product(*lead):
            out.append((name, f"{name}/{arr.metadata.encode_chunk_key((*coords, *tile))}"))
    return out


def _digest(data: bytes | None) -> dict[str, Any] | None:
    return None if data is None else {ALGORITHM: hashlib.sha256(data).hexdigest(), "size": len(data)}


def _checksum_key(tile: Tile) -> str:
    return f"{CHECKSUM_PREFIX}/{tile[0]}.{tile[1]}.json"


def record_tile_checksums(
    path: str | Path, tile: Tile, storage_options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Read back the stored chunks of ``tile`` and write their checksums beside its marker; return the record.
    Called once the tile's writes have finished and before it is marked complete."""
    keys = _Keys(path, storage_options)
    group = _open_group(path, storage_options)
    names = [k for _, k in tile_chunk_keys(group, tile)]
    with ThreadPoolExecutor(READ_THREADS) as pool:
        sums = dict(zip(names, pool.map(lambda k: _digest(keys.get(k)), names), strict=True))
    doc = {"algorithm": ALGORITHM, "tile": list(tile), "chunks": sums}
    keys.put(_checksum_key(tile), json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    return doc


def _check_chunk(keys: _Keys, tile: Tile, variable: str, key: str, want: Any) -> ChunkProblem | None:
    got = _digest(keys.get(key))
    if got == want:
        return None
    if want is None:
        return ChunkProblem(
            tile, variable, key, "unexpected", "present, but none was written (all fill value)"
        )
    if got is None:
        return ChunkProblem(tile, variable, key, "missing", "missing (deleted?)")
    if got["size"] < want["size"]:
        return ChunkProblem(
            tile, variable, key, "truncated", f"truncated ({got['size']} of {want['size']} bytes)"
        )
    return ChunkProblem(tile, variable, key, "changed", f"{ALGORITHM} mismatch (corrupted bytes)")


def verify_tiles(
    path: str | Path,
    tiles: Iterable[Tile],
    storage_options: Mapping[str, Any] | None = None,
    variables: Collection[str] | None = None,
) -> tuple[list[ChunkProblem], list[Tile], int]:
    """Check the chunks of ``tiles`` against their recorded checksums: (damaged chunks, tiles without a checksum
    record, chunks checked), for all (..., y, x) variables or only ``variables``. A tile whose record is missing or unreadable is damaged (stores created with the ``orbitcube:store`` marker record every tile)."""
    keys = _Keys(path, storage_options)
    group = _open_group(path, storage_options)
    jobs: list[tuple[Tile, str, str, Any]] = []
    problems: list[ChunkProblem] = []
    unrecorded: list[Tile] = []
    from orbitcube.pipeline.safety import STORE_MARKER

    recorded_by_version = STORE_MARKER in group.attrs  # this store records checksums for every tile
    for tile in sorted(tiles):
        raw = keys.get(_checksum_key(tile))
        if raw is None and recorded_by_version:
            problems.append(ChunkProblem(tile, "", _checksum_key(tile), "missing", "checksum record missing"))
            continue
        if raw is None:
            unrecorded.append(tile)
            continue
        try:
            recorded = json.loads(raw)["chunks"]
        except (ValueError, KeyError, TypeError):
            problems.append(
                ChunkProblem(tile, "", _checksum_key(tile), "changed", "checksum record unreadable")
            )
            continue
        for variable, key in tile_chunk_keys(group, tile):
            if variables is not None and variable not in variables:
                continue
            if key not in recorded:
                problems.append(ChunkProblem(tile, variable, key, "missing", "not in the checksum record"))
            else:
                jobs.append((tile, variable, key, recorded[key]))
    with ThreadPoolExecutor(READ_THREADS) as pool:
        found = pool.map(lambda j: _check_chunk(keys, *j), jobs)
        problems += [p for p in found if p is not None]
    problems.sort(key=lambda p: (p.tile, p.key))
    return problems, unrecorded, len(jobs)


def verify_store(
    path: str | Path,
    storage_options: Mapping[str, Any] | None = None,
    variables: Collection[str] | None = None,
) -> VerifyReport:
    """Verify every complete tile of the run store at ``path`` (folder or ``az://`` / ``s3://`` URL) against
    the chunk checksums recorded when it was written (all variables, or only ``variables``). Reads every stored
    chunk of those tiles once. Raises
    SinkError when ``path`` is no orbitcube run store; damaged chunks are returned, not raised (see
    :meth:`VerifyReport.raise_for_problems`)."""
    from orbitcube.catalog.storage import redact
    from orbitcube.pipeline.sink import TILE_VAR, completed_tiles

    t0 = time.perf_counter()
    group = _open_group(path, storage_options)
    done = completed_tiles(path, storage_options)
    problems, unrecorded, n = verify_tiles(path, done, storage_options, variables)
    ny, nx = group[TILE_VAR].shape
    report = VerifyReport(
        redact(str(path)), ny * nx, len(done), n, problems, unrecorded, time.perf_counter() - t0
    )
    log.info("%s", report.summary())
    return report


def recheck_tiles(
    path: str | Path, done: set[Tile], storage_options: Mapping[str, Any] | None = None
) -> set[Tile]:
    """The tiles of ``done`` whose chunks still match their checksums (a resumed run skips only these). Each
    damaged tile is logged with its chunks and its marker is cleared, so that the run rewrites it; tiles without
    a checksum record (older stores) are trusted."""
    from orbitcube.pipeline.sink import unmark_tile

    t0 = time.perf_counter()
    problems, unrecorded, n = verify_tiles(path, done, storage_options)
    damaged = sorted({p.tile for p in problems})
    for p in problems:
        log.warning("%s; rewriting tile %d-%d", p, *p.tile)
    for tile in damaged:
        unmark_tile(path, tile, storage_options)
    if unrecorded:
        log.info(
            "%d complete tile(s) carry no checksums (older store) and are not re-verified", len(unrecorded)
        )
    log.info(
        "re-verified %d chunk(s) of %d complete tile(s) in %.2f s: %d damaged",
        n,
        len(done),
        time.perf_counter() - t0,
        len(damaged),
    )
    return set(done) - set(damaged)


@contextlib.contextmanager
def naming_damaged_chunks(
    path: str | Path, storage_options: Mapping[str, Any] | None = None
) -> Iterator[None]:
    """Run the enclosed read of the store at ``path``; if it fails with a low-level error (a codec's
    traceback on a corrupted chunk), verify the store and raise SinkError naming the damaged chunks instead."""
    try:
        yield
    except OrbitcubeError:
        raise
    except Exception as exc:  # blosc/zstd/zarr raise many types on damaged chunks
        try:
            report = verify_store(path, storage_options)
        except OrbitcubeError:
            raise exc from None
        report.raise_for_problems()
        raise


def check_before_read(
    path: str | Path, variables: Collection[str], storage_options: Mapping[str, Any] | None = None
) -> None:
    """Raise SinkError naming any damaged chunk of ``variables`` in the run store at ``path`` before they are
    read (a flipped bit often decodes silently into wrong values). Stores without tile markers (written by
    :func:`orbitcube.pipeline.sink.write_zarr`) have no checksums and pass."""
    from orbitcube.pipeline.sink import TILE_VAR, exists

    if not exists(f"{str(path).rstrip('/')}/{TILE_VAR}", storage_options):
        return
    verify_store(path, storage_options, variables).raise_for_problems()


__all__ = [
    "ALGORITHM",
    "CHECKSUM_PREFIX",
    "ChunkProblem",
    "READ_THREADS",
    "Tile",
    "VerifyReport",
    "check_before_read",
    "naming_damaged_chunks",
    "recheck_tiles",
    "record_tile_checksums",
    "tile_chunk_keys",
    "verify_store",
    "verify_tiles",
]
