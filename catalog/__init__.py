"""orbitcube.catalog: scenes -> STAC items -> a catalog on disk -> search.

The public API is the names in ``__all__``; they are imported lazily so that ``orbitcube --help`` and worker
start-up stay fast. ``catalog`` never imports ``pipeline`` (dependencies run one way; the interface is
``pystac.Item``).
"""

from __future__ import annotations

import importlib
from typing import Any

from orbitcube.catalog._version import __version__
from orbitcube.catalog.errors import CatalogError, OrbitcubeError, SimulatorError, ValidationError

_LAZY: dict[str, str] = {
    "search": "orbitcube.catalog.query",
    # simulator: scenes with planted ground truth
    "MissionConfig": "orbitcube.catalog.simulator",
    "Mission": "orbitcube.catalog.simulator",
    "Truth": "orbitcube.catalog.simulator",
    "simulate_mission": "orbitcube.catalog.simulator",
    # ingest, store, remote, validate
    "CollectionConfig": "orbitcube.catalog.patterns",
    "ingest": "orbitcube.catalog.items",
    "items_from_files": "orbitcube.catalog.items",
    "Catalog": "orbitcube.catalog.store",
    "open_catalog": "orbitcube.catalog.store",
    "write_catalog": "orbitcube.catalog.merge",
    "catalog_info": "orbitcube.catalog.store",
    "open_remote": "orbitcube.catalog.remote",
    "publish_catalog": "orbitcube.catalog.publish",
    "validate_items": "orbitcube.catalog.validate",
    "validate_catalog": "orbitcube.catalog.validate",
    # product knowledge where STAC is silent (scale/offset of S2 L2A, Landsat C2 L2)
    "Encoding": "orbitcube.catalog.products",
    "band_encoding": "orbitcube.catalog.products",
    # what a catalog may make orbitcube read
    "AccessPolicy": "orbitcube.catalog.policy",
    "check_href": "orbitcube.catalog.policy",
}

__all__ = [
    "CatalogError",
    "OrbitcubeError",
    "SimulatorError",
    "ValidationError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'orbitcube.catalog' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
