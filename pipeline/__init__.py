"""orbitcube.pipeline: search results -> grid -> lazy cube -> analytics -> Zarr.

The public API is the names in ``__all__``, imported lazily. ``pipeline`` imports ``catalog``, never the reverse.
"""

from __future__ import annotations

import importlib
from typing import Any

from catalog._version import __version__
from pipeline.errors import (
    AnalyticsError,
    ClusterError,
    ExpressionError,
    GridError,
    LoadError,
    OrbitcubeError,
    RecipeError,
    SinkError,
)

_LAZY: dict[str, str] = {
    # grid
    "output_grid": "pipeline.grid",
    "tile_grid": "pipeline.grid",
    # masks and load
    "mask_from_scl": "pipeline.masks",
    "mask_from_qa_pixel": "pipeline.masks",
    "mask_from_fmask": "pipeline.masks",
    "load_cube": "pipeline.load",
    # analytics
    "band_math": "pipeline.analytics",
    "spectral_index": "pipeline.analytics",
    "composite": "pipeline.analytics",
    "difference_change": "pipeline.analytics",
    "dnbr_severity": "pipeline.analytics",
    "detect_breaks": "pipeline.analytics",
    "resample_time": "pipeline.analytics",
    "gap_fill": "pipeline.analytics",
    "linear_trend": "pipeline.analytics",
    "anomaly": "pipeline.analytics",
    "seasonal_stats": "pipeline.analytics",
    "best_pixel_composite": "pipeline.analytics",
    "cloud_fraction": "pipeline.analytics",
    "zonal_stats": "pipeline.analytics",
    # sink, cluster, demo
    "write_zarr": "pipeline.sink",
    "open_cube": "pipeline.sink",
    "start_cluster": "pipeline.cluster",
    "Recipe": "pipeline.recipe",
    "load_recipe": "pipeline.recipe",
    "example_recipe": "pipeline.recipe",
    "run_recipe": "pipeline.run",
    "plan_run": "pipeline.run",
    "export_cog": "pipeline.export",
    "run_demo": "pipeline.demo",
}

__all__ = [
    "AnalyticsError",
    "ClusterError",
    "ExpressionError",
    "GridError",
    "LoadError",
    "OrbitcubeError",
    "RecipeError",
    "SinkError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
