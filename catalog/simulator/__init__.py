"""The mission simulator: realistic, offline, reproducible Sentinel-2 / Landsat scenes with planted ground truth.

``simulate_mission(MissionConfig(...), out_dir)`` writes COG scenes, a self-contained STAC catalog and the truth;
``Truth(config)`` evaluates the planted truth (land cover, clear-sky reflectance, clouds, events) on any grid.
"""

from orbitcube.catalog.simulator.landscape import BANDS, Event, LandCover
from orbitcube.catalog.simulator.mission import Mission, simulate_mission
from orbitcube.catalog.simulator.plan import Acquisition, MissionConfig, Tile, acquisition_plan
from orbitcube.catalog.simulator.sensors import LANDSAT, SCL, SENTINEL2, BandSpec, QABit, SensorSpec
from orbitcube.catalog.simulator.truth import Truth

__all__ = [
    "BANDS",
    "LANDSAT",
    "SCL",
    "SENTINEL2",
    "Acquisition",
    "BandSpec",
    "Event",
    "LandCover",
    "Mission",
    "MissionConfig",
    "QABit",
    "SensorSpec",
    "Tile",
    "Truth",
    "acquisition_plan",
    "simulate_mission",
]
