"""The Zarr sink: cubes to self-describing Zarr v3 stores (zstd, tile-aligned chunks, CF grid mapping, provenance).

A store written here opens with ``xarray.open_zarr``; ``rioxarray`` and ``odc-geo`` read its CRS and transform
from the ``spatial_ref`` variable (CF ``grid_mapping`` with ``crs_wkt``, ``spatial_ref`` and ``GeoTransform``).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
import xarray as xr

from pipeline.errors import SinkError

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
) -> Path:
    """Write ``ds`` (dims (time, y, x) and/or (y, x)) to a Zarr v3 store at ``path`` with zstd compression.

    Chunks follow the dask chunks of ``ds`` (or ``chunks``) and must tile the arrays regularly; CF grid-mapping
    attributes make the CRS and transform readable by rioxarray and odc-geo; ``provenance`` (recipe, input item
    ids, ...) is stored as JSON in the ``orbitcube:provenance`` attribute together with software versions and the
    write time. An existing store is refused unless ``overwrite``.
    """
    from zarr.codecs import BloscCodec

    path = Path(path)
    if path.exists() and not overwrite:
        raise SinkError(f"{path} already exists; choose another output path or pass overwrite=True")
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
    compressor = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
    encoding = {v: {"compressors": [compressor]} for v in ds.data_vars}
    try:
        job = ds.to_zarr(
            path,
            mode="w" if overwrite else "w-",
            zarr_format=3,
            consolidated=False,
            encoding=encoding,
            compute=compute,
        )
    except (OSError, ValueError) as exc:
        raise SinkError(f"cannot write Zarr store {path}: {exc}") from exc
    if not compute:
        return job
    log.info("wrote %s (%s)", path, ", ".join(map(str, ds.data_vars)))
    return path


def open_cube(path: str | Path) -> xr.Dataset:
    """Open a store written by :func:`write_zarr` lazily, with its CRS attached (``ds.odc.geobox`` works)."""
    path = Path(path)
    if not path.exists():
        raise SinkError(f"no Zarr store at {path}; check the path (run the recipe first?)")
    try:
        ds = xr.open_zarr(path, consolidated=False)
    except Exception as exc:  # zarr raises several types for non-stores
        raise SinkError(f"{path} is not a readable Zarr store: {exc}") from exc
    if "spatial_ref" in ds.coords or "spatial_ref" in ds.variables:
        wkt = ds["spatial_ref"].attrs.get("crs_wkt")
        if wkt:
            ds = ds.odc.assign_crs(wkt)
    return ds


def valid_range(da: xr.DataArray) -> tuple[float, float]:
    """(min, max) of the finite values of ``da`` (computes it)."""
    v = np.asarray(da.values)
    v = v[np.isfinite(v)]
    return (float(v.min()), float(v.max())) if v.size else (float("nan"), float("nan"))
