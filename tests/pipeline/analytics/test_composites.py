"""Composites, scored against the simulator's clear-sky truth."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from orbitcube.catalog.simulator import Mission
from orbitcube.pipeline.analytics import composite
from orbitcube.pipeline.errors import AnalyticsError


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


@pytest.mark.parametrize("freq", ["1MS", "QS-DEC", None])
def test_time_chunked_composites_equal_unchunked(s2_mission: Mission, s2_cube: xr.Dataset, freq) -> None:
    """A cube loaded in time chunks (load_cube's memory budget) reduces to the same composites as the whole-axis
    cube: per period (chunks aligned with whole periods) and for the whole series (count/min/max/mean/std
    streamed chunk by chunk); no task holds the whole series for a per-period statistic."""
    from orbitcube.pipeline.load import load_cube

    whole = s2_cube[["red", "nir"]]
    gbox = s2_mission.config.truth_geobox(10)
    chunked = load_cube(s2_mission.items, ["red", "nir"], geobox=gbox, chunks={"time": 5})
    assert len(chunked["red"].chunks[0]) > 1
    for stat in ("median", "mean", "min", "max", "count", "std", "percentile"):
        want = composite(whole, stat, freq=freq, q=10)
        got = composite(chunked, stat, freq=freq, q=10)
        if freq is not None:  # reduced chunk by chunk along time, never the whole series in one task
            assert len(got.chunksizes["time"]) > 1
        xr.testing.assert_equal(got.compute(), want)  # mean, std: float64 sums either way, same float32


def test_period_chunks_hold_whole_periods() -> None:
    from orbitcube.pipeline.analytics.composites import period_chunks

    bounds = [(0, 6), (6, 12), (0, 0), (12, 13), (13, 20)]
    assert period_chunks(bounds, 20, 12) == (1, [(0, 6), (6, 12), (12, 12), (12, 13), (13, 20)])
    assert period_chunks(bounds, 20, 15) == (2, [(0, 12), (12, 13), (13, 20)])
    assert period_chunks(bounds, 20, 100) == (14, [(0, 20)])


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


def test_best_pixel_by_max_ndvi_takes_every_band_from_the_greenest_step(small_cube: xr.Dataset) -> None:
    from orbitcube.pipeline.analytics import best_pixel_composite

    best = best_pixel_composite(small_cube, "NDVI")
    red, nir = small_cube.red.values, small_cube.nir.values
    clear = np.isfinite(red) & np.isfinite(nir) & np.isfinite(small_cube.blue.values)
    ndvi = np.where(clear, (nir - red) / (nir + red), -np.inf)
    idx = ndvi.argmax(0)
    seen = clear.any(0)
    yy, xx = np.nonzero(seen)
    assert set(best.data_vars) == {"blue_best", "red_best", "nir_best", "best_time"}
    np.testing.assert_array_equal(best.red_best.values[yy, xx], red[idx[yy, xx], yy, xx])
    np.testing.assert_array_equal(best.blue_best.values[yy, xx], small_cube.blue.values[idx[yy, xx], yy, xx])
    np.testing.assert_array_equal(best.best_time.values[yy, xx], small_cube.time.values[idx[yy, xx]])
    assert np.isnan(best.red_best.values[~seen]).all() and np.isnat(best.best_time.values[~seen]).all()
    assert best.odc.crs == small_cube.odc.crs and best.attrs["title"] == "synthetic"
    lazy = best_pixel_composite(small_cube.chunk({"time": 2, "x": 5}), "NDVI")
    assert lazy.red_best.chunks is not None
    xr.testing.assert_identical(lazy.compute(), best)


def test_best_pixel_by_least_cloud_prefers_the_clearest_acquisition(small_cube: xr.Dataset) -> None:
    from orbitcube.pipeline.analytics import best_pixel_composite, cloud_fraction

    ds = small_cube.copy(deep=True)
    ds["red"][2] = ds["red"][2].where(ds.x < ds.x[3])  # step 2 clear only on the west edge ...
    for b in ("blue", "red", "nir"):
        ds[b][4] = ds[b][4].fillna(0.1)  # ... step 4 entirely clear
    cf = cloud_fraction(ds)
    assert cf.dims == ("time",) and float(cf[4]) == 0.0
    best = best_pixel_composite(ds)  # by least cloud
    assert (best.best_time.values == ds.time.values[4]).all()
    np.testing.assert_array_equal(best.nir_best.values, ds.nir.values[4])
    monthly = best_pixel_composite(ds, freq="1MS")
    assert monthly.sizes["time"] == 2 and monthly.attrs["period"] == "1MS"
    assert (monthly.best_time.values[0] == ds.time.values[4]).all()  # March: the clear 29 March
    april = pd.DatetimeIndex(monthly.best_time.values[1].ravel()).dropna()
    assert (april == pd.Timestamp(ds.time.values[5])).all()  # April has one date
    with pytest.raises(AnalyticsError, match="time axis"):
        best_pixel_composite(ds, xr.DataArray(np.ones(2), dims="time"))


def test_composites_keep_crs_and_match_on_numpy_and_dask(small_cube: xr.Dataset) -> None:
    for stat, q in (("median", None), ("mean", None), ("percentile", 90), ("count", None), ("min", None)):
        eager = composite(small_cube, stat, q=q)
        lazy = composite(small_cube.chunk({"time": 3, "y": 4}), stat, q=q)
        assert lazy["red_" + ("p90" if q else stat)].chunks is not None
        xr.testing.assert_identical(lazy.compute(), eager)
        assert eager.odc.crs == small_cube.odc.crs
    want = np.nanpercentile(small_cube.nir.values, 90, axis=0)
    np.testing.assert_allclose(composite(small_cube, "percentile", q=90).nir_p90.values, want, rtol=1e-6)


def test_median_composite_of_truth_observed_cube_matches_clear_sky(
    s2_mission: Mission, season_observed
) -> None:
    """The same score as above on exactly what a perfect loader returns (truth observed cube, 10 m)."""
    gbox = s2_mission.config.truth_geobox(10)
    season = season_observed[["red", "nir"]].sel(time=slice("2023-06-01", "2023-07-31"))
    assert float(np.isnan(season.nir.values).mean()) > 0.1
    got = composite(season.chunk({"y": 64, "x": 64}), "median").compute()
    clear = s2_mission.truth.clear_sky_cube(gbox, bands=("red", "nir"))
    want = clear.sel(time=slice("2023-06-01", "2023-07-31")).median("time")
    for b in ("red", "nir"):
        err = np.abs(got[f"{b}_median"].values - want[b].values)
        assert np.isfinite(err).mean() > 0.99
        assert (err[np.isfinite(err)] < 0.02).mean() >= 0.95, b


def test_sort_based_quantiles_equal_numpy_nan_quantiles() -> None:
    """The fast sort-based median/percentile equals numpy's nanmedian/nanpercentile (linear method), NaN-aware,
    on dask and numpy data alike, with empty calendar periods as NaN and counts as 0."""
    rng = np.random.default_rng(3)
    x = rng.random((9, 6, 7)).astype("float32")
    x[rng.random(x.shape) < 0.4] = np.nan
    x[:, 0, 0] = np.nan  # never clear
    t = pd.to_datetime(
        ["2023-01-02", "2023-01-09", "2023-01-30", "2023-03-01", "2023-03-05"] + ["2023-03-20"] * 4
    )
    da = xr.DataArray(x, dims=("time", "y", "x"), coords={"time": t}, name="v")
    for data in (da, da.chunk({"y": 3, "x": 4})):
        med = composite(data, "median", freq="1MS")
        p30 = composite(data, "percentile", q=30)
        cnt = composite(data, "count", freq="1MS")
        assert list(med.time.values) == list(pd.to_datetime(["2023-01-01", "2023-02-01", "2023-03-01"]))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want_jan = np.nanmedian(x[:3], axis=0)
            want_p30 = np.nanpercentile(x, 30, axis=0)
        np.testing.assert_allclose(med.values[0], want_jan, rtol=1e-6)
        assert np.isnan(med.values[1]).all() and (cnt.values[1] == 0).all()
        np.testing.assert_allclose(p30.values, want_p30, rtol=1e-6)
        assert np.isnan(p30.values[0, 0]) and cnt.values[:, 0, 0].sum() == 0
