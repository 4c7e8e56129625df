"""Per-pixel trend, anomaly and seasonal statistics: known answers on synthetic series, and the simulator's
planted phenology (cropland peaks on day 190)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from orbitcube.catalog.simulator import LandCover, Truth
from orbitcube.pipeline.analytics import anomaly, linear_trend, seasonal_stats, spectral_index
from orbitcube.pipeline.errors import AnalyticsError


def _cube(values: np.ndarray, times) -> xr.DataArray:
    return xr.DataArray(
        values.astype("f4"),
        dims=("time", "y", "x"),
        coords={"time": pd.DatetimeIndex(times)},
        name="ndvi",
        attrs={"units": "1"},
    )


def _seasonal_years(rng, drought_pixel=True) -> xr.DataArray:
    t = pd.date_range("2019-01-01", "2022-12-31", freq="5D")
    season = 0.5 + 0.3 * np.cos(2 * np.pi * (t.dayofyear.values - 180) / 365.25)
    x = np.repeat(season[:, None, None], 3, axis=2) + rng.normal(0, 0.005, (len(t), 1, 3))
    if drought_pixel:
        x[t.year == 2022, 0, 1] -= 0.2
    x[rng.uniform(size=x.shape) < 0.25] = np.nan  # clouds
    return _cube(x, t)


def test_linear_trend_recovers_slope_and_significance() -> None:
    rng = np.random.default_rng(0)
    t = pd.date_range("2020-01-01", periods=110, freq="10D")  # three years
    years = (t - t[0]).days.values / 365.25
    x = np.empty((len(t), 1, 4))
    x[:, 0, 0] = 0.5 + 0.05 * years + rng.normal(0, 0.01, len(t))  # +0.05 per year
    x[:, 0, 1] = 0.5 + rng.normal(0, 0.01, len(t))  # no trend
    x[:, 0, 2] = np.nan  # never clear
    x[:, 0, 3] = np.nan
    x[:2, 0, 3] = 0.3  # too few observations
    x[::3, 0, 0] = np.nan  # cloud gaps
    da = _cube(x, t)
    tr = linear_trend(da)
    assert set(tr.data_vars) == {"ndvi_slope", "ndvi_intercept", "ndvi_pvalue", "ndvi_nobs"}
    assert tr["ndvi_slope"].values[0, 0] == pytest.approx(0.05, abs=0.004)
    assert tr["ndvi_intercept"].values[0, 0] == pytest.approx(0.5, abs=0.01)
    assert tr["ndvi_pvalue"].values[0, 0] < 1e-6 and tr["ndvi_pvalue"].values[0, 1] > 0.01
    assert np.isnan(tr["ndvi_slope"].values[0, 2:]).all() and tr["ndvi_nobs"].values[0, 3] == 2
    assert tr["ndvi_slope"].attrs["units"] == "1 per year"
    lazy = linear_trend(da.chunk({"time": 20, "x": 2}))  # time split: rechunked, same numbers
    assert lazy["ndvi_slope"].chunks is not None
    xr.testing.assert_identical(lazy.compute(), tr)


def test_linear_trend_p_values_are_uniform_without_trend() -> None:
    """Under the null (pure noise) about 5 % of pixels are 'significant' at 0.05: the test is calibrated."""
    rng = np.random.default_rng(1)
    t = pd.date_range("2020-01-01", periods=40, freq="16D")
    p = linear_trend(_cube(rng.normal(0.4, 0.05, (40, 40, 50)), t))["ndvi_pvalue"].values
    assert 0.03 < (p < 0.05).mean() < 0.07


def test_anomaly_against_earlier_years() -> None:
    da = _seasonal_years(np.random.default_rng(2))
    an = anomaly(da)  # default: every year before the last (2019-2021) is the reference
    assert an.name == "ndvi_anomaly" and set(an["time"].dt.year.values) == {2022}
    ok = np.isfinite(an.values)
    normal = an.values[:, 0, 0][ok[:, 0, 0]]
    assert abs(normal.mean()) < 0.01 and np.abs(normal).max() < 0.1  # within-month slope of the season: < 0.1
    assert np.nanmean(an.values[:, 0, 1]) == pytest.approx(-0.2, abs=0.02)
    z = anomaly(da.chunk({"x": 1}), reference=("2019", "2020"), kind="zscore")
    assert z.chunks is not None and set(z["time"].dt.year.values) == {2021, 2022}
    assert np.nanmean(z.values[z["time"].dt.year == 2022][:, 0, 1]) < -5
    pct = anomaly(da, groupby="season", kind="percent")
    assert np.nanmean(pct.values[:, 0, 1]) < -20


def test_anomaly_errors_name_the_fix() -> None:
    da = _cube(np.ones((3, 1, 1)), ["2023-01-01", "2023-02-01", "2023-03-01"])
    with pytest.raises(AnalyticsError, match="only 2023.*reference"):
        anomaly(da)
    with pytest.raises(AnalyticsError, match="no time step after"):
        anomaly(da, reference=("2023-01-01", "2023-03-31"))
    with pytest.raises(AnalyticsError, match="no observation for month"):
        anomaly(da, reference=("2023-01-01", "2023-01-31"))


def test_seasonal_stats_on_a_known_season() -> None:
    da = _seasonal_years(np.random.default_rng(3), drought_pixel=False)
    ss = seasonal_stats(da)
    assert list(ss["year"].values) == [2019, 2020, 2021, 2022]
    assert np.all(np.abs(ss["ndvi_peak_doy"].values - 180) <= 10)
    assert np.allclose(ss["ndvi_amplitude"].values, 0.6, atol=0.03)
    peak_t = pd.DatetimeIndex(ss["ndvi_peak_time"].values[:, 0, 0])
    assert list(peak_t.year) == [2019, 2020, 2021, 2022]
    whole = seasonal_stats(da.chunk({"x": 1}), per_year=False).compute()
    assert "year" not in whole.dims and whole["ndvi_peak"].values.max() <= 0.83


def test_seasonal_peak_matches_planted_cropland_phenology(
    year_truth: Truth, year_observed: xr.Dataset
) -> None:
    """Cropland is planted with its greenest day at DOY 190; the observed (cloudy) year finds it within 12 days
    (about two revisits) on >= 90 % of cropland pixels, with a large amplitude; water shows none."""
    ndvi = spectral_index(year_observed, "NDVI")
    ss = seasonal_stats(ndvi, per_year=False, fill_gaps=True).compute()
    assert ss["ndvi_peak_doy"].chunks is None and "spatial_ref" in ss.coords
    lc = year_truth.landcover(year_observed.odc.geobox)
    crop = lc == LandCover.CROPLAND
    assert crop.sum() > 200
    doy = ss["ndvi_peak_doy"].values[crop]
    assert (np.abs(doy - 190) <= 12).mean() >= 0.9
    assert np.nanmedian(ss["ndvi_amplitude"].values[crop]) > 0.4
