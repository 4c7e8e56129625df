"""Which change each planted or real event leaves in the signal, and finding all of them at once.

Each event type is found with the signal an analyst would use (see ``tests/pipeline/analytics/test_change.py``):
a flood turns NDWI positive, a clearing exposes bright bare soil (red rises; so does a flood, whose pixels the
NDWI test explains), a burn drops NBR (and so does a clearing, whose pixels the red test explains). Permanent
water (median NDWI above 0 over the series) is left out of clearings and burns: NBR, a ratio of two tiny
reflectances there, jumps about without any change on the ground.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr

from orbitcube.pipeline.analytics._common import nanreduce
from orbitcube.pipeline.analytics.change import detect_breaks
from orbitcube.pipeline.errors import AnalyticsError

__all__ = ["EVENT_SIGNALS", "EXPLAINED_BY", "EventSignal", "detect_events"]


class EventSignal(NamedTuple):
    """The signal of an event type: a band or spectral index, the direction of its break, the threshold (units
    of the signal: reflectance for bands, index units otherwise)."""

    signal: str
    direction: str
    threshold: float


#: event type -> its signal; the bands needed: green, red, nir, swir22
EVENT_SIGNALS: dict[str, EventSignal] = {
    "deforestation": EventSignal("red", "increase", 0.06),
    "burn": EventSignal("NBR", "decrease", 0.3),
    "flood": EventSignal("NDWI", "increase", 0.5),
}
#: event type -> the event types whose detection explains its signal there (not counted twice)
EXPLAINED_BY = {"deforestation": ("flood",), "burn": ("deforestation",)}


def _signal(cube: xr.Dataset, name: str) -> xr.DataArray:
    for v in (name, name.lower()):
        if v in cube.data_vars:
            return cube[v]
    from orbitcube.pipeline.analytics.indices import spectral_index

    try:
        return spectral_index(cube, name)
    except AnalyticsError as exc:
        raise AnalyticsError(
            f"detect_events: the cube has no {name!r} (variables {sorted(cube.data_vars)}) and cannot compute it: "
            f"{exc}"
        ) from None


def detect_events(cube: xr.Dataset, signals: dict[str, EventSignal] | None = None) -> xr.Dataset:
    """Per-pixel breaks of every event type's signal (:data:`EVENT_SIGNALS` by default) in ``cube`` (dims
    (time, y, x), NaN where masked; variables named by band or index, e.g. ``red``, ``ndwi``, ``nbr``, or the
    bands to compute the indices from). Returns, dims (y, x), a bool ``<type>`` (changed) and a ``<type>_date``
    (first clear observation after the break, NaT where unchanged) per event type; a burn is not counted where
    another event type's signal explains it (:data:`EXPLAINED_BY`), nor a clearing or burn on permanent water
    (median NDWI > 0). Keeps the (y, x) coords and the CRS; lazy on dask input."""
    signals = EVENT_SIGNALS if signals is None else signals
    found = {
        kind: detect_breaks(_signal(cube, s.signal), threshold=s.threshold, direction=s.direction)
        for kind, s in signals.items()
    }
    ndwi = _signal(cube, "NDWI")
    if ndwi.chunks is not None:
        ndwi = ndwi.chunk({"time": -1})
    water = xr.apply_ufunc(
        lambda v: nanreduce(np.nanmedian, v, axis=-1) > 0,
        ndwi,
        input_core_dims=[["time"]],
        dask="parallelized",
        output_dtypes=[bool],
    )
    out = {}
    for kind, res in found.items():
        changed = res["changed"]
        for other in EXPLAINED_BY.get(kind, ()):
            if other in found:
                changed = changed & ~found[other]["changed"]
        if kind in ("deforestation", "burn"):
            changed = changed & ~water
        out[kind] = changed.rename(kind)
        out[f"{kind}_date"] = res["break_date"].where(changed).rename(f"{kind}_date")
    return xr.Dataset(out, attrs={"signals": {k: list(v) for k, v in signals.items()}})
