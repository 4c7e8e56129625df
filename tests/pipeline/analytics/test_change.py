"""Change detection scored against the simulator's planted deforestation, burn scar and flood.

Scoring rule: pixels whose centre lies within one pixel of an event polygon's edge are excluded (they mix the
before and after surfaces once resampled); every other pixel of the AOI counts.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from catalog.simulator import Mission
from pipeline.analytics import composite, detect_breaks, difference_change, dnbr_severity, spectral_index
from pipeline.analytics.score import edge_band

REVISIT_DAYS = 5  # Sentinel-2A + 2B


def _scored(truth, gbox):
    events = {k: truth.event_mask(gbox, k) for k in ("deforestation", "burn", "flood")}
    union = np.logical_or.reduce(list(events.values()))
    return events, union, ~edge_band(union, 1)


def test_breaks_find_planted_events_with_precision_recall_and_date(
    s2_mission: Mission, s2_cube: xr.Dataset
) -> None:
    gbox = s2_mission.config.truth_geobox(10)
    ndvi = spectral_index(s2_cube, "NDVI")
    breaks = detect_breaks(ndvi.chunk({"y": 64, "x": 64}), threshold=0.3).compute()
    events, union, scored = _scored(s2_mission.truth, gbox)
    pred = breaks["changed"].values
    tp = (pred & union & scored).sum()
    precision = tp / max((pred & scored).sum(), 1)
    recall = tp / (union & scored).sum()
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    times = ndvi["time"].values
    clear = np.isfinite(ndvi.values)
    for kind, mask in events.items():
        start = np.datetime64(s2_mission.truth.event(kind).start, "ns")
        inner = mask & scored
        assert (pred & inner).sum() / inner.sum() >= 0.9, kind
        # the break date is the first clear observation on or after the event start (within one revisit)
        after = times >= start
        first_clear = np.where(
            clear & after[:, None, None], np.arange(len(times))[:, None, None], len(times)
        ).min(0)
        hit = pred & inner & (first_clear < len(times))
        expected = times[first_clear[hit]]
        lag = (breaks["break_date"].values[hit] - expected).astype("timedelta64[D]").astype(int)
        assert np.mean(np.abs(lag) <= REVISIT_DAYS) >= 0.95, (kind, np.percentile(lag, [5, 50, 95]))
        assert (breaks["break_date"].values[hit] >= start).all(), kind


def test_dnbr_severity_marks_the_burn_scar(s2_mission: Mission, s2_cube: xr.Dataset) -> None:
    gbox = s2_mission.config.truth_geobox(10)
    start = np.datetime64(s2_mission.truth.event("burn").start, "ns")
    nbr = spectral_index(s2_cube, "NBR")
    pre = composite(
        nbr.sel(time=slice(start - np.timedelta64(30, "D"), start - np.timedelta64(1, "D"))), "median"
    )
    post = composite(nbr.sel(time=slice(start, start + np.timedelta64(30, "D"))), "median")
    sev = dnbr_severity(pre, post)
    events, union, scored = _scored(s2_mission.truth, gbox)
    burned = events["burn"] & scored
    classes = sev.attrs["classes"]
    assert (sev["severity"].values[burned] >= classes.index("moderate_high")).mean() > 0.9
    unburned = ~union & scored & np.isfinite(sev["dnbr"].values)
    assert (sev["severity"].values[unburned] == classes.index("unburned")).mean() > 0.9
    diff = difference_change(pre, post, threshold=0.3)
    assert diff["changed"].values[burned].mean() > 0.9


def test_breaks_on_a_synthetic_series_numpy_and_dask_agree() -> None:
    t = np.arange("2023-01-01", "2023-03-02", 5, dtype="datetime64[D]").astype("datetime64[ns]")
    rng = np.random.default_rng(0)
    x = np.full((len(t), 2, 2), 0.8, "f4") + rng.normal(0, 0.01, (len(t), 2, 2)).astype("f4")
    x[6:, 0, 0] = 0.2  # a drop at step 6
    x[6, 0, 0] = np.nan  # ... first seen clear at step 7
    x[3:5, 1, 1] = np.nan
    da = xr.DataArray(x, dims=("time", "y", "x"), coords={"time": t}, name="ndvi")
    out = detect_breaks(da, threshold=0.3)
    assert out["changed"].values.tolist() == [[True, False], [False, False]]
    assert out["break_date"].values[0, 0] == t[7]
    assert abs(float(out["magnitude"].values[0, 0]) + 0.6) < 0.05
    assert np.isnat(out["break_date"].values[1, 1])
    lazy = detect_breaks(da.chunk({"y": 1}), threshold=0.3).compute()
    xr.testing.assert_identical(lazy, out)


def _first_clear_after(var: xr.DataArray, start: np.datetime64) -> np.ndarray:
    """Per pixel, the date of the first clear observation on or after ``start`` (NaT if none)."""
    times = var["time"].values
    ok = np.isfinite(var.values) & (times >= start)[:, None, None]
    first = np.where(ok, np.arange(len(times))[:, None, None], len(times)).min(0)
    return np.where(first < len(times), times[np.clip(first, 0, len(times) - 1)], np.datetime64("NaT", "ns"))


def test_each_event_alone_with_its_own_index_on_the_truth_observed_cube(
    s2_mission: Mission, season_observed: xr.Dataset
) -> None:
    """Per event, precision and recall >= 0.9 over every pixel of the AOI (no edge exclusion: the observed truth
    cube has no resampling), and the break dated at the first clear observation after the event started, which
    is within one revisit of the start wherever the sky was clear then.

    Each event is found with the signal an analyst would use: a flood turns NDWI positive, clearing exposes
    bright bare soil (red rises), a burn drops NBR (and so does clearing, whose pixels the red test explains).
    """
    truth = s2_mission.truth
    gbox = s2_mission.config.truth_geobox(10)
    cube = season_observed.chunk({"y": 64, "x": 64})
    ndwi = spectral_index(cube, "NDWI")
    nbr = spectral_index(cube, "NBR")
    flood = detect_breaks(ndwi, threshold=0.5, direction="increase").compute()
    cleared = detect_breaks(cube["red"], threshold=0.06, direction="increase").compute()
    nbr_drop = detect_breaks(nbr, threshold=0.3, direction="decrease").compute()
    burn = nbr_drop.assign(changed=nbr_drop["changed"] & ~cleared["changed"])
    assert "spatial_ref" in flood.coords and flood.odc.crs == cube.odc.crs
    for kind, found, signal in (
        ("flood", flood, ndwi),
        ("deforestation", cleared, cube["red"]),
        ("burn", burn, nbr),
    ):
        mask = truth.event_mask(gbox, kind)
        pred = found["changed"].values
        tp = (pred & mask).sum()
        precision, recall = tp / max(pred.sum(), 1), tp / mask.sum()
        assert precision >= 0.9 and recall >= 0.9, (kind, precision, recall)
        start = np.datetime64(truth.event(kind).start, "ns")
        hit = pred & mask
        first = _first_clear_after(signal.compute(), start)[hit]
        dates = found["break_date"].values[hit]
        assert (dates == first).mean() >= 0.95, kind
        seen_soon = (first - start) <= np.timedelta64(REVISIT_DAYS, "D")
        assert seen_soon.mean() > 0.5, kind  # the sky allowed a prompt detection on most pixels ...
        lag = dates[seen_soon] - start  # ... and there the break date is within one revisit
        assert ((lag >= np.timedelta64(0)) & (lag <= np.timedelta64(REVISIT_DAYS, "D"))).mean() >= 0.95, kind


def test_dnbr_classes_follow_the_usgs_table_on_numpy_and_dask() -> None:
    """Key & Benson (2006) dNBR ranges: < -0.25 regrowth high, -0.25..-0.1 regrowth low, -0.1..0.1 unburned,
    0.1..0.27 low, 0.27..0.44 moderate-low, 0.44..0.66 moderate-high, >= 0.66 high."""
    dnbr = np.array([[-0.4, -0.2, 0.0, 0.2, 0.3, 0.5, 0.9, np.nan]], "f4")
    before = xr.DataArray(dnbr, dims=("y", "x"), name="nbr")
    after = xr.zeros_like(before)
    for b, a in ((before, after), (before.chunk({"x": 3}), after.chunk({"x": 3}))):
        sev = dnbr_severity(b, a).compute()
        names = [sev.attrs["classes"][c] if c != 255 else "nodata" for c in sev["severity"].values[0]]
        assert names == [
            "enhanced_regrowth_high", "enhanced_regrowth_low", "unburned", "low", "moderate_low",
            "moderate_high", "high", "nodata",
        ]  # fmt: skip
        diff = difference_change(a, b, threshold=0.25).compute()
        assert diff["changed"].values[0, :7].tolist() == [1, 0, 0, 0, 1, 1, 1]
        assert np.isnan(diff["changed"].values[0, 7])
