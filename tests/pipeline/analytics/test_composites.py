"""Composites, scored against the simulator's clear-sky truth."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from catalog.simulator import Mission
from pipeline.analytics import composite
from pipeline.errors import AnalyticsError


def test_median_of_a_cloudy_season_matches_clear_sky_truth(s2_mission: Mission, s2_cube: xr.Dataset) -> None:
    """Median of June-July (cloudy passes masked) vs the median of the clear-sky truth over the same days."""
    season = s2_cube.sel(time=slice("2023-06-01", "2023-07-31"))
    got = composite(season[["red", "nir"]], "median")
    truth = s2_mission.truth.clear_sky_cube(s2_mission.config.truth_geobox(10), bands=("red", "nir"))
    want = truth.sel(time=slice("2023-06-01", "2023-07-31")).median("time")
    cloudy = float(np.isnan(season.nir.values).mean())
    assert cloudy > 0.1, "the season should be cloudy for this test to mean something"
    for b in ("red", "nir"):
        err = np.abs(got[f"{b}_median"].values - want[b].values)
        assert (err[np.isfinite(err)] < 0.02).mean() >= 0.95, b
        assert np.isfinite(err).mean() > 0.99


def test_periods_stats_and_counts() -> None:
    t = np.array(["2023-01-05", "2023-01-20", "2023-02-03", "2023-02-18"], dtype="datetime64[ns]")
    v = np.array([1.0, np.nan, 3.0, 5.0], "f4").reshape(4, 1, 1)
    da = xr.DataArray(v, dims=("time", "y", "x"), coords={"time": t}, name="ndvi")
    m = composite(da, "median", freq="1MS")
    assert m.name == "ndvi_median" and m.values.ravel().tolist() == [1.0, 4.0]
    assert composite(da, "count", freq="1MS").values.ravel().tolist() == [1, 2]
    assert composite(da, "max").values.ravel().tolist() == [5.0]
    assert composite(da, "percentile", q=50).name == "ndvi_p50"
    with pytest.raises(AnalyticsError, match="percentile"):
        composite(da, "percentile")
    with pytest.raises(AnalyticsError, match="unknown composite"):
        composite(da, "mode")
