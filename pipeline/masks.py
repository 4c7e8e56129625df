"""Quality masks by name: Sentinel-2 SCL classes, Landsat Collection 2 QA_PIXEL and HLS Fmask bit flags.

The mask-name vocabulary and the products' classes live in :mod:`orbitcube.catalog.classes` (re-exported here:
:data:`MASK_NAMES`, :data:`DEFAULT_MASK`, :data:`MASK_SYNONYMS`); decoding from STAC metadata in
:mod:`orbitcube.pipeline.quality`. The functions here decode arrays with the built-in knowledge of one product and return
True where a pixel must be masked (set to NaN). Names: ``nodata`` (alias ``fill``), ``saturated``, ``dark``,
``shadow``, ``cloud`` (SCL: medium and high probability), ``cloud_medium``, ``cloud_high``, ``cirrus``,
``dilated_cloud``, ``adjacent`` (Fmask), ``snow``, ``water``, and the SCL classes ``vegetation``,
``not_vegetated``, ``unclassified``. ``nodata`` and ``saturated`` are ignored by a layer without such a class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from orbitcube.catalog.classes import (
    BUILTIN_LAYERS,
    DEFAULT_MASK,
    MASK_NAMES,
    MASK_SYNONYMS,
    MaskName,
    builtin_layer,
)
from orbitcube.pipeline.errors import LoadError
from orbitcube.pipeline.quality import QualityDecoder, layer_decoder

__all__ = [
    "DEFAULT_MASK",
    "MASK_NAMES",
    "MASK_SYNONYMS",
    "MaskName",
    "builtin_decoder",
    "dilate",
    "mask_from_fmask",
    "mask_from_qa_pixel",
    "mask_from_scl",
]


def builtin_decoder(key: str, names: Sequence[str]) -> QualityDecoder:
    """The decoder of ``names`` for the built-in layer ``key`` ("SCL", "QA_PIXEL" or "Fmask");
    LoadError for unknown names or names this layer cannot decode."""
    builtin = builtin_layer(key)
    if builtin is None:
        raise LoadError(
            f"no built-in quality layer {key!r}; orbitcube knows {sorted(BUILTIN_LAYERS)} (any case)"
        )
    product, fields = builtin
    return layer_decoder(fields, names, product)


def _apply(layer: xr.DataArray | np.ndarray, decoder: QualityDecoder) -> xr.DataArray | np.ndarray:
    if isinstance(layer, xr.DataArray):
        return xr.apply_ufunc(decoder.mask, layer, dask="parallelized", output_dtypes=[bool])
    return decoder.mask(np.asarray(layer))


def mask_from_scl(
    scl: xr.DataArray | np.ndarray, classes: Sequence[MaskName] = DEFAULT_MASK
) -> xr.DataArray | np.ndarray:
    """True where the Sentinel-2 scene classification ``scl`` is one of the named ``classes``; same dims as ``scl``."""
    return _apply(scl, builtin_decoder("SCL", classes))


def mask_from_qa_pixel(
    qa: xr.DataArray | np.ndarray, flags: Sequence[MaskName] = DEFAULT_MASK
) -> xr.DataArray | np.ndarray:
    """True where the Landsat QA_PIXEL bit of any named flag is set; same dims as ``qa``.

    ``saturated`` is not a QA_PIXEL flag (it lives in QA_RADSAT) and is ignored here.
    """
    return _apply(qa, builtin_decoder("QA_PIXEL", flags))


def mask_from_fmask(
    fmask: xr.DataArray | np.ndarray, flags: Sequence[MaskName] = DEFAULT_MASK
) -> xr.DataArray | np.ndarray:
    """True where the HLS v2.0 Fmask bit of any named flag is set (bit 1 cloud, 2 adjacent, 3 shadow, 4 snow,
    5 water; bit 0 cirrus is reserved and never set); same dims as ``fmask``."""
    return _apply(fmask, builtin_decoder("Fmask", flags))


def dilate(mask: np.ndarray, dilate_m: float, resolution: float) -> np.ndarray:
    """Grow a (..., y, x) mask by ``dilate_m`` metres on a grid of ``resolution`` metres (disk element)."""
    r = int(np.ceil(dilate_m / resolution))
    if r <= 0:
        return mask
    from scipy.ndimage import binary_dilation  # here: the reader imports this module on every worker

    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = (yy**2 + xx**2) <= (dilate_m / resolution) ** 2 + 1e-9
    structure = disk.reshape((1,) * (mask.ndim - 2) + disk.shape)
    return binary_dilation(mask, structure=structure)
