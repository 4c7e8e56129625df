"""Every planted event found with its own signal, scored against the truth with the library's scoring."""

from __future__ import annotations

import numpy as np
import xarray as xr

from orbitcube.catalog.simulator import Mission
from orbitcube.pipeline.analytics import spectral_index
from orbitcube.pipeline.analytics.events import EVENT_SIGNALS, detect_events
from orbitcube.pipeline.analytics.score import score_events


def test_detect_events_finds_each_planted_event_on_the_truth_observed_cube(
    s2_mission: Mission, season_observed: xr.Dataset
) -> None:
    """On what a perfect loader returns (no resampling: every pixel scored), each event type scores precision
    and recall >= 0.9 against its planted polygon, with break dates on or after the planted start; numpy and
    dask agree; precomputed index variables are used as they are."""
    truth = s2_mission.truth
    gbox = s2_mission.config.truth_geobox(10)
    found = detect_events(season_observed)
    masks = {kind: truth.event_mask(gbox, kind) for kind in EVENT_SIGNALS}
    scores = score_events({k: found[k].values for k in masks}, masks, edge_px=0)
    for kind, s in scores.items():
        assert s["precision"] >= 0.9 and s["recall"] >= 0.9, (kind, s)
    for kind in masks:
        dates = found[f"{kind}_date"].values[found[kind].values]
        assert (dates >= np.datetime64(truth.event(kind).start, "ns")).mean() >= 0.95, kind
        assert np.isnat(found[f"{kind}_date"].values[~found[kind].values]).all()
    assert found.odc.crs == season_observed.odc.crs
    lazy = detect_events(season_observed.chunk({"y": 64, "x": 64})).compute()
    xr.testing.assert_identical(lazy, found)
    indices = season_observed[["red"]].assign(
        ndwi=spectral_index(season_observed, "NDWI"), nbr=spectral_index(season_observed, "NBR")
    )
    xr.testing.assert_identical(detect_events(indices), found)
