"""Temporal resampling (monthly, seasonal, annual) and gap-filling by interpolation in time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from orbitcube.pipeline.analytics import gap_fill, resample_time
from orbitcube.pipeline.errors import AnalyticsError


def _series(values, times) -> xr.DataArray:
    v = np.asarray(values, "f4").reshape(len(times), 1, 1)
    return xr.DataArray(v, dims=("time", "y", "x"), coords={"time": pd.DatetimeIndex(times)}, name="ndvi")


def test_monthly_seasonal_annual_periods() -> None:
    t = pd.date_range("2022-12-01", "2023-12-31", freq="MS") + pd.Timedelta(days=9)  # 13 months
    x = np.arange(13, dtype="f4")
    x[4] = np.nan  # April masked
    da = _series(x, t)
    monthly = resample_time(da, "monthly", "mean")
    assert monthly.name == "ndvi_mean" and monthly.sizes["time"] == 13
    assert np.isnan(monthly.values[4, 0, 0]) and monthly.values[5, 0, 0] == 5
    seasons = resample_time(da, "seasonal", "median")
    assert list(seasons["season"].values) == ["DJF", "MAM", "JJA", "SON", "DJF"]
    # DJF 2022/23 = Dec, Jan, Feb = 0, 1, 2; MAM = 3, (Apr masked), 5
    assert seasons.values[:2, 0, 0].tolist() == [1.0, 4.0]
    annual = resample_time(da, "annual", "count")
    assert annual.values.ravel().tolist() == [1, 11]
    assert resample_time(da, "YS", "max").values.ravel().tolist() == [0.0, 12.0]


def test_resample_keeps_crs_and_is_lazy(small_cube: xr.Dataset) -> None:
    lazy = resample_time(small_cube.chunk({"x": 5}), "monthly", "median")
    assert lazy["red_median"].chunks is not None
    eager = resample_time(small_cube, "monthly", "median")
    xr.testing.assert_allclose(lazy.compute(), eager)
    assert "spatial_ref" in eager.coords and eager.odc.crs == small_cube.odc.crs
    assert eager.attrs["title"] == "synthetic"


def test_bad_period_is_refused() -> None:
    da = _series([1, 2], ["2023-01-01", "2023-01-02"])
    with pytest.raises(AnalyticsError, match="unknown period 'fortnightly'.*monthly, seasonal, annual"):
        resample_time(da, "fortnightly")


def test_gap_fill_interpolates_in_time_not_by_index() -> None:
    # uneven dates: 10 Jan lies 9 of the 37 days from 1 Jan to 7 Feb
    t = ["2023-01-01", "2023-01-10", "2023-02-07", "2023-02-10"]
    da = _series([0.0, np.nan, 3.7, np.nan], t)
    filled = gap_fill(da)
    assert filled.values[1, 0, 0] == pytest.approx(0.9, abs=1e-6)  # 3.7 * 9 / 37
    assert np.isnan(filled.values[3, 0, 0])  # no extrapolation past the last clear observation
    assert filled.name == "ndvi" and filled.dtype == np.float32
    assert gap_fill(da, method="nearest").values[1, 0, 0] == 0.0
    assert np.isnan(gap_fill(da, max_gap=30).values[1, 0, 0])  # the gap spans 37 days
    assert gap_fill(da, max_gap=40).values[1, 0, 0] == pytest.approx(0.9, abs=1e-6)


def test_gap_fill_dask_split_time_matches_numpy(small_cube: xr.Dataset) -> None:
    eager = gap_fill(small_cube)
    lazy = gap_fill(small_cube.chunk({"time": 2, "y": 4}))
    assert lazy["nir"].chunks is not None
    xr.testing.assert_identical(lazy.compute(), eager)
    # every interior gap is filled; only leading/trailing NaN remain
    v = eager["nir"].values
    orig = small_cube["nir"].values
    for iy, ix in np.ndindex(v.shape[1:]):
        ok = np.flatnonzero(np.isfinite(orig[:, iy, ix]))
        if ok.size:
            assert np.isfinite(v[ok[0] : ok[-1] + 1, iy, ix]).all()
    with pytest.raises(AnalyticsError, match="method"):
        gap_fill(small_cube, method="cubic")
