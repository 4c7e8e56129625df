"""Change detection: before/after differences with thresholds (dNBR burn severity) and per-pixel breaks in time."""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import xarray as xr

from orbitcube.pipeline.analytics._common import nanreduce
from orbitcube.pipeline.errors import AnalyticsError

#: USGS dNBR burn severity classes (Key & Benson 2006): upper bounds and names
DNBR_CLASSES = (
    (-0.25, "enhanced_regrowth_high"),
    (-0.1, "enhanced_regrowth_low"),
    (0.1, "unburned"),
    (0.27, "low"),
    (0.44, "moderate_low"),
    (0.66, "moderate_high"),
    (np.inf, "high"),
)


#: which way a break in :func:`detect_breaks` must go
BreakDirection = Literal["decrease", "increase", "both"]
BREAK_DIRECTIONS: tuple[BreakDirection, ...] = get_args(BreakDirection)


def difference_change(before: xr.DataArray, after: xr.DataArray, threshold: float) -> xr.Dataset:
    """``difference = after - before`` and ``changed = |difference| >= threshold`` (NaN where either is NaN).

    Dims (y, x) of the inputs; use composites of an index before and after an event.
    """
    diff = (after - before).astype("float32").rename("difference")
    changed = (np.abs(diff) >= threshold).where(diff.notnull()).rename("changed")
    return xr.Dataset({"difference": diff, "changed": changed}, attrs={"threshold": threshold})


def dnbr_severity(nbr_before: xr.DataArray, nbr_after: xr.DataArray) -> xr.Dataset:
    """dNBR = NBR before - NBR after and its USGS severity class (0 = enhanced regrowth high ... 6 = high).

    Class names are in ``attrs["classes"]``; NaN inputs give class 255.
    """
    dnbr = (nbr_before - nbr_after).astype("float32").rename("dnbr")
    bounds = np.array([b for b, _ in DNBR_CLASSES[:-1]], dtype="float32")
    cls = xr.apply_ufunc(
        lambda d: np.where(np.isfinite(d), np.digitize(d, bounds), 255).astype("uint8"),
        dnbr,
        dask="parallelized",
        output_dtypes=[np.uint8],
    ).rename("severity")
    return xr.Dataset({"dnbr": dnbr, "severity": cls}, attrs={"classes": [n for _, n in DNBR_CLASSES]})


def _breaks(x: np.ndarray, window: int, min_valid: int, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """x (..., time) -> (index of the first valid observation after the largest step, its magnitude: median after
    minus median before), or (-1, NaN) where no step goes the way of ``sign``. A step's score is the smallest of (median after - median before), (value at k - median
    before) and (value at k - previous clear value), signed by the direction."""
    t = x.shape[-1]
    best = np.full(x.shape[:-1], -np.inf, dtype=np.float32)
    idx = np.full(x.shape[:-1], -1, dtype=np.int64)
    mag = np.full(x.shape[:-1], np.nan, dtype=np.float32)
    valid = np.isfinite(x)
    # the last clear observation strictly before each step: the break must show against it too, so that the
    # step after the first changed observation (whose window medians barely move) does not win on noise
    last = np.maximum.accumulate(np.where(valid, np.arange(t), -1), axis=-1)
    with np.errstate(invalid="ignore"):
        for k in range(1, t):
            lo, hi = max(0, k - window), min(t, k + window)
            if not valid[..., k:hi].any():
                continue
            before = nanreduce(np.nanmedian, x[..., lo:k])
            after = nanreduce(np.nanmedian, x[..., k:hi])
            enough = (valid[..., lo:k].sum(-1) >= min_valid) & (valid[..., k:hi].sum(-1) >= min_valid)
            # the observation at k must itself show the change, not only the window median after it
            step = np.minimum(sign * (after - before), sign * (x[..., k] - before))
            prev = last[..., k - 1]
            x_prev = np.take_along_axis(x, np.clip(prev, 0, None)[..., None], axis=-1)[..., 0]
            step = np.where(prev >= 0, np.minimum(step, sign * (x[..., k] - x_prev)), step)
            # only a step in the requested direction can be the break (a score <= 0 is a step the other way or
            # none: without this a pure increase reported its least negative step as a "decrease")
            step = np.where(enough & valid[..., k] & (step > 0), step, -np.inf)
            better = step > best
            best = np.where(better, step, best)
            idx = np.where(better, k, idx)
            mag = np.where(better, after - before, mag)
    return idx, np.where(np.isfinite(best), mag, np.nan).astype(np.float32)


def detect_breaks(
    series: xr.DataArray,
    *,
    threshold: float = 0.3,
    window: int = 4,
    min_valid: int = 2,
    direction: BreakDirection = "decrease",
) -> xr.Dataset:
    """Per-pixel break detection on an index time series (dims (time, y, x), NaN where unobserved).

    For every time step k the median of up to ``window`` steps before k is compared with the median of up to
    ``window`` steps from k on (each needing ``min_valid`` clear observations, and k itself clear). A step's score
    is the smallest of (median after - median before), (value at k - median before) and (value at k - the previous
    clear value), signed by ``direction`` ("decrease", "increase" or "both"), so the first changed observation, not
    the one before or after it, carries the break. The break is the step with the highest positive score, so its
    magnitude has the requested sign (a pure increase is never a "decrease"; "both" keeps the larger absolute
    change of the two); it counts when ``|magnitude| >= threshold``. Returns ``break_date`` (the first clear observation after the break, NaT where
    none), ``magnitude`` (median after - median before at the break, index units; NaN where unchanged) and
    ``changed`` (bool), dims (y, x), keeping the (y, x) coords and the ``spatial_ref`` CRS. The whole time axis
    must be in one chunk (it is rechunked if not); lazy on dask input.
    """
    if "time" not in series.dims:
        raise AnalyticsError(f"detect_breaks needs a 'time' dimension; got {tuple(series.dims)}")
    if direction not in BREAK_DIRECTIONS:
        raise AnalyticsError(f"direction={direction!r}; use one of {list(BREAK_DIRECTIONS)}")
    if series.sizes["time"] < 2 * min_valid:
        raise AnalyticsError(
            f"detect_breaks needs at least {2 * min_valid} time steps; got {series.sizes['time']}"
        )
    if series.chunks is not None:
        series = series.chunk({"time": -1})

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if direction == "both":
            i_d, m_d = _breaks(x, window, min_valid, -1.0)
            i_u, m_u = _breaks(x, window, min_valid, 1.0)
            up = np.nan_to_num(np.abs(m_u), nan=-1) > np.nan_to_num(np.abs(m_d), nan=-1)
            return np.where(up, i_u, i_d), np.where(up, m_u, m_d)
        return _breaks(x, window, min_valid, -1.0 if direction == "decrease" else 1.0)

    idx, mag = xr.apply_ufunc(
        run,
        series,
        input_core_dims=[["time"]],
        output_core_dims=[[], []],
        dask="parallelized",
        output_dtypes=[np.int64, np.float32],
    )
    changed = (np.abs(mag) >= threshold) & (idx >= 0)
    times = series["time"].values
    date = xr.apply_ufunc(
        lambda i, c: np.where(c & (i >= 0), times[np.clip(i, 0, len(times) - 1)], np.datetime64("NaT", "ns")),
        idx,
        changed,
        dask="parallelized",
        output_dtypes=["datetime64[ns]"],
    )
    out = xr.Dataset({"break_date": date, "magnitude": mag.where(changed), "changed": changed})
    out.attrs.update(threshold=threshold, window=window, direction=direction, index=str(series.name))
    return out


__all__ = [
    "BREAK_DIRECTIONS",
    "BreakDirection",
    "DNBR_CLASSES",
    "detect_breaks",
    "difference_change",
    "dnbr_severity",
]
