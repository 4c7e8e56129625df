"""The orbitcube exception hierarchy.

Every error a user can cause is an :class:`OrbitcubeError` subclass whose message names the bad file, item, key
or value and says how to fix it. The CLI prints these without a traceback and exits non-zero.
``orbitcube.pipeline.errors`` adds the pipeline-side subclasses; both are re-exported from the package ``__init__``.
"""

from __future__ import annotations


class OrbitcubeError(Exception):
    """Base class of every error orbitcube raises on purpose."""

    exit_code: int = 2


class CatalogError(OrbitcubeError):
    """A scene, item, collection or catalog cannot be read, ingested, validated or searched."""


class SimulatorError(OrbitcubeError):
    """The mission simulator was configured with values it cannot simulate."""


class ValidationError(CatalogError):
    """STAC items or collections violate the core or extension schemas."""


__all__ = [
    "CatalogError",
    "OrbitcubeError",
    "SimulatorError",
    "ValidationError",
]
