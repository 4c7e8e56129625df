"""Small helpers shared by the analytics modules: input checks, time-axis chunking, naming, time arithmetic."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from orbitcube.pipeline.errors import AnalyticsError

log = logging.getLogger(__name__)

DAYS_PER_YEAR = 365.25
Data = xr.DataArray | xr.Dataset


def require_time(data: Data, func: str) -> None:
    """Raise AnalyticsError unless ``data`` has a ``time`` dimension with a datetime coordinate."""
    if "time" not in data.dims:
        raise AnalyticsError(
            f"{func} needs a 'time' dimension; got dims {tuple(data.dims)}. Pass the cube before reducing time."
        )
    if "time" not in data.coords or not np.issubdtype(data["time"].dtype, np.datetime64):
        raise AnalyticsError(
            f"{func} needs a datetime64 'time' coordinate; assign one with data.assign_coords(time=...)"
        )


def full_time(data: Data, func: str) -> Data:
    """Return ``data`` with the whole time axis in one chunk (dask-backed data only).

    Time-series functions look at every date of a pixel at once; the cube contract keeps the full time axis per
    spatial chunk, and a cube that splits it is rechunked here (logged, since it moves data between workers).
    """
    chunks = data.chunksizes.get("time") if data.chunks else None
    if chunks is not None and len(chunks) > 1:
        log.info(
            "%s: time axis is split into %d chunks; rechunking to one chunk per pixel", func, len(chunks)
        )
        data = data.chunk({"time": -1})
    return data


def name_of(data: xr.DataArray, default: str = "value") -> str:
    """The variable name of ``data`` or ``default``."""
    return str(data.name) if data.name is not None else default


def years_since(times: np.ndarray, origin: np.datetime64 | None = None) -> np.ndarray:
    """Decimal years (365.25 days) from ``origin`` (default the first time) for datetime64 ``times``."""
    t = np.asarray(times, dtype="datetime64[ns]")
    o = t[0] if origin is None else np.datetime64(origin, "ns")
    return ((t - o) / np.timedelta64(1, "D")).astype(np.float64) / DAYS_PER_YEAR


def quiet(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``func`` so numpy's floating-point warnings (0/0, log of 0) stay silent; thread-safe (``np.errstate``).

    All-NaN slices are handled by :func:`nanreduce`, which never asks numpy to reduce one.
    """

    def run(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return func(*args, **kwargs)

    run.__name__ = getattr(func, "__name__", "run")
    return run


def nanreduce(
    func: Callable[..., np.ndarray], values: np.ndarray, axis: int = -1, **kwargs: Any
) -> np.ndarray:
    """``func`` (a NaN-skipping numpy reduction) over ``axis``; slices without any finite value give NaN.

    Unlike calling ``np.nanmedian`` & co. directly this raises no "All-NaN slice" / "Mean of empty slice"
    warnings, without touching the (process-wide, not thread-safe) warning filters inside Dask workers.
    """
    empty = np.isnan(values).all(axis=axis, keepdims=True)
    safe = np.where(empty, 0, values) if empty.any() else values
    with np.errstate(invalid="ignore", divide="ignore"):
        out = func(safe, axis=axis, **kwargs)
    return np.where(np.squeeze(empty, axis=axis), np.nan, out)


def keep_attrs_from(out: Data, src: Data, **extra: Any) -> Data:
    """Copy ``src``'s attributes onto ``out`` (and each of its variables' grid_mapping), then add ``extra``."""
    out.attrs.update(src.attrs)
    out.attrs.update(extra)
    if isinstance(out, xr.Dataset) and "spatial_ref" in out.coords:
        for v in out.data_vars:
            if {"y", "x"} <= set(out[v].dims):
                out[v].attrs.setdefault("grid_mapping", "spatial_ref")
    return out


def as_dataarray(data: Data, func: str) -> xr.DataArray:
    """A single-variable Dataset as its DataArray; a DataArray unchanged; several variables refused."""
    if isinstance(data, xr.DataArray):
        return data
    names = list(data.data_vars)
    if len(names) != 1:
        raise AnalyticsError(
            f"{func} works on one variable; got a Dataset with {names}. Pick one, e.g. ds[{names[0]!r}], "
            "or compute an index first with spectral_index(ds, 'NDVI')"
        )
    return data[names[0]]


__all__ = [
    "DAYS_PER_YEAR",
    "Data",
    "as_dataarray",
    "full_time",
    "keep_attrs_from",
    "name_of",
    "nanreduce",
    "quiet",
    "require_time",
    "years_since",
]
