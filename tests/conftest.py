"""Fixtures shared by every test: small simulated missions built once per session.

Missions are tiny (128 px tiles, a few weeks) so the whole suite stays fast; tests that need more make their own.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from catalog.simulator import Mission, MissionConfig, simulate_mission

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LANDSAT_REAL = SHARED_DATA / "landsat8-224-077-078"


@pytest.fixture(scope="session")
def mixed_mission(tmp_path_factory: pytest.TempPathFactory) -> Mission:
    """Sentinel-2 and Landsat over six weeks, 128 px Sentinel-2 tiles, with events and partial swaths."""
    cfg = MissionConfig(
        seed=7,
        tile_size=128,
        start=dt.date(2023, 6, 1),
        end=dt.date(2023, 7, 15),
        sensors=("sentinel-2", "landsat"),
    )
    return simulate_mission(cfg, tmp_path_factory.mktemp("mixed-mission"))


@pytest.fixture(scope="session")
def landsat_real_dir() -> Path:
    """The real Landsat 8 scenes of ../shared/data (two rows of one pass, B2/B3/B4)."""
    if not LANDSAT_REAL.is_dir():
        raise FileNotFoundError(f"{LANDSAT_REAL} is missing; the repository expects ../shared/data beside it")
    return LANDSAT_REAL


@pytest.fixture(autouse=True)
def _quiet_libraries() -> None:
    for name in ("distributed", "rasterio", "fsspec"):
        logging.getLogger(name).setLevel(logging.WARNING)
