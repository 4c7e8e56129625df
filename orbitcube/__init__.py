"""orbitcube: satellite imagery -> STAC catalog -> lazy Dask cube -> analytics -> Zarr.

One import for users::

    import orbitcube as oc
    items = oc.search("catalog/", bbox=(11.9, 45.4, 12.1, 45.6), datetime="2023")
    cube = oc.load_cube(items, ["red", "nir"], crs="EPSG:32632", resolution=10)

The public API is the names in ``__all__``: those of :mod:`orbitcube.catalog` (scenes -> items -> catalog ->
search) and of :mod:`orbitcube.pipeline` (grid -> cube -> analytics -> Zarr, recipes and the batch runner),
imported lazily so that ``import orbitcube`` and ``orbitcube --help`` stay fast. The source folders are
``catalog/`` and ``pipeline/`` at the top of the repository; they install as the subpackages
``orbitcube.catalog`` and ``orbitcube.pipeline`` (no generic top-level ``catalog`` or ``pipeline`` module that
could shadow, or be shadowed by, another installed package).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

# A source checkout run without installing (``PYTHONPATH=.``): the subpackages live beside this folder, not in
# it. An installed orbitcube (wheel or editable) maps them with ``package-dir`` and never takes this branch.
_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "catalog" / "__init__.py").is_file():
    __path__.append(str(_ROOT))  # type: ignore[name-defined]  # noqa: F821

from orbitcube.catalog._version import __version__ as __version__  # noqa: E402

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names resolve lazily below
    from orbitcube.catalog import *  # noqa: F403
    from orbitcube.pipeline import *  # noqa: F403

_PACKAGES = ("orbitcube.catalog", "orbitcube.pipeline")


def _source() -> dict[str, str]:
    """Public name -> the subpackage that defines it (importing a subpackage's __init__ only: its modules load
    when a name is used, and ``import orbitcube.catalog`` never loads the pipeline)."""
    out: dict[str, str] = {}
    for pkg in _PACKAGES:
        out.update({n: pkg for n in importlib.import_module(pkg).__all__ if n != "__version__"})
    return out


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return ["__version__", *sorted(_source())]
    if name in ("catalog", "pipeline"):
        return importlib.import_module(f"orbitcube.{name}")
    src = _source().get(name)
    if src is None:
        raise AttributeError(f"module 'orbitcube' has no attribute {name!r}")
    return getattr(importlib.import_module(src), name)


def __dir__() -> list[str]:
    return ["__version__", *sorted(_source())]
