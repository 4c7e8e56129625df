"""Pipeline-side subclasses of :class:`orbitcube.catalog.errors.OrbitcubeError`."""

from __future__ import annotations

from orbitcube.catalog.errors import OrbitcubeError


class GridError(OrbitcubeError):
    """The output grid (CRS, resolution, AOI, tiling) is invalid or cannot be derived."""


class LoadError(OrbitcubeError):
    """Items cannot be loaded into a cube (missing assets, unreadable files, no overlap with the AOI)."""


class AnalyticsError(OrbitcubeError):
    """An analytics step got inputs it cannot work on (missing bands, bad expression, bad parameters)."""


class ExpressionError(AnalyticsError):
    """A band-math expression is malformed or uses something the evaluator refuses to run."""


class RecipeError(OrbitcubeError):
    """A recipe file is missing, malformed, or has a key with a value outside the allowed ones."""


class SinkError(OrbitcubeError):
    """The Zarr output cannot be created, written, resumed or is locked by another run."""


class ClusterError(OrbitcubeError):
    """The Dask cluster cannot be started or reached."""


__all__ = [
    "AnalyticsError",
    "ClusterError",
    "ExpressionError",
    "GridError",
    "LoadError",
    "OrbitcubeError",
    "RecipeError",
    "SinkError",
]
