"""The Zarr sink: cubes to self-describing Zarr v3 stores (zstd, tile-aligned chunks, CF grid mapping, provenance).

A store written here opens with ``xarray.open_zarr``; ``rioxarray`` and ``odc-geo`` read its CRS and transform
from the ``spatial_ref`` variable (CF ``grid_mapping`` with ``crs_wkt``, ``spatial_ref`` and ``GeoTransform``).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
import xarray as xr

from orbitcube.pipeline.errors import SinkError
from orbitcube.pipeline.safety import STORE_MARKER

__all__ = [
    "COMPRESSION",
    "COMPRESSION_LEVEL",
    "FINGERPRINT_ATTR",
    "TILE_VAR",
    "VERSIONED",
    "completed_tiles",
    "compressor_for",
    "create_store",
    "exists",
    "mark_tile_done",
    "open_cube",
    "remove_store",
    "software_versions",
    "store_lock",
    "store_state",
    "unmark_tile",
    "write_tile",
    "write_zarr",
    "zarr_target",
]

#: the one default compression of every store orbitcube writes (:func:`write_zarr`, :func:`create_store`, the
#: recipe's ``output.compression`` / ``output.level``): Blosc with byte-shuffled Zstandard at level 1, about 2.5x
#: faster than plain zstd level 3 and 8 % smaller on float32 NDVI cubes (benchmarks/README.md)
COMPRESSION: Literal["zstd", "blosc-zstd"] = "blosc-zstd"
COMPRESSION_LEVEL = 1

log = logging.getLogger(__name__)

VERSIONED = ("orbitcube", "xarray", "dask", "zarr", "rasterio", "odc-geo", "odc-stac", "pystac", "numpy")


def software_versions() -> dict[str, str]:
    """Versions of orbitcube and the libraries that shaped the output, for provenance."""
    out = {}
    for name in VERSIONED:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _grid_mapping(ds: xr.Dataset) -> xr.Dataset:
    """Attach CF grid-mapping attributes (crs_wkt, spatial_ref, GeoTransform) to ``spatial_ref``."""
    try:
        gbox = ds.odc.geobox
    except Exception:  # odc-geo raises different errors for missing CRS
        gbox = None
    if gbox is None or gbox.crs is None:
        raise SinkError(
            "the cube has no CRS (no 'spatial_ref' coordinate); load it with pipeline.load_cube or set one with "
            "ds.odc.assign_crs('EPSG:...')"
        )
    ds = ds.odc.assign_crs(gbox.crs)
    attrs = dict(ds["spatial_ref"].attrs)
    a = gbox.transform
    attrs.update(
        crs_wkt=gbox.crs.to_wkt(),
        spatial_ref=gbox.crs.to_wkt(),
        GeoTransform=" ".join(str(v) for v in (a.c, a.a, a.b, a.f, a.d, a.e)),
    )
    ds["spatial_ref"].attrs = attrs
    for v in ds.data_vars:
        if {"y", "x"} <= set(ds[v].dims):
            # as an attribute, not in .encoding: then xarray also lists spatial_ref under "coordinates", so it
            # reopens as a coordinate and ds[var].rio.crs works on each variable, not only on the Dataset
            ds[v].encoding.pop("grid_mapping", None)
            ds[v].attrs["grid_mapping"] = "spatial_ref"
    return ds


def write_zarr(
    ds: xr.Dataset,
    path: str | Path,
    *,
    provenance: Mapping[str, Any] | None = None,
    chunks: Mapping[str, int] | None = None,
    overwrite: bool = False,
    compute: bool = True,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write ``ds`` (dims (time, y, x) and/or (y, x)) to a Zarr v3 store at ``path`` (:data:`COMPRESSION`).

    ``path`` is a folder or an ``az://`` / ``s3://`` URL written through fsspec with ``storage_options`` (see
    :mod:`orbitcube.catalog.storage`; secrets are redacted from the provenance). Chunks follow the dask chunks of ``ds`` (or ``chunks``) and must tile the arrays regularly; CF grid-mapping
    attributes make the CRS and transform readable by rioxarray and odc-geo; ``provenance`` (recipe, input item
    ids, ...) is stored as JSON in the ``orbitcube:provenance`` attribute together with software versions and the
    write time. An existing store is refused unless ``overwrite``.
    """
    from orbitcube.catalog.storage import is_remote, redact

    target, shown = zarr_target(path, storage_options)
    if not is_remote(str(path)):
        path = Path(path)
    if exists(path, storage_options) and not overwrite:
        raise SinkError(f"{shown} already exists; choose another output path or pass overwrite=True")
    if provenance:  # no secrets in stored metadata (SAS tokens, signatures, keys in hrefs or options)
        provenance = json.loads(redact(json.dumps(provenance, default=str)))
    ds = _grid_mapping(ds)
    if chunks:
        ds = ds.chunk(dict(chunks))
    for name, var in ds.data_vars.items():
        if var.chunks:
            for dim, sizes in zip(var.dims, var.chunks, strict=True):
                if len(sizes) > 1 and len(set(sizes[:-1])) > 1:
                    raise SinkError(
                        f"variable {name!r} has irregular chunks along {dim!r} {sizes[:4]}...; Zarr needs regular "
                        f"chunks: rechunk with ds.chunk({{'{dim}': N}})"
                    )
    ds.attrs = {k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in ds.attrs.items()}
    prov = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "software": software_versions(),
        **(dict(provenance) if provenance else {}),
    }
    ds.attrs["orbitcube:provenance"] = json.dumps(prov, default=str)
    ds.attrs.setdefault("Conventions", "CF-1.8")
    encoding = {v: {"compressors": [compressor_for()]} for v in ds.data_vars}
    try:
        job = ds.to_zarr(
            target,
            mode="w" if overwrite else "w-",
            zarr_format=3,
            consolidated=False,
            encoding=encoding,
            compute=compute,
        )
    except ValueError as exc:  # xarray/zarr refusing the data or the layout
        raise SinkError(f"cannot write Zarr store {shown}: {redact(exc)}") from exc
    except Exception as exc:  # fsspec and the cloud SDKs raise many types; _fail names the cause
        raise _fail(exc, path, "write Zarr store") from exc
    if not compute:
        return job
    log.info("wrote %s (%s)", shown, ", ".join(map(str, ds.data_vars)))
    return path


def zarr_target(path: str | Path, storage_options: Mapping[str, Any] | None) -> tuple[Any, str]:
    """What xarray and zarr open (a path, or a zarr FsspecStore for az:// s3:// URLs) and the URL to show."""
    from orbitcube.catalog.storage import fsspec_options, is_remote, redact

    if not is_remote(str(path)):
        return Path(path), str(path)
    from zarr.storage import FsspecStore

    url = str(path).rstrip("/")
    try:
        store = FsspecStore.from_url(url, storage_options=fsspec_options(url, storage_options))
    except (ImportError, ValueError, TypeError) as exc:
        raise SinkError(f"cannot open Zarr store {redact(url)}: {redact(exc)}") from exc
    return store, redact(url)


def exists(path: str | Path, storage_options: Mapping[str, Any] | None, what: str = "zarr.json") -> bool:
    """Whether ``path`` (a folder or an ``az://`` / ``s3://`` URL) holds ``what`` (a Zarr group's metadata by
    default; "" = anything at all); transient storage errors are retried."""
    from orbitcube.catalog.failures import retry
    from orbitcube.catalog.storage import filesystem, is_remote

    target = str(path).rstrip("/") + (f"/{what}" if what else "")
    if not is_remote(str(path)):
        return Path(target).exists()
    fs = filesystem(target, storage_options)
    return bool(retry(lambda: fs.exists(target), url=target, action="reach", error=SinkError))


def _fail(exc: BaseException, path: str | Path, action: str) -> SinkError:
    """A SinkError for a failed store operation, naming the (redacted) URL, what it means and the fix."""
    from orbitcube.catalog.failures import storage_error

    err = storage_error(exc, str(path), action, SinkError)
    return err if isinstance(err, SinkError) else SinkError(str(err))


def open_cube(path: str | Path, *, storage_options: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Open a store written by :func:`write_zarr` lazily, with its CRS attached (``ds.odc.geobox`` works).

    ``path`` is a folder or an ``az://`` / ``s3://`` URL (credentials in ``storage_options``, see
    :mod:`orbitcube.catalog.storage`)."""
    from orbitcube.catalog.storage import redact

    target, shown = zarr_target(path, storage_options)
    if not exists(path, storage_options):
        raise SinkError(f"no Zarr store at {shown}; check the path (run the recipe first?)")
    try:
        ds = xr.open_zarr(target, consolidated=False)
    except Exception as exc:  # zarr raises several types for non-stores
        raise SinkError(f"{shown} is not a readable Zarr store: {redact(exc)}") from exc
    ds = ds.drop_vars([TILE_VAR], errors="ignore")  # run bookkeeping, not part of the cube
    if "spatial_ref" in ds.coords or "spatial_ref" in ds.variables:
        wkt = ds["spatial_ref"].attrs.get("crs_wkt")
        if wkt:
            ds = ds.odc.assign_crs(wkt)
    return ds


def compressor_for(kind: str = COMPRESSION, level: int = COMPRESSION_LEVEL):
    """The zarr v3 codec for ``kind``: "zstd" (plain Zstandard) or "blosc-zstd" (Blosc, byte-shuffled zstd), at
    ``level``; the defaults are :data:`COMPRESSION` and :data:`COMPRESSION_LEVEL`."""
    from zarr.codecs import BloscCodec, ZstdCodec

    if kind == "zstd":
        return ZstdCodec(level=level)
    if kind == "blosc-zstd":
        return BloscCodec(cname="zstd", clevel=min(level, 9), shuffle="shuffle")
    raise SinkError(f"unknown compression {kind!r}; use 'zstd' or 'blosc-zstd'")


# ----- tile-wise, resumable run stores ------------------------------------------------------------------------------
TILE_VAR = "tile_done"
FINGERPRINT_ATTR = "orbitcube:fingerprint"


def create_store(
    template: xr.Dataset,
    path: str | Path,
    *,
    tile_shape: tuple[int, int],
    provenance: Mapping[str, Any],
    fingerprint: str,
    compression: str = COMPRESSION,
    level: int = COMPRESSION_LEVEL,
    time_chunk: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Create the full-shape Zarr v3 store of ``template`` at ``path`` without writing any pixel.

    ``path`` is a folder or an ``az://`` / ``s3://`` URL (credentials in ``storage_options``, see
    :mod:`orbitcube.catalog.storage`). ``template`` is the output cube (lazy; dims (t, y, x) or (y, x) with ``spatial_ref``
    CRS); each array is chunked ``tile_shape`` (y, x) pixels in space and ``time_chunk`` (default the whole axis)
    along its other dimension, so that tile (i, j) of :func:`orbitcube.pipeline.grid.tile_grid` is exactly chunk (.., i, j).
    Coordinates, CF grid mapping, ``provenance`` (JSON in ``orbitcube:provenance``, secrets redacted; keep run
    timestamps out of it so that a resumed store is byte-identical to an uninterrupted one) and ``fingerprint``
    are written now, and a ``tile_done`` (tile_y, tile_x) uint8 array records completed tiles (all 0). An existing
    path is refused.
    """

    from orbitcube.catalog.storage import is_remote, redact

    target, shown = zarr_target(path, storage_options)
    if exists(path, storage_options, ""):
        raise SinkError(f"{shown} already exists; remove it, choose another output path, or resume the run")
    ty, tx = tile_shape
    out, encoding = _placeholders(_grid_mapping(template), tile_shape, compression, level, time_chunk)
    out.attrs = _store_attrs(provenance, fingerprint, tile_shape)
    try:
        out.to_zarr(target, mode="w-", zarr_format=3, consolidated=False, encoding=encoding, compute=False)
        ny, nx = -(-out.sizes["y"] // ty), -(-out.sizes["x"] // tx)
        _create_tile_done(target, (ny, nx), tile_shape)
    except ValueError as exc:
        raise SinkError(f"cannot create Zarr store {shown}: {redact(exc)}") from exc
    except Exception as exc:  # fsspec and the cloud SDKs raise many types; _fail names the cause
        raise _fail(exc, path, "create Zarr store") from exc
    log.info(
        "created %s (%s; tiles %d x %d of %s px)", shown, ", ".join(map(str, out.data_vars)), ny, nx, (ty, tx)
    )
    return str(path).rstrip("/") if is_remote(str(path)) else Path(path)


def _placeholders(
    ds: xr.Dataset, tile_shape: tuple[int, int], compression: str, level: int, time_chunk: int | None
) -> tuple[xr.Dataset, dict[str, dict]]:
    """``ds`` with every variable replaced by lazy zeros chunked as the store (``time_chunk`` along the leading
    dims, ``tile_shape`` in (y, x)), and the Zarr encoding; nothing is computed: ``to_zarr(compute=False)``
    writes metadata only."""
    import dask.array as dsa

    ty, tx = tile_shape
    encoding: dict[str, dict] = {}
    data = {}
    for name, var in ds.data_vars.items():
        if var.dims[-2:] != ("y", "x"):
            raise SinkError(
                f"variable {name!r} has dims {var.dims}; the run store needs (..., y, x) arrays; drop it or reduce "
                "it to a (time, y, x) or (y, x) product"
            )
        chunks = tuple(min(time_chunk or var.shape[i], var.shape[i]) or 1 for i in range(var.ndim - 2)) + (
            ty,
            tx,
        )
        encoding[name] = {"chunks": chunks, "compressors": [compressor_for(compression, level)]}
        # a placeholder graph with the store's chunking: nothing is computed, to_zarr(compute=False) writes metadata
        data[name] = var.copy(data=dsa.zeros(var.shape, dtype=var.dtype, chunks=chunks))
        data[name].encoding = {}
    return ds.assign(data), encoding


def _store_attrs(
    provenance: Mapping[str, Any], fingerprint: str, tile_shape: tuple[int, int]
) -> dict[str, Any]:
    """The store's root attributes: CF conventions, provenance (secrets redacted), fingerprint, tile shape and
    the marker of a store orbitcube created."""
    from orbitcube.catalog.storage import redact

    ty, tx = tile_shape
    prov = json.dumps(dict(provenance), sort_keys=True, default=str)
    return {
        "Conventions": "CF-1.8",
        "title": str(provenance.get("name", "orbitcube cube")),
        "orbitcube:provenance": redact(prov),  # no SAS tokens, signatures or keys in stored metadata
        FINGERPRINT_ATTR: fingerprint,
        "orbitcube:tile_shape": [ty, tx],
        # what orbitcube may delete (orbitcube.pipeline.safety) and what verify expects (orbitcube.pipeline.verify): no run id or
        # timestamp, so that a resumed store stays byte-identical
        STORE_MARKER: {
            "format": 1,
            "checksums": "sha256 per chunk in tile_done/checksums/<tile_y>.<tile_x>.json",
        },
    }


def _create_tile_done(target: Any, tiles: tuple[int, int], tile_shape: tuple[int, int]) -> None:
    """The ``tile_done`` (tile_y, tile_x) uint8 array of the store at ``target``: all 0 (no tile complete)."""
    import zarr

    ny, nx = tiles
    ty, tx = tile_shape
    group = zarr.open_group(target, mode="r+", zarr_format=3)
    arr = group.create_array(
        TILE_VAR,
        shape=(ny, nx),
        chunks=(1, 1),
        dtype="uint8",
        fill_value=0,
        dimension_names=("tile_y", "tile_x"),
        compressors=None,
    )
    arr.attrs.update(
        long_name="1 where output tile (tile_y, tile_x) is completely written (resumable runs)",
        tile_shape=[ty, tx],
        checksums="tile_done/checksums/<tile_y>.<tile_x>.json: sha256 and size of each chunk of the tile "
        "(orbitcube verify)",
    )


def store_state(
    path: str | Path, fingerprint: str, storage_options: Mapping[str, Any] | None = None
) -> set[tuple[int, int]] | None:
    """Completed tiles of an existing run store written for ``fingerprint``, or None when ``path`` holds no store
    or one whose creation never finished (safe to recreate). Raises SinkError if the store belongs to another
    recipe, so a rerun with changed settings never mixes two outputs. Leftover ``*.partial`` files of a killed
    local writer are removed. ``path`` is a folder or an ``az://`` / ``s3://`` URL."""
    import zarr

    from orbitcube.catalog.storage import is_remote, redact

    target, shown = zarr_target(path, storage_options)
    if not exists(path, storage_options, ""):
        return None
    if not is_remote(str(path)) and Path(path).is_dir() and not any(Path(path).iterdir()):
        return None
    try:
        group = zarr.open_group(target, mode="r", zarr_format=3)
        theirs = group.attrs.get(FINGERPRINT_ATTR)
    except Exception as exc:  # not a zarr group at all
        if is_remote(str(path)) and not isinstance(exc, FileNotFoundError | ValueError | KeyError):
            raise _fail(exc, path, "read the run store") from exc
        raise SinkError(
            f"{shown} exists and is not an orbitcube run store ({redact(exc)}); remove it or choose another "
            "output path"
        ) from exc
    if theirs is None:
        raise SinkError(
            f"{shown} exists and was not written by an orbitcube run; remove it or choose another path"
        )
    if theirs != fingerprint:
        raise SinkError(
            f"{shown} was written by a different recipe (fingerprint {theirs[:12]} != {fingerprint[:12]}); remove "
            "it, choose another output path, or run with resume=False to overwrite it"
        )
    if not is_remote(str(path)):
        for part in Path(path).rglob("*.partial"):
            part.unlink(missing_ok=True)
    if TILE_VAR not in group:
        return None  # killed while creating: nothing was written yet
    return completed_tiles(path, storage_options)


def completed_tiles(
    path: str | Path, storage_options: Mapping[str, Any] | None = None
) -> set[tuple[int, int]]:
    """(tile_y, tile_x) indices recorded as complete in the run store at ``path`` (folder or URL)."""
    import zarr

    from orbitcube.catalog.failures import retry

    target, _ = zarr_target(path, storage_options)

    def read() -> np.ndarray:
        return np.asarray(zarr.open_array(target, path=TILE_VAR, mode="r")[...])

    done = retry(
        read, url=f"{str(path).rstrip('/')}/{TILE_VAR}", action="read the tile markers of", error=SinkError
    )
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(done), strict=True)}


def mark_tile_done(
    path: str | Path, tile: tuple[int, int], storage_options: Mapping[str, Any] | None = None
) -> None:
    """Record tile (tile_y, tile_x) as complete: the checksums of its stored chunks first (see
    :mod:`orbitcube.pipeline.verify`), then the marker: one chunk write, atomic on local disks (rename) and object stores
    (one PUT); retried on transient errors. Call it only once the tile's writes have finished."""
    import zarr

    from orbitcube.catalog.failures import retry
    from orbitcube.pipeline.verify import record_tile_checksums

    target, shown = zarr_target(path, storage_options)
    try:
        record_tile_checksums(path, tile, storage_options)
    except SinkError as exc:
        raise SinkError(f"cannot record tile {tile} as complete in {shown}: {exc}") from exc

    def mark() -> None:
        zarr.open_array(target, path=TILE_VAR, mode="r+")[tile] = 1

    retry(
        mark,
        url=f"{str(path).rstrip('/')}/{TILE_VAR}",
        action=f"record tile {tile} as complete in",
        error=SinkError,
    )


def unmark_tile(
    path: str | Path, tile: tuple[int, int], storage_options: Mapping[str, Any] | None = None
) -> None:
    """Record tile (tile_y, tile_x) as not complete (to rewrite it): marker cleared, checksum record removed."""
    import zarr

    from orbitcube.catalog.failures import retry
    from orbitcube.pipeline.verify import CHECKSUM_PREFIX, _Keys

    target, _ = zarr_target(path, storage_options)

    def unmark() -> None:
        zarr.open_array(target, path=TILE_VAR, mode="r+")[tile] = 0

    url = f"{str(path).rstrip('/')}/{TILE_VAR}"
    retry(unmark, url=url, action=f"clear the marker of tile {tile} in", error=SinkError)
    _Keys(path, storage_options).delete(f"{CHECKSUM_PREFIX}/{tile[0]}.{tile[1]}.json")


def remove_store(
    path: str | Path,
    storage_options: Mapping[str, Any] | None = None,
    *,
    protect: Sequence[str | Path | None] = (),
) -> None:
    """Delete a store (to overwrite it): a local folder, or every object under an ``az://`` / ``s3://`` URL.

    Only a store written by orbitcube is ever deleted, and never one that is or contains any of ``protect``
    (recipe file, catalog, ...), the working directory or the home directory: anything else raises SinkError
    naming the path and what to do (see :func:`orbitcube.pipeline.safety.check_removable`)."""
    from orbitcube.catalog.storage import filesystem, is_remote
    from orbitcube.pipeline.safety import check_removable

    if not is_remote(str(path)):
        if not os.path.lexists(path):
            return
        check_removable(path, storage_options, protect=protect)
        if any(Path(path).iterdir()):
            shutil.rmtree(path)
        else:
            Path(path).rmdir()
        return
    url = str(path).rstrip("/")
    if not exists(url, storage_options, ""):
        return
    check_removable(url, storage_options, protect=protect)
    try:
        fs = filesystem(url, storage_options)
        fs.rm(url, recursive=True)
        fs.invalidate_cache(url)
    except Exception as exc:  # the SDKs raise many types
        raise _fail(exc, url, "remove the old store") from exc


def _region(group, tile: tuple[int, int]) -> dict[str, slice]:
    ty, tx = (int(v) for v in group.attrs["orbitcube:tile_shape"])
    i, j = tile
    ny, nx = group[TILE_VAR].shape
    if not (0 <= i < ny and 0 <= j < nx):
        raise SinkError(f"tile {tile} is outside the store's {ny} x {nx} tiles")
    return {"y": slice(i * ty, (i + 1) * ty), "x": slice(j * tx, (j + 1) * tx)}


def write_tile(
    ds: xr.Dataset,
    path: str | Path,
    tile: tuple[int, int],
    storage_options: Mapping[str, Any] | None = None,
):
    """Lazily write ``ds`` (the cube of one tile, dask-backed) into its region of the run store.

    Checks before writing that each variable exists in the store, that its non-spatial axes match the store
    and that the tile covers exactly whole store chunks (chunk alignment, so concurrent tiles never share a
    chunk). Returns the dask Delayed of the write (``compute=False``). For ``az://`` / ``s3://`` stores the
    graph carries the fsspec store, credentials included, so that the workers can write.
    """
    import zarr

    target, shown = zarr_target(path, storage_options)
    try:
        group = zarr.open_group(target, mode="r", zarr_format=3)
        region = _region(group, tile)
    except SinkError:
        raise
    except Exception as exc:  # the SDKs raise many types
        raise _fail(exc, path, "open the run store") from exc
    for name, var in ds.data_vars.items():
        if name not in group:
            raise SinkError(
                f"variable {name!r} is not in the store {shown}; it has {sorted(group.array_keys())}"
            )
        arr = group[name]
        want = tuple(arr.shape[:-2])
        if tuple(var.shape[:-2]) != want:
            raise SinkError(
                f"tile {tile}: {name!r} has shape {var.shape[:-2]} along {var.dims[:-2]}, the store has {want}; "
                "reindex the tile onto the store's time axis"
            )
        cy, cx = arr.chunks[-2:]
        y0, x0 = region["y"].start, region["x"].start
        ny, nx = var.shape[-2:]
        y_end_ok = (y0 + ny) % cy == 0 or y0 + ny == arr.shape[-2]
        x_end_ok = (x0 + nx) % cx == 0 or x0 + nx == arr.shape[-1]
        if y0 % cy or x0 % cx or not y_end_ok or not x_end_ok:
            raise SinkError(
                f"tile {tile} region y[{y0}:{y0 + ny}], x[{x0}:{x0 + nx}] is not aligned with the chunks {cy} x {cx} "
                f"of {name!r}; use a tile_shape that is a multiple of the chunk shape"
            )
    region = {
        "y": slice(region["y"].start, region["y"].start + ds.sizes["y"]),
        "x": slice(region["x"].start, region["x"].start + ds.sizes["x"]),
    }
    out = ds.drop_vars(list(ds.coords))
    out.attrs = {}
    for name in out.data_vars:
        # one dask chunk per store chunk, so no two tasks ever write the same chunk
        chunks = dict(zip(out[name].dims, group[name].chunks, strict=True))
        out[name] = out[name].chunk(chunks)
        out[name].attrs = {}
        out[name].encoding = {}
    try:
        return out.to_zarr(target, mode="r+", region=region, zarr_format=3, consolidated=False, compute=False)
    except ValueError as exc:
        raise SinkError(f"cannot write tile {tile} into {shown}: {exc}") from exc
    except Exception as exc:  # the SDKs raise many types
        raise _fail(exc, path, f"write tile {tile} into") from exc


def store_lock(path: str | Path, storage_options: Mapping[str, Any] | None = None, **kwargs: Any):
    """Hold the exclusive lock of the run store ``path`` for the duration of a run (a context manager).

    Local stores: an OS lock on ``<path>.lock``, released by the OS if the process dies. ``az://`` / ``s3://``
    stores: a lease object ``<path>.lock`` created with a conditional put and kept alive by a heartbeat. A second
    run on the same store is refused with SinkError. See :mod:`orbitcube.pipeline.locks` for the guarantees."""
    from orbitcube.pipeline.locks import store_lock as _lock

    return _lock(path, storage_options, **kwargs)
