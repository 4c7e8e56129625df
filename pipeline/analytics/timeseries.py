"""Per-pixel time-series analysis: linear trend with significance, anomalies against a climatology of earlier
years, and seasonal statistics (peak date, amplitude).

Every function here looks at the whole time series of a pixel at once, so it needs the full time axis in one
chunk (the cube contract); dask-backed input split along time is rechunked (logged). Outputs are lazy on dask
input, keep the (y, x) coords and the ``spatial_ref`` CRS coordinate, and are named ``<variable>_<statistic>``.
"""

from __future__ import annotations

import logging
from typing import Literal, get_args

import numpy as np
import pandas as pd
import xarray as xr

from orbitcube.pipeline.analytics._common import (
    Data,
    as_dataarray,
    full_time,
    keep_attrs_from,
    name_of,
    nanreduce,
    quiet,
    require_time,
    years_since,
)
from orbitcube.pipeline.errors import AnalyticsError

log = logging.getLogger(__name__)

#: the groups :func:`anomaly` builds its climatology per
ClimatologyGroup = Literal["month", "season", "dayofyear"]
CLIMATOLOGY_GROUPS: tuple[ClimatologyGroup, ...] = get_args(ClimatologyGroup)
#: how :func:`anomaly` compares an observation with the climatology
AnomalyKind = Literal["difference", "zscore", "percent"]
ANOMALY_KINDS: tuple[AnomalyKind, ...] = get_args(AnomalyKind)


# ----- trend ----------------------------------------------------------------------------------------------------
def linear_trend(data: Data, *, min_obs: int = 3) -> xr.Dataset:
    """Ordinary least-squares trend of each pixel's clear observations against time.

    Returns a Dataset with dims (y, x): ``<name>_slope`` (units of the variable per year, years of 365.25 days),
    ``<name>_intercept`` (value at the first time of the cube), ``<name>_pvalue`` (two-sided p-value of the t-test
    that the slope is zero, n - 2 degrees of freedom) and ``<name>_nobs`` (clear observations used). Pixels with
    fewer than ``min_obs`` clear observations (or all at one time) are NaN. A Dataset input must hold a single
    variable. Needs the full time axis per chunk; lazy on dask input.
    """
    require_time(data, "linear_trend")
    da = full_time(as_dataarray(data, "linear_trend"), "linear_trend")
    if min_obs < 3:
        raise AnalyticsError(f"linear_trend: min_obs={min_obs} must be at least 3 for a significance test")
    years = years_since(da["time"].values)
    name = name_of(da)
    slope, intercept, pvalue, nobs = xr.apply_ufunc(
        quiet(_ols_last_axis),
        da,
        input_core_dims=[["time"]],
        output_core_dims=[[], [], [], []],
        kwargs={"x": years, "min_obs": min_obs},
        dask="parallelized",
        output_dtypes=[np.float32, np.float32, np.float32, np.int16],
    )
    units = da.attrs.get("units", "1")
    out = xr.Dataset(
        {
            f"{name}_slope": slope.assign_attrs(
                units=f"{units} per year", long_name=f"linear trend of {name}"
            ),
            f"{name}_intercept": intercept.assign_attrs(units=units, long_name=f"{name} at the first date"),
            f"{name}_pvalue": pvalue.assign_attrs(units="1", long_name="two-sided p-value of the slope"),
            f"{name}_nobs": nobs.assign_attrs(units="1", long_name="clear observations in the fit"),
        }
    )
    return keep_attrs_from(out, da, trend_origin=str(da["time"].values[0]))


def _ols_last_axis(y: np.ndarray, x: np.ndarray, min_obs: int) -> tuple[np.ndarray, ...]:
    valid = ~np.isnan(y)
    n = valid.sum(axis=-1)
    xv = np.where(valid, x, 0.0)
    yv = np.where(valid, y, 0.0).astype(np.float64)
    nn = np.maximum(n, 1)
    xm = xv.sum(-1) / nn
    ym = yv.sum(-1) / nn
    dx = np.where(valid, x - xm[..., None], 0.0)
    dy = np.where(valid, yv - ym[..., None], 0.0)
    sxx = (dx * dx).sum(-1)
    sxy = (dx * dy).sum(-1)
    slope = sxy / sxx
    intercept = ym - slope * xm
    resid = np.where(valid, dy - slope[..., None] * dx, 0.0)
    dof = n - 2
    s2 = (resid * resid).sum(-1) / np.maximum(dof, 1)
    se = np.sqrt(s2 / sxx)
    tstat = np.where(se > 0, np.abs(slope) / se, np.inf)
    from scipy import stats as sps  # here: importing scipy.stats costs ~1 s of CPU in every Dask worker

    pvalue = 2 * sps.t.sf(tstat, np.maximum(dof, 1))
    ok = (n >= min_obs) & (sxx > 0)
    nan = np.float32(np.nan)
    return (
        np.where(ok, slope, nan).astype(np.float32),
        np.where(ok, intercept, nan).astype(np.float32),
        np.where(ok, pvalue, nan).astype(np.float32),
        n.astype(np.int16),
    )


# ----- anomaly --------------------------------------------------------------------------------------------------
def anomaly(
    data: Data,
    *,
    reference: tuple[str, str] | slice | None = None,
    groupby: ClimatologyGroup = "month",
    kind: AnomalyKind = "difference",
) -> Data:
    """Anomaly of each observation against a per-pixel climatology of earlier years.

    ``reference`` is the (start, end) period the climatology is built from (ISO dates or years, inclusive); by
    default every year before the last year of the data. The climatology is the NaN-skipping mean (and standard
    deviation for ``kind="zscore"``) per ``groupby`` group: "month", "season" (DJF, MAM, JJA, SON) or "dayofyear".
    Anomalies are returned for the times after the reference period: ``kind`` "difference" (value - mean), "zscore"
    ((value - mean) / std) or "percent" (100 * (value - mean) / mean). Groups absent from the reference give NaN.
    Dims (time, y, x), names ``<name>_anomaly``; lazy on dask input.
    """
    require_time(data, "anomaly")
    if groupby not in CLIMATOLOGY_GROUPS:
        raise AnalyticsError(f"anomaly: groupby={groupby!r} is not one of {list(CLIMATOLOGY_GROUPS)}")
    if kind not in ANOMALY_KINDS:
        raise AnalyticsError(f"anomaly: kind={kind!r} is not one of {list(ANOMALY_KINDS)}")
    times = pd.DatetimeIndex(data["time"].values)
    if reference is None:
        last = times.year.max()
        if (times.year < last).sum() == 0:
            raise AnalyticsError(
                f"anomaly: the data covers only {last}; a climatology needs earlier years. Give reference=(start,"
                " end) inside the data, or load more years"
            )
        ref = slice(None, f"{last - 1}-12-31")
    else:
        ref = reference if isinstance(reference, slice) else slice(*(str(r) for r in reference))
    base = data.sel(time=ref)
    if base.sizes["time"] == 0:
        raise AnalyticsError(
            f"anomaly: reference period {ref.start}..{ref.stop} holds no time step of the data "
            f"({times.min().date()}..{times.max().date()})"
        )
    end = base["time"].values.max()
    target = data.sel(time=data["time"] > end)
    if target.sizes["time"] == 0:
        raise AnalyticsError(
            f"anomaly: no time step after the reference period (ends {pd.Timestamp(end).date()}); choose an "
            "earlier reference"
        )
    key = f"time.{groupby}"
    with np.errstate(invalid="ignore", divide="ignore"):
        grouped = base.groupby(key)
        mean = quiet(grouped.mean)(dim="time")
        missing = set(np.unique(target[key].values)) - set(mean[groupby].values.tolist())
        if missing:
            raise AnalyticsError(
                f"anomaly: the reference period has no observation for {groupby} {sorted(missing)}; widen the "
                "reference period or use groupby='season'"
            )
        clim = mean.sel({groupby: target[key]}).drop_vars(groupby, errors="ignore")
        if kind == "difference":
            out = target - clim
        elif kind == "percent":
            out = 100.0 * (target - clim) / clim.where(clim != 0)
        else:
            std = (
                quiet(grouped.std)(dim="time").sel({groupby: target[key]}).drop_vars(groupby, errors="ignore")
            )
            out = (target - clim) / std.where(std > 0)
    out = _rename(out, "anomaly")
    out = out.astype(np.float32)
    return keep_attrs_from(
        out, data, anomaly=kind, climatology=f"{groupby} mean of {_period(base)}", reference_end=str(end)
    )


def _period(da: Data) -> str:
    t = pd.DatetimeIndex(da["time"].values)
    return f"{t.min().date()}..{t.max().date()}"


def _rename(out: Data, suffix: str) -> Data:
    if isinstance(out, xr.Dataset):
        return out.rename({v: f"{v}_{suffix}" for v in out.data_vars})
    return out.rename(f"{name_of(out)}_{suffix}")


# ----- seasonal statistics --------------------------------------------------------------------------------------
def seasonal_stats(data: Data, *, per_year: bool = True, fill_gaps: bool = False) -> xr.Dataset:
    """Peak, trough and amplitude of each pixel's season.

    Returns a Dataset with ``<name>_peak`` (highest clear value), ``<name>_peak_time`` (its date, datetime64,
    NaT where never clear), ``<name>_peak_doy`` (its day of year), ``<name>_trough`` (lowest value),
    ``<name>_amplitude`` (peak - trough) and ``<name>_mean``. With ``per_year`` (default) each calendar year gets
    its own values along a ``year`` dimension; otherwise the whole series is one season. ``fill_gaps`` first
    interpolates masked observations in time (:func:`gap_fill`), which does not move the peak to an unobserved
    date but keeps a cloud-free shoulder from being the trough. A Dataset input must hold a single variable.
    Needs the full time axis per chunk; lazy on dask input.
    """
    require_time(data, "seasonal_stats")
    da = full_time(as_dataarray(data, "seasonal_stats"), "seasonal_stats")
    if fill_gaps:
        from orbitcube.pipeline.analytics.temporal import gap_fill

        da = gap_fill(da)
    if not per_year:
        return keep_attrs_from(_season(da), da)
    years = pd.DatetimeIndex(da["time"].values).year
    parts = [
        _season(da.isel(time=np.flatnonzero(years == y))).expand_dims(year=[int(y)])
        for y in sorted(set(years))
    ]
    return keep_attrs_from(xr.concat(parts, dim="year"), da)


def _season(da: xr.DataArray) -> xr.Dataset:
    name = name_of(da)
    times = da["time"].values.astype("datetime64[ns]")
    doy = pd.DatetimeIndex(times).dayofyear.values.astype(np.float32)
    peak, peak_t, peak_doy, trough, mean = xr.apply_ufunc(
        quiet(_season_last_axis),
        da,
        input_core_dims=[["time"]],
        output_core_dims=[[], [], [], [], []],
        kwargs={"times": times, "doy": doy},
        dask="parallelized",
        output_dtypes=[np.float32, "datetime64[ns]", np.float32, np.float32, np.float32],
    )
    units = da.attrs.get("units", "1")
    return xr.Dataset(
        {
            f"{name}_peak": peak.assign_attrs(units=units),
            f"{name}_peak_time": peak_t,
            f"{name}_peak_doy": peak_doy.assign_attrs(units="day of year"),
            f"{name}_trough": trough.assign_attrs(units=units),
            f"{name}_amplitude": (peak - trough).astype(np.float32).assign_attrs(units=units),
            f"{name}_mean": mean.assign_attrs(units=units),
        }
    )


def _season_last_axis(v: np.ndarray, times: np.ndarray, doy: np.ndarray) -> tuple[np.ndarray, ...]:
    valid = ~np.isnan(v)
    anyv = valid.any(-1)
    i = np.argmax(np.where(valid, v, -np.inf), axis=-1)
    peak = nanreduce(np.nanmax, v).astype(np.float32)
    peak_t = np.where(anyv, times[i], np.datetime64("NaT", "ns"))
    peak_doy = np.where(anyv, doy[i], np.nan).astype(np.float32)
    trough = nanreduce(np.nanmin, v).astype(np.float32)
    mean = nanreduce(np.nanmean, v).astype(np.float32)
    return peak, peak_t, peak_doy, trough, mean


__all__ = [
    "ANOMALY_KINDS",
    "AnomalyKind",
    "CLIMATOLOGY_GROUPS",
    "ClimatologyGroup",
    "anomaly",
    "linear_trend",
    "seasonal_stats",
]
