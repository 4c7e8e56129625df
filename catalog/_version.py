"""Single source of the orbitcube version."""

__version__ = "0.1.0"


__all__ = [
    "__version__",
]
