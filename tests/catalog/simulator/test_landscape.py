"""The planted landscape: the event kinds a signature accepts are the kinds planted."""

from __future__ import annotations

import datetime as dt

from orbitcube.catalog.simulator import MissionConfig
from orbitcube.catalog.simulator.landscape import EVENT_KINDS, Landscape


def test_every_event_kind_is_planted_once() -> None:
    cfg = MissionConfig(start=dt.date(2023, 1, 1), end=dt.date(2023, 6, 30), tile_size=128)
    assert sorted(e.kind for e in Landscape(cfg).events) == sorted(EVENT_KINDS)
