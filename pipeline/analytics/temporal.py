"""Temporal resampling (monthly, seasonal, annual) and gap-filling by interpolation in time."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Literal, get_args

import numpy as np
import xarray as xr

from orbitcube.pipeline.analytics._common import Data, full_time, keep_attrs_from, require_time
from orbitcube.pipeline.analytics.composites import CompositeStat, composite
from orbitcube.pipeline.analytics.periods import period_offset
from orbitcube.pipeline.errors import AnalyticsError

log = logging.getLogger(__name__)

_SEASON_OF_MONTH = {12: "DJF", 3: "MAM", 6: "JJA", 9: "SON"}

#: how :func:`gap_fill` fills a gap
FillMethod = Literal["linear", "nearest"]
FILL_METHODS: tuple[FillMethod, ...] = get_args(FillMethod)


def resample_time(
    data: Data, freq: str = "monthly", stat: CompositeStat = "median", *, q: float | None = None
) -> Data:
    """One composite per calendar period: :func:`composite` with ``freq`` (the same periods), plus season labels.

    ``freq`` is "monthly" ("1MS"), "seasonal" ("QS-DEC": DJF, MAM, JJA, SON; December counts with the following
    winter), "annual" ("YS"), or any pandas offset alias (see :func:`~orbitcube.pipeline.analytics.periods.split_periods`).

    ``stat`` is a :func:`composite` statistic (median, mean, min, max, std, count, percentile with ``q``); NaN
    (masked) observations are ignored, a period without a clear observation is NaN (count 0). The result keeps
    dims (time, y, x) with ``time`` at the period starts, the coords, CRS and attrs; variables are renamed
    ``<name>_<stat>``. Seasonal output carries a ``season`` coordinate ("DJF", ...). Lazy on dask-backed data.
    """
    require_time(data, "resample_time")
    offset = period_offset(freq)
    out = composite(data, stat, freq=offset, q=q)
    if offset == "QS-DEC":
        months = out["time"].dt.month.values
        out = out.assign_coords(season=("time", [_SEASON_OF_MONTH.get(int(m), "") for m in months]))
    return out


def gap_fill(
    data: Data,
    *,
    method: FillMethod = "linear",
    max_gap: float | dt.timedelta | np.timedelta64 | None = None,
) -> Data:
    """Fill NaN (masked) observations of each pixel by interpolating in time between its clear observations.

    ``method`` is "linear" (weights from the ``time`` coordinate, not the index) or "nearest" (the clear
    observation closer in time; ties take the earlier one). ``max_gap`` (days, or a timedelta) leaves a gap
    unfilled when its two bounding clear observations are further apart than that. Values before a pixel's first
    and after its last clear observation stay NaN (no extrapolation). Dims, coords, CRS, attrs and names are kept.
    Needs the full time axis per chunk (dask data split along time is rechunked). Lazy on dask-backed data.
    """
    require_time(data, "gap_fill")
    if method not in FILL_METHODS:
        raise AnalyticsError(f"gap_fill: unknown method {method!r}; use one of {list(FILL_METHODS)}")
    if max_gap is None:
        gap_days = np.inf
    elif isinstance(max_gap, dt.timedelta | np.timedelta64):
        gap_days = float(np.timedelta64(max_gap, "s") / np.timedelta64(1, "D"))
    elif isinstance(max_gap, int | float) and not isinstance(max_gap, bool):
        gap_days = float(max_gap)
    else:
        raise AnalyticsError(f"gap_fill: max_gap={max_gap!r} must be a number of days or a timedelta")
    if gap_days <= 0:
        raise AnalyticsError(f"gap_fill: max_gap={max_gap!r} must be positive")
    data = full_time(data, "gap_fill")
    days = ((data["time"].values - data["time"].values[0]) / np.timedelta64(1, "D")).astype(np.float64)

    def fill(da: xr.DataArray) -> xr.DataArray:
        out = xr.apply_ufunc(
            _fill_last_axis,
            da,
            input_core_dims=[["time"]],
            output_core_dims=[["time"]],
            kwargs={"days": days, "method": method, "max_gap": gap_days},
            dask="parallelized",
            output_dtypes=[da.dtype],
            keep_attrs=True,
        )
        return out.transpose(*da.dims)

    out = data.map(fill, keep_attrs=True) if isinstance(data, xr.Dataset) else fill(data)
    return keep_attrs_from(out, data, gap_filled=method)


def _fill_last_axis(values: np.ndarray, days: np.ndarray, method: str, max_gap: float) -> np.ndarray:
    """Interpolate NaN along the last axis of ``values`` at times ``days`` (see :func:`gap_fill`)."""
    n = values.shape[-1]
    valid = ~np.isnan(values)
    idx = np.broadcast_to(np.arange(n), values.shape)
    prev = np.maximum.accumulate(np.where(valid, idx, -1), axis=-1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(valid, idx, n), axis=-1), axis=-1), axis=-1)
    inside = (prev >= 0) & (nxt < n) & ~valid
    p = np.clip(prev, 0, n - 1)
    q = np.clip(nxt, 0, n - 1)
    tp, tq, t = days[p], days[q], days[idx]
    inside &= (tq - tp) <= max_gap
    vp = np.take_along_axis(values, p, axis=-1)
    vq = np.take_along_axis(values, q, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "linear":
            w = np.where(tq > tp, (t - tp) / (tq - tp), 0.0)
            filled = vp + w * (vq - vp)
        else:
            filled = np.where((t - tp) <= (tq - t), vp, vq)
    return np.where(inside, filled, values).astype(values.dtype, copy=False)


__all__ = [
    "FILL_METHODS",
    "FillMethod",
    "gap_fill",
    "resample_time",
]
