"""orbitcube.pipeline: search results -> grid -> lazy cube -> analytics -> Zarr.

The public API is the names in ``__all__``, imported lazily. ``pipeline`` imports ``catalog``, never the reverse.
"""

from __future__ import annotations

import importlib
from typing import Any

from orbitcube.catalog._version import __version__
from orbitcube.pipeline.errors import *  # noqa: F403 (the error classes, public here too)
from orbitcube.pipeline.errors import __all__ as _ERRORS

_LAZY: dict[str, str] = {
    # grid
    "output_grid": "orbitcube.pipeline.grid",
    "tile_grid": "orbitcube.pipeline.grid",
    # masks and load
    "mask_from_scl": "orbitcube.pipeline.masks",
    "mask_from_qa_pixel": "orbitcube.pipeline.masks",
    "mask_from_fmask": "orbitcube.pipeline.masks",
    "load_cube": "orbitcube.pipeline.load",
    "index_rows": "orbitcube.pipeline.scenes",
    # analytics
    "band_math": "orbitcube.pipeline.analytics",
    "spectral_index": "orbitcube.pipeline.analytics",
    "composite": "orbitcube.pipeline.analytics",
    "difference_change": "orbitcube.pipeline.analytics",
    "dnbr_severity": "orbitcube.pipeline.analytics",
    "detect_breaks": "orbitcube.pipeline.analytics",
    "detect_events": "orbitcube.pipeline.analytics",
    "score_events": "orbitcube.pipeline.analytics",
    "resample_time": "orbitcube.pipeline.analytics",
    "gap_fill": "orbitcube.pipeline.analytics",
    "linear_trend": "orbitcube.pipeline.analytics",
    "anomaly": "orbitcube.pipeline.analytics",
    "seasonal_stats": "orbitcube.pipeline.analytics",
    "best_pixel_composite": "orbitcube.pipeline.analytics",
    "cloud_fraction": "orbitcube.pipeline.analytics",
    "zonal_stats": "orbitcube.pipeline.analytics",
    # sink, cluster, demo
    "write_zarr": "orbitcube.pipeline.sink",
    "open_cube": "orbitcube.pipeline.sink",
    "start_cluster": "orbitcube.pipeline.cluster",
    "Recipe": "orbitcube.pipeline.recipe",
    "load_recipe": "orbitcube.pipeline.recipe",
    "example_recipe": "orbitcube.pipeline.recipe",
    "run_recipe": "orbitcube.pipeline.run",
    "plan_run": "orbitcube.pipeline.plan",
    "export_cog": "orbitcube.pipeline.export",
    "verify_store": "orbitcube.pipeline.verify",
    "run_demo": "orbitcube.pipeline.demo",
}

__all__ = [*_ERRORS, "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'orbitcube.pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
