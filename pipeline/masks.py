"""Quality masks by name: Sentinel-2 SCL classes and Landsat Collection 2 QA_PIXEL bit flags.

Both functions return True where a pixel must be masked (set to NaN). Names: ``nodata``, ``saturated``,
``dark``, ``shadow``, ``cloud`` (medium and high probability), ``cloud_medium``, ``cloud_high``, ``cirrus``,
``snow``, ``water`` (and for QA_PIXEL ``fill`` = ``nodata``, ``dilated_cloud``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy.ndimage import binary_dilation

from pipeline.errors import LoadError

SCL_CLASSES: dict[str, tuple[int, ...]] = {
    "nodata": (0,),
    "saturated": (1,),
    "dark": (2,),
    "shadow": (3,),
    "vegetation": (4,),
    "not_vegetated": (5,),
    "water": (6,),
    "unclassified": (7,),
    "cloud_medium": (8,),
    "cloud_high": (9,),
    "cloud": (8, 9),
    "cirrus": (10,),
    "snow": (11,),
}
QA_BITS: dict[str, int] = {
    "fill": 0,
    "nodata": 0,
    "dilated_cloud": 1,
    "cirrus": 2,
    "cloud": 3,
    "shadow": 4,
    "snow": 5,
    "water": 7,
}
DEFAULT_MASK = ("nodata", "saturated", "cloud", "shadow", "cirrus")


def _check(names: Sequence[str], known: dict, what: str) -> None:
    bad = [n for n in names if n not in known]
    if bad:
        raise LoadError(f"unknown {what} mask name(s) {bad}; choose from {sorted(known)}")


def mask_from_scl(
    scl: xr.DataArray | np.ndarray, classes: Sequence[str] = DEFAULT_MASK
) -> xr.DataArray | np.ndarray:
    """True where the Sentinel-2 scene classification ``scl`` is one of the named ``classes``; same dims as ``scl``."""
    _check(classes, SCL_CLASSES, "SCL")
    values = sorted({v for n in classes for v in SCL_CLASSES[n]})
    if isinstance(scl, xr.DataArray):
        return scl.isin(values)
    return np.isin(scl, values)


def mask_from_qa_pixel(
    qa: xr.DataArray | np.ndarray, flags: Sequence[str] = DEFAULT_MASK
) -> xr.DataArray | np.ndarray:
    """True where the Landsat QA_PIXEL bit of any named flag is set; same dims as ``qa``.

    ``saturated`` is not a QA_PIXEL flag (it lives in QA_RADSAT) and is ignored here.
    """
    flags = [f for f in flags if f != "saturated"]
    _check(flags, QA_BITS, "QA_PIXEL")
    bits = 0
    for f in flags:
        bits |= 1 << QA_BITS[f]
    if isinstance(qa, xr.DataArray):
        return (qa.astype("uint16") & bits) > 0
    return (np.asarray(qa).astype(np.uint16) & bits) > 0


def dilate(mask: np.ndarray, dilate_m: float, resolution: float) -> np.ndarray:
    """Grow a (..., y, x) mask by ``dilate_m`` metres on a grid of ``resolution`` metres (disk element)."""
    r = int(np.ceil(dilate_m / resolution))
    if r <= 0:
        return mask
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = (yy**2 + xx**2) <= (dilate_m / resolution) ** 2 + 1e-9
    structure = disk.reshape((1,) * (mask.ndim - 2) + disk.shape)
    return binary_dilation(mask, structure=structure)
