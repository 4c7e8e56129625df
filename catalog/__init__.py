"""orbitcube.catalog: scenes -> STAC items -> a catalog on disk -> search.

The public API is the names in ``__all__``; they are imported lazily so that ``orbitcube --help`` and worker
start-up stay fast. ``catalog`` never imports ``pipeline`` (dependencies run one way; the interface is
``pystac.Item``).
"""

from __future__ import annotations

import importlib
from typing import Any

from catalog._version import __version__
from catalog.errors import CatalogError, OrbitcubeError, SimulatorError, ValidationError
from catalog.search import search  # eager: the function must win over the submodule of the same name

_LAZY: dict[str, str] = {
    # simulator: scenes with planted ground truth
    "MissionConfig": "catalog.simulator",
    "Mission": "catalog.simulator",
    "Truth": "catalog.simulator",
    "simulate_mission": "catalog.simulator",
    # ingest, store, remote, validate
    "CollectionConfig": "catalog.patterns",
    "ingest": "catalog.ingest",
    "items_from_files": "catalog.ingest",
    "Catalog": "catalog.store",
    "open_catalog": "catalog.store",
    "write_catalog": "catalog.store",
    "catalog_info": "catalog.store",
    "open_remote": "catalog.remote",
    "publish_catalog": "catalog.publish",
    "validate_items": "catalog.validate",
    "validate_catalog": "catalog.validate",
    # product knowledge where STAC is silent (scale/offset of S2 L2A, Landsat C2 L2)
    "Encoding": "catalog.products",
    "band_encoding": "catalog.products",
}

__all__ = [
    "CatalogError",
    "OrbitcubeError",
    "SimulatorError",
    "ValidationError",
    "__version__",
    "search",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'catalog' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
