"""Time labels of a cube: acquisition times in UTC and the local solar day of a scene.

Rules (DESIGN: "Time labels are solar days computed in UTC from the footprint's true centre"):

- An item's acquisition time is its ``datetime`` converted to UTC (an offset such as ``+02:00`` is applied, not
  dropped; a naive time is taken as UTC); an item with ``datetime: null`` uses ``start_datetime``.
- Its solar day is the calendar date of ``UTC time + longitude / 15 h``, the longitude being the centre of the
  footprint's longitude span, antimeridian-safe (:func:`orbitcube.catalog.antimeridian.centre_lon`: a tile at 179.9 E /
  179.9 W is centred near 180, not near 0), from the geometry, else the bbox (west > east crosses).
- When the time of day is unknown, no longitude shift is applied: the label is the UTC date given. An item says
  its time of day is unknown by an interval ``start_datetime``/``end_datetime`` at least 12 h long that holds
  its ``datetime`` (or replaces it), as :mod:`orbitcube.catalog.items` writes for file names that carry only a date
  (``LC08_..._20200518_...``: datetime 2020-05-18T00:00Z, interval the UTC day). Shifting such a midnight stamp
  by the longitude would move a western-hemisphere scene to the previous day.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pystac

from orbitcube.catalog.antimeridian import centre_lon

#: an item interval at least this long means "time of day unknown" (see the module docstring)
UNKNOWN_TIME_SPAN = dt.timedelta(hours=12)


def _utc(t: dt.datetime) -> dt.datetime:
    """``t`` as a naive UTC datetime (aware times converted, naive ones taken as UTC)."""
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def _interval(item: pystac.Item) -> tuple[dt.datetime, dt.datetime] | None:
    p = item.properties
    if not (p.get("start_datetime") and p.get("end_datetime")):
        return None
    start, end = (pystac.utils.str_to_datetime(p[k]) for k in ("start_datetime", "end_datetime"))
    return _utc(start), _utc(end)


def acquisition_utc(item: pystac.Item) -> dt.datetime:
    """The item's acquisition time as a naive UTC datetime (``datetime``, else ``start_datetime``)."""
    if item.datetime is not None:
        return _utc(item.datetime)
    span = _interval(item)
    if span is None:
        raise ValueError(f"item {item.id!r} has neither datetime nor start_datetime/end_datetime")
    return span[0]


def time_unknown(item: pystac.Item) -> bool:
    """True when the item gives only a day (or longer): an interval of at least :data:`UNKNOWN_TIME_SPAN`
    holding its datetime, or an interval instead of a datetime."""
    span = _interval(item)
    if span is None or span[1] - span[0] < UNKNOWN_TIME_SPAN:
        return False
    return item.datetime is None or span[0] <= _utc(item.datetime) <= span[1]


def solar_day(item: pystac.Item) -> np.datetime64:
    """The local solar date of ``item`` as datetime64[ns] at midnight (see the module docstring for the rules)."""
    t = acquisition_utc(item)
    if not time_unknown(item):
        lon = centre_lon(item.geometry, item.bbox)
        t = t + dt.timedelta(hours=(lon or 0.0) / 15.0)
    return np.datetime64(t.date(), "D").astype("datetime64[ns]")


def scene_time(item: pystac.Item) -> np.datetime64:
    """The item's acquisition time in UTC as datetime64[ns] (the ``time`` label of ``groupby="time"``)."""
    return np.datetime64(acquisition_utc(item), "ns")


__all__ = [
    "UNKNOWN_TIME_SPAN",
    "acquisition_utc",
    "scene_time",
    "solar_day",
    "time_unknown",
]
