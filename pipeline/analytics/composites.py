"""Composites over time: median, mean, min, max, percentiles, clear-observation counts, best-pixel."""

from __future__ import annotations

from typing import Literal, get_args

import bottleneck as bn
import numpy as np
import xarray as xr

from orbitcube.pipeline.analytics._common import nanreduce, quiet
from orbitcube.pipeline.analytics.periods import period_offset, split_periods, stat_suffix
from orbitcube.pipeline.errors import AnalyticsError

#: reductions over time that need no parameter
ReduceStat = Literal["median", "mean", "min", "max", "count", "std"]
STATS: tuple[ReduceStat, ...] = get_args(ReduceStat)
#: every statistic :func:`composite` (and :func:`~orbitcube.pipeline.analytics.temporal.resample_time`) takes
CompositeStat = Literal[ReduceStat, "percentile"]
COMPOSITE_STATS: tuple[CompositeStat, ...] = get_args(CompositeStat)
#: which end of the score :func:`best_pixel_composite` takes
BestPixelMode = Literal["max", "min"]
BEST_PIXEL_MODES: tuple[BestPixelMode, ...] = get_args(BestPixelMode)


def composite(
    data: xr.DataArray | xr.Dataset,
    stat: CompositeStat = "median",
    *,
    freq: str | None = None,
    q: float | None = None,
) -> xr.DataArray | xr.Dataset:
    """Reduce over ``time`` ignoring NaN: ``stat`` in median, mean, min, max, std, count (clear observations) or
    percentile (with ``q`` in 0..100). ``freq`` (pandas offset, e.g. "1MS" monthly, "QS-DEC" seasons, "YS", or
    "monthly", "seasonal", "annual"; see :func:`~orbitcube.pipeline.analytics.periods.split_periods`) makes one composite
    per calendar period; the result keeps a ``time`` axis at period starts. Without ``freq`` the result has dims
    (y, x). Variables are renamed ``<name>_<stat>`` (percentiles ``<name>_p<q>``, e.g. ``ndvi_p2_5`` for q=2.5:
    see :func:`~orbitcube.pipeline.analytics.periods.stat_suffix`).

    Memory on Dask-backed data split along time (``load_cube``'s time chunks): per-period composites never hold
    more than whole periods of a chunk, not the whole series: the time axis is rechunked so that every chunk
    holds whole periods (as many as fit in the input's largest time chunk, at least one; see
    :func:`period_chunks`), and each chunk is reduced on its own, so the result is identical to the unchunked
    one for every statistic. Without ``freq``, count, min and max stream chunk by chunk (exact), mean and std
    stream as sums and sums of squared deviations per chunk (two passes; equal to the one-chunk result up to
    float rounding). Median and percentiles need every observation of a period (of the whole series without
    ``freq``) of a pixel at once: one task holds a whole period (the whole series) of its spatial chunk.
    """
    if "time" not in data.dims:
        raise AnalyticsError(f"composite needs a 'time' dimension; got dims {tuple(data.dims)}")
    if stat not in COMPOSITE_STATS:
        raise AnalyticsError(f"unknown composite statistic {stat!r}; choose one of {list(COMPOSITE_STATS)}")
    if stat == "percentile" and (q is None or not 0 <= q <= 100):
        raise AnalyticsError("percentile composites need q between 0 and 100, e.g. q=25")
    data = data if _is_sorted(data["time"].values) else data.sortby("time")
    bounds, labels = split_periods(data["time"].values, freq)
    out = xr.apply_ufunc(
        _reduce,
        data,
        input_core_dims=[["time"]],
        output_core_dims=[["period"]],
        kwargs={"bounds": bounds, "stat": stat, "q": q, "streaming": freq is None},
        dask="allowed",
        keep_attrs=True,
    )
    if freq:
        out = out.rename(period="time").assign_coords(time=labels).transpose("time", ...)
    else:
        out = out.isel(period=0, drop=True)
    suffix = stat_suffix(stat, q)
    if isinstance(out, xr.Dataset):
        out = out.rename({v: f"{v}_{suffix}" for v in out.data_vars})
    else:
        out = out.rename(f"{data.name or 'value'}_{suffix}")
    if stat != "count":
        out = out.astype("float32")
    out.attrs.update(data.attrs)
    out.attrs.update(composite=stat, period=period_offset(freq) if freq else "all")
    return out


_NAN_FUNCS = {"min": np.nanmin, "max": np.nanmax}


def _moment(v: np.ndarray, stat: str) -> np.ndarray:
    """NaN-skipping mean or (population) std over the last axis, accumulated in float64 as the chunk-wise
    streaming reduction does (:func:`_stream`), so both give the same float32 values; NaN where no value."""
    n = np.count_nonzero(~np.isnan(v), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(v, axis=-1, dtype=np.float64) / n
        if stat == "mean":
            return mean
        return np.sqrt(np.nansum((v - mean[..., None]) ** 2, axis=-1, dtype=np.float64) / n)


def _is_sorted(t: np.ndarray) -> bool:
    return bool(len(t) < 2 or (t[1:] >= t[:-1]).all())


def nanquantile(x: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` (0..1) over the last axis ignoring NaN, numpy's default 'linear' method; NaN where a slice
    has no value. One sort per call: much faster than ``np.nanmedian``/``np.nanpercentile`` on short axes."""
    s = np.sort(x, axis=-1)  # NaN sorts last
    n = np.count_nonzero(~np.isnan(x), axis=-1)
    pos = q * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    vlo = np.take_along_axis(s, lo[..., None], axis=-1)[..., 0].astype(np.float64)
    vhi = np.take_along_axis(s, hi[..., None], axis=-1)[..., 0].astype(np.float64)
    res = vlo + (vhi - vlo) * (pos - lo)
    return np.where(n > 0, res, np.nan)


def period_chunks(
    bounds: list[tuple[int, int]], n_time: int, target: int
) -> tuple[int, list[tuple[int, int]]]:
    """How to rechunk a time axis of ``n_time`` steps for per-period reductions over ``bounds`` (the ``[start,
    stop)`` steps of each period, :func:`~orbitcube.pipeline.analytics.periods.split_periods`; empty periods
    ``(0, 0)``): ``k`` whole periods per chunk, as many as fit in ``target`` steps (at least one), and the
    ``[start, stop)`` steps of each chunk (``ceil(len(bounds) / k)`` chunks, the first starting at 0 and the last
    ending at ``n_time``; a chunk of empty periods only is empty)."""
    longest = max((b - a for a, b in bounds), default=1)
    k = max(1, target // max(longest, 1))
    spans, pos = [], 0
    for g in range(0, len(bounds), k):
        stops = [b for a, b in bounds[g : g + k] if b > a]
        end = max(stops) if stops else pos
        spans.append((pos, end))
        pos = end
    if spans:
        spans[-1] = (spans[-1][0], n_time)
    return k, spans


def _reduce(x, bounds: list[tuple[int, int]], stat: str, q: float | None, streaming: bool):
    """``stat`` per period of ``bounds`` over the last axis of ``x`` (numpy, or Dask split along that axis in any
    way): (..., period), see :func:`composite` for how chunks along time are reduced."""
    import dask.array as da

    dtype = np.int64 if stat == "count" else np.float32
    if not isinstance(x, da.Array):
        return _period_stats(x, bounds, stat, q)
    n = len(bounds)
    if len(x.chunks[-1]) == 1:
        return x.map_blocks(_period_stats, bounds=bounds, stat=stat, q=q, dtype=dtype,
                            chunks=(*x.chunks[:-1], (n,)))  # fmt: skip
    if streaming and stat in ("count", "min", "max", "mean", "std"):
        return _stream(x, stat)
    k, spans = period_chunks(bounds, x.shape[-1], max(x.chunks[-1]))
    x = x.rechunk({x.ndim - 1: tuple(b - a for a, b in spans if b > a)})
    parts = []
    for g, (a0, b0) in enumerate(spans):
        local = [(a - a0, b - a0) if b > a else (0, 0) for a, b in bounds[g * k : (g + 1) * k]]
        part = x[..., a0:b0]
        parts.append(part.map_blocks(_period_stats, bounds=local, stat=stat, q=q, dtype=dtype,
                                     chunks=(*part.chunks[:-1], (len(local),))))  # fmt: skip
    return da.concatenate(parts, axis=-1)


def _stream(x, stat: str):
    """Count, min, max, mean or std over the last axis of a Dask array, chunk by chunk along that axis: one
    partial per chunk (counts, minima, maxima, float64 sums; for std a second pass of squared deviations from
    the mean), then combined; (..., 1)."""
    import dask.array as da

    one = (*x.chunks[:-1], (1,) * len(x.chunks[-1]))

    def partial(fn, *args, dtype=np.float64):
        parts = da.map_blocks(fn, *args, dtype=dtype, chunks=one)
        return parts.rechunk({x.ndim - 1: -1})

    def count(v):
        return np.count_nonzero(~np.isnan(v), axis=-1, keepdims=True)

    n = partial(count, x, dtype=np.int64).sum(axis=-1, keepdims=True)
    if stat == "count":
        return n
    if stat in ("min", "max"):
        fn = np.nanmin if stat == "min" else np.nanmax
        parts = partial(lambda v: nanreduce(fn, v, axis=-1)[..., None], x, dtype=x.dtype)
        return parts.map_blocks(lambda p: nanreduce(fn, p, axis=-1)[..., None].astype(np.float32),
                                dtype=np.float32)  # fmt: skip
    total = partial(lambda v: np.nansum(v, axis=-1, keepdims=True, dtype=np.float64), x).sum(
        -1, keepdims=True
    )
    mean = da.map_blocks(quiet(np.divide), total, n, dtype=np.float64)  # 0 / 0: NaN, no warning
    if stat == "mean":
        return mean.astype(np.float32)
    dev = partial(lambda v, m: np.nansum((v - m) ** 2, axis=-1, keepdims=True, dtype=np.float64), x, mean)
    var = da.map_blocks(quiet(np.divide), dev.sum(-1, keepdims=True), n, dtype=np.float64)
    return da.sqrt(var).astype(np.float32)


def _period_stats(x: np.ndarray, bounds: list[tuple[int, int]], stat: str, q: float | None) -> np.ndarray:
    """``stat`` of each [start, stop) period over the last axis of ``x``; (..., period)."""
    if stat == "count":
        out = np.zeros((*x.shape[:-1], len(bounds)), dtype=np.int64)
    else:
        out = np.full((*x.shape[:-1], len(bounds)), np.nan, dtype=np.float32)
    for k, (a, b) in enumerate(bounds):
        if b <= a:
            continue
        v = x[..., a:b]
        if stat == "count":
            out[..., k] = np.count_nonzero(~np.isnan(v), axis=-1)
        elif stat == "median":
            out[..., k] = bn.nanmedian(v, axis=-1)  # C partial sort: ~2.5x the sort-based quantile
        elif stat == "percentile":
            out[..., k] = nanquantile(v, float(q) / 100)
        elif stat in ("mean", "std"):
            # contiguous: numpy's pairwise sums then add in the same order whatever the chunk layout
            out[..., k] = _moment(np.ascontiguousarray(v), stat)
        else:
            out[..., k] = nanreduce(_NAN_FUNCS[stat], v, axis=-1)
    return out


def cloud_fraction(ds: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """Share of masked (NaN) pixels per time step, dims (time,), float32 in 0..1: a per-acquisition cloud score.

    A pixel counts as masked when any variable is NaN there. Lazy on dask-backed data.
    """
    if "time" not in ds.dims:
        raise AnalyticsError(f"cloud_fraction needs a 'time' dimension; got dims {tuple(ds.dims)}")
    bad = _invalid(ds)
    spatial = [d for d in bad.dims if d != "time"]
    return bad.mean(spatial).astype("float32").rename("cloud_fraction").assign_attrs(units="1")


def best_pixel_composite(
    ds: xr.Dataset,
    by: str | xr.DataArray = "least-cloud",
    *,
    mode: BestPixelMode | None = None,
    freq: str | None = None,
) -> xr.Dataset:
    """Per pixel, take every band from the one clear observation that scores best.

    ``by`` is "least-cloud" (the time step with the lowest :func:`cloud_fraction`, i.e. the clearest acquisition
    that sees the pixel), the name of a spectral index ("NDVI": greenest pixel, the classic max-NDVI composite)
    or of a variable of ``ds``, or a DataArray score with dims (time,) or (time, y, x). ``mode`` is "max" or
    "min" (default "min" for least-cloud, "max" otherwise). Only observations where every band is clear compete;
    ties take the earliest in time. ``freq`` (e.g. "1MS", "QS-DEC", "YS", "monthly") makes one composite per
    calendar period, the periods of :func:`composite` (:func:`~orbitcube.pipeline.analytics.periods.split_periods`).

    Returns a Dataset with dims (y, x) (or (time, y, x) with ``freq``, time at period starts): each band named
    ``<band>_best`` and ``best_time``, the date the pixel was taken from (NaT where never clear). Keeps coords,
    CRS and attrs; needs the full time axis per chunk (rechunked if split); lazy on dask-backed data.
    """
    if not isinstance(ds, xr.Dataset) or "time" not in ds.dims:
        raise AnalyticsError("best_pixel_composite needs a Dataset of bands with a 'time' dimension")
    mode = mode or ("min" if isinstance(by, str) and by == "least-cloud" else "max")
    if mode not in BEST_PIXEL_MODES:
        raise AnalyticsError(f"best_pixel_composite: mode={mode!r}; use one of {list(BEST_PIXEL_MODES)}")
    if isinstance(by, xr.DataArray):
        score = by
    elif by == "least-cloud":
        score = cloud_fraction(ds)
    elif by in ds.data_vars:
        score = ds[by]
    else:
        from orbitcube.pipeline.analytics.indices import spectral_index

        score = spectral_index(ds, by)
    if "time" not in score.dims or score.sizes["time"] != ds.sizes["time"]:
        raise AnalyticsError(
            f"best_pixel_composite: the score must have the cube's time axis ({ds.sizes['time']} steps); "
            f"got dims {dict(score.sizes)}"
        )
    score = score.where(~_invalid(ds)).broadcast_like(ds[next(iter(ds.data_vars))])
    if mode == "min":
        score = -score
    data = ds.assign(__score__=score)
    data = data if _is_sorted(data["time"].values) else data.sortby("time")
    bounds, labels = split_periods(data["time"].values, freq)
    out = _best(data.drop_vars("__score__"), data["__score__"], bounds)
    if freq:
        out = out.rename(period="time").assign_coords(time=labels).transpose("time", ...)
        # variables first, as the cube lists them: dims read (time, y, x)
        out = xr.Dataset({v: out[v].variable for v in out.data_vars}, coords=out.coords)
    else:
        out = out.isel(period=0, drop=True)
    out.attrs.update(ds.attrs)
    out.attrs.update(composite="best-pixel", best_by=by if isinstance(by, str) else str(by.name), mode=mode)
    out.attrs["period"] = period_offset(freq) if freq else "all"
    return out


def _invalid(ds: xr.Dataset | xr.DataArray) -> xr.DataArray:
    if isinstance(ds, xr.DataArray):
        return ds.isnull()
    bad = None
    for v in ds.data_vars:
        bad = ds[v].isnull() if bad is None else bad | ds[v].isnull()
    return bad


def _best(ds: xr.Dataset, score: xr.DataArray, bounds: list[tuple[int, int]]) -> xr.Dataset:
    """Per pixel and [start, stop) period of ``bounds``, every band of ``ds`` at the time step of the highest
    ``score`` (NaN: not competing; ties take the earliest); dims (..., period)."""
    if score.chunks is not None:
        score = score.chunk({"time": -1})
    times = ds["time"].values.astype("datetime64[ns]")
    sizes = {"output_sizes": {"period": len(bounds)}}

    def pick(s: np.ndarray) -> np.ndarray:
        ok = ~np.isnan(s)
        filled = np.where(ok, s, -np.inf)
        out = np.full((*s.shape[:-1], len(bounds)), -1, dtype=np.int32)
        for k, (a, b) in enumerate(bounds):
            if b > a:
                out[..., k] = np.where(ok[..., a:b].any(-1), a + np.argmax(filled[..., a:b], axis=-1), -1)
        return out

    idx = xr.apply_ufunc(
        pick,
        score,
        input_core_dims=[["time"]],
        output_core_dims=[["period"]],
        dask="parallelized",
        output_dtypes=[np.int32],
        dask_gufunc_kwargs=sizes,
    )

    def take(v: np.ndarray, i: np.ndarray) -> np.ndarray:
        got = np.take_along_axis(v, np.clip(i, 0, None), axis=-1)
        return np.where(i >= 0, got, np.nan).astype(v.dtype)

    out = {}
    for v in ds.data_vars:
        band = ds[v].chunk({"time": -1}) if ds[v].chunks is not None else ds[v]
        out[f"{v}_best"] = xr.apply_ufunc(
            take,
            band,
            idx,
            input_core_dims=[["time"], ["period"]],
            output_core_dims=[["period"]],
            dask="parallelized",
            output_dtypes=[ds[v].dtype],
        ).assign_attrs(ds[v].attrs)
    out["best_time"] = xr.apply_ufunc(
        lambda i: np.where(i >= 0, times[np.clip(i, 0, None)], np.datetime64("NaT", "ns")),
        idx,
        dask="parallelized",
        output_dtypes=["datetime64[ns]"],
    )
    return xr.Dataset(out)


__all__ = [
    "BEST_PIXEL_MODES",
    "COMPOSITE_STATS",
    "STATS",
    "BestPixelMode",
    "CompositeStat",
    "ReduceStat",
    "best_pixel_composite",
    "cloud_fraction",
    "composite",
    "nanquantile",
]
