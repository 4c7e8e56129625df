"""Calendar periods: one splitting function behind composite, best-pixel and resample_time; percentile names."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from orbitcube.pipeline.analytics import best_pixel_composite, composite, resample_time
from orbitcube.pipeline.analytics.periods import MAX_PERIODS, split_periods, stat_suffix
from orbitcube.pipeline.errors import AnalyticsError

GAPPY = pd.to_datetime(["2023-01-02", "2023-01-09", "2023-01-30", "2023-03-01", "2023-03-05", "2023-06-11"])


def _cube(times: pd.DatetimeIndex, seed: int = 1) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    data = {}
    for b in ("red", "nir"):
        v = rng.random((len(times), 4, 5)).astype("float32")
        v[rng.random(v.shape) < 0.3] = np.nan
        data[b] = (("time", "y", "x"), v)
    return xr.Dataset(data, coords={"time": times, "y": np.arange(4.0), "x": np.arange(5.0)})


def test_periods_agree_with_pandas_resample_including_empty_ones() -> None:
    for freq in ("1MS", "QS-DEC", "YS", "16D", "W"):
        bounds, labels = split_periods(GAPPY.values, freq)
        groups = list(pd.Series(np.arange(len(GAPPY)), index=GAPPY).resample(freq))
        assert list(labels) == [label for label, _ in groups], freq
        assert bounds == [(int(g.iloc[0]), int(g.iloc[-1]) + 1) if len(g) else (0, 0) for _, g in groups]
    (b1, l1), (b2, l2) = split_periods(GAPPY.values, "monthly"), split_periods(GAPPY.values, "1MS")
    assert b1 == b2 and l1.equals(l2)
    assert split_periods(GAPPY.values, None) == ([(0, len(GAPPY))], None)


def test_too_many_periods_are_refused_before_any_bin_is_built() -> None:
    """freq='1s' over a year would be 31.5 million bins (it hung for minutes); refused at once, naming both."""
    year = pd.to_datetime(["2023-01-01", "2023-12-31"])
    da = xr.DataArray(np.ones((2, 1, 1), "f4"), dims=("time", "y", "x"), coords={"time": year}, name="v")
    t0 = time.perf_counter()
    with pytest.raises(AnalyticsError, match=r"freq='1s' .* about 31,449,602 periods, more than 100,000"):
        composite(da, "median", freq="1s")
    for call in (
        lambda: best_pixel_composite(da.to_dataset(), "v", freq="1min"),
        lambda: resample_time(da, "10s"),
    ):
        with pytest.raises(AnalyticsError, match="periods, more than"):
            call()
    assert time.perf_counter() - t0 < 5
    # calendar offsets are estimated from their mean length: 560 years of business days (146,000) are refused,
    # a century of months is fine
    century = pd.to_datetime(["1950-01-01", "2049-12-31"]).values
    assert len(split_periods(century, "1MS")[0]) == 1200
    with pytest.raises(AnalyticsError, match="freq='B' .* periods"):
        split_periods(pd.to_datetime(["1700-01-01", "2260-01-01"]).values, "B")
    assert MAX_PERIODS == 100_000


def test_best_pixel_uses_the_composite_periods_on_unsorted_dask_cubes() -> None:
    """Best-pixel per period splits time as composite does, also when the cube is not in time order (it used to
    fail on dask cubes with 'Index must be monotonic for resampling')."""
    ds = _cube(GAPPY)
    order = [3, 0, 5, 1, 4, 2]
    shuffled = ds.isel(time=order).chunk({"time": 2, "x": 3})
    got = best_pixel_composite(shuffled, "NDVI", freq="1MS").compute()
    want = best_pixel_composite(ds, "NDVI", freq="1MS")
    xr.testing.assert_identical(got, want)
    med = composite(ds.red, "median", freq="1MS")
    assert list(want.time.values) == list(med.time.values)  # Jan .. Jun, with the empty Feb, Apr, May
    empty = np.isnan(med.values).all(axis=(1, 2))
    assert empty.tolist() == [False, True, False, True, True, False]
    assert np.isnat(want.best_time.values[empty]).all() and np.isnan(want.red_best.values[empty]).all()


def test_percentile_names_are_unambiguous_and_valid_variable_names() -> None:
    """q=2 and q=2.5 both used to become ``_p2``."""
    assert [stat_suffix("percentile", q) for q in (2, 2.0, 2.5, 99.9, 0.001, 50)] == [
        "p2", "p2", "p2_5", "p99_9", "p0_001", "p50",
    ]  # fmt: skip
    assert stat_suffix("median") == "median"
    da = _cube(GAPPY).red
    both = xr.merge([composite(da, "percentile", q=2), composite(da, "percentile", q=2.5)])
    assert sorted(both.data_vars) == ["red_p2", "red_p2_5"]
    assert not np.array_equal(both.red_p2.values, both.red_p2_5.values, equal_nan=True)
    assert all(str(n).isidentifier() for n in both.data_vars)
