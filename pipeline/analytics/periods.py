"""Calendar periods: the one place that splits a time axis into periods (months, seasons, years, any pandas
offset) for every reduction over periods (:func:`~orbitcube.pipeline.analytics.composite`,
:func:`~orbitcube.pipeline.analytics.best_pixel_composite`, :func:`~orbitcube.pipeline.analytics.resample_time`, the recipe's
``composite`` step), and names the statistics those reductions produce."""

from __future__ import annotations

import numpy as np
import pandas as pd

from orbitcube.pipeline.errors import AnalyticsError

__all__ = ["FREQ_ALIASES", "MAX_PERIODS", "period_offset", "split_periods", "stat_suffix"]

#: friendly period names -> pandas offsets (period starts)
FREQ_ALIASES = {
    "monthly": "1MS",
    "month": "1MS",
    "seasonal": "QS-DEC",
    "season": "QS-DEC",
    "annual": "YS",
    "year": "YS",
    "yearly": "YS",
}

#: most periods one reduction may make (``freq="1s"`` over a year would be 31.5 million)
MAX_PERIODS = 100_000


def period_offset(freq: str) -> str:
    """The pandas offset alias for ``freq``: a friendly name of :data:`FREQ_ALIASES` ("monthly" -> "1MS",
    "seasonal" -> "QS-DEC": DJF, MAM, JJA, SON, "annual" -> "YS") or a pandas offset alias, returned unchanged.
    Raises AnalyticsError naming ``freq`` when it is neither."""
    offset = FREQ_ALIASES.get(freq.lower(), freq) if isinstance(freq, str) else freq
    try:
        pd.tseries.frequencies.to_offset(offset)
    except (ValueError, TypeError):
        raise AnalyticsError(
            f"unknown period {freq!r} (freq); use monthly, seasonal, annual or a pandas offset such as "
            "'1MS', 'QS-DEC', 'YS', '16D'"
        ) from None
    return offset


def _count_periods(time: np.ndarray, offset: pd.DateOffset) -> int:
    """How many periods of ``offset`` span the sorted datetime64 ``time``, computed from its first and last date
    (exact for fixed-length offsets, a close estimate for calendar ones) without building the bins."""
    ns = np.asarray(time).astype("datetime64[ns]").astype(np.int64)
    t0, span = pd.Timestamp(ns[0]), int(ns[-1]) - int(ns[0])  # Python ints: no overflow over centuries
    if isinstance(offset, pd.offsets.Tick):
        return span // offset.nanos + 2
    k = 12  # the mean length of a calendar period over a dozen steps (months, quarters, weeks, business days)
    try:
        step = ((t0 + k * offset) - t0).value / k
    except (OverflowError, ValueError):
        return 1
    return int(span / step) + 2 if step > 0 else 1


def split_periods(
    time: np.ndarray, freq: str | None
) -> tuple[list[tuple[int, int]], pd.DatetimeIndex | None]:
    """Split a sorted datetime64 ``time`` axis into calendar periods of ``freq``.

    Returns the ``[start, stop)`` time indices of each period, in order, and the period labels (period starts,
    as pandas and xarray ``resample`` label them); periods without an observation between the first and the last
    are kept as empty ``(0, 0)``. ``freq`` is a pandas offset ("1MS", "QS-DEC", "YS", "16D") or a friendly name
    (see :func:`period_offset`); ``None`` gives one period over the whole axis and no labels. More than
    :data:`MAX_PERIODS` periods raise AnalyticsError (checked from the time range before any bin is built).
    """
    if freq is None:
        return [(0, len(time))], None
    offset = period_offset(freq)
    index = pd.DatetimeIndex(time)
    if len(index):
        n = _count_periods(index.values, pd.tseries.frequencies.to_offset(offset))
        if n > MAX_PERIODS:
            raise AnalyticsError(
                f"freq={freq!r} splits {index[0]} .. {index[-1]} into about {n:,} periods, more than "
                f"{MAX_PERIODS:,}: did you mean '1MS' (month starts), 'QS-DEC' (seasons) or 'YS' (years)?"
            )
    pos = pd.Series(np.arange(len(time)), index=index).resample(offset)
    first, last = pos.min(), pos.max()  # NaN for the empty periods between observations
    bounds = [
        (int(a), int(b) + 1) if not np.isnan(a) else (0, 0)
        for a, b in zip(first.to_numpy(float), last.to_numpy(float), strict=True)
    ]
    return bounds, pd.DatetimeIndex(first.index)


def stat_suffix(stat: str, q: float | None = None) -> str:
    """The suffix a reduction adds to a variable name: ``stat`` itself, or for a percentile ``p<q>`` with the
    decimal point as ``_`` (q=2 -> "p2", q=2.5 -> "p2_5", q=99.9 -> "p99_9"), so distinct percentiles never
    share a name and every name is a valid Zarr/xarray variable name."""
    if stat != "percentile":
        return stat
    if q is None:
        raise AnalyticsError("percentile needs q between 0 and 100, e.g. q=25")
    text = np.format_float_positional(float(q), trim="-")
    return "p" + text.replace(".", "_")
