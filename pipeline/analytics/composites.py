"""Composites over time: median, mean, min, max, percentiles, clear-observation counts, best-pixel."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from pipeline.errors import AnalyticsError

STATS = ("median", "mean", "min", "max", "count", "std")


def composite(
    data: xr.DataArray | xr.Dataset, stat: str = "median", *, freq: str | None = None, q: float | None = None
) -> xr.DataArray | xr.Dataset:
    """Reduce over ``time`` ignoring NaN: ``stat`` in median, mean, min, max, std, count (clear observations) or
    percentile (with ``q`` in 0..100). ``freq`` (pandas offset, e.g. "1MS" monthly, "QS-DEC" seasons, "YS") makes
    one composite per calendar period; the result keeps a ``time`` axis at period starts. Without ``freq`` the
    result has dims (y, x). Variables are renamed ``<name>_<stat>``.
    """
    if "time" not in data.dims:
        raise AnalyticsError(f"composite needs a 'time' dimension; got dims {tuple(data.dims)}")
    if stat not in (*STATS, "percentile"):
        raise AnalyticsError(f"unknown composite statistic {stat!r}; choose one of {[*STATS, 'percentile']}")
    if stat == "percentile" and (q is None or not 0 <= q <= 100):
        raise AnalyticsError("percentile composites need q between 0 and 100, e.g. q=25")
    if stat == "count":
        out = (data.resample(time=freq) if freq else data).count(dim="time")
    else:
        func = _NAN_FUNCS[stat]
        kwargs = {"q": q} if stat == "percentile" else {}
        if freq:
            out = data.resample(time=freq).map(lambda g: _reduce_time(g, func, kwargs))
        else:
            out = _reduce_time(data, func, kwargs)
    suffix = f"p{int(q)}" if stat == "percentile" else stat
    if isinstance(out, xr.Dataset):
        out = out.rename({v: f"{v}_{suffix}" for v in out.data_vars})
    else:
        out = out.rename(f"{data.name or 'value'}_{suffix}")
    if stat != "count":
        out = out.astype("float32")
    out.attrs.update(data.attrs)
    out.attrs.update(composite=stat, period=freq or "all")
    return out


_NAN_FUNCS = {
    "median": np.nanmedian,
    "mean": np.nanmean,
    "min": np.nanmin,
    "max": np.nanmax,
    "std": np.nanstd,
    "percentile": np.nanpercentile,
}


def _quiet(func, **kwargs):
    """``func`` over the last axis without numpy's all-NaN warnings: a pixel never seen clear is simply NaN."""

    def run(x: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return func(x, axis=-1, **kwargs).astype(np.float32)

    return run


def _reduce_time(data, func, kwargs):
    """Reduce ``time`` chunk by chunk (the time axis must be one chunk, as the cube contract promises)."""
    if data.chunks is not None:
        data = data.chunk({"time": -1})
    return xr.apply_ufunc(
        _quiet(func, **kwargs),
        data,
        input_core_dims=[["time"]],
        dask="parallelized",
        output_dtypes=[np.float32],
        keep_attrs=True,
    )
