"""Spectral indices from the Awesome Spectral Indices catalogue (shipped by spyndex), on common band names."""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from orbitcube.pipeline.analytics.bandmath import band_math
from orbitcube.pipeline.errors import AnalyticsError

#: spyndex band symbols -> STAC common names (first present wins)
SYMBOLS: dict[str, tuple[str, ...]] = {
    "A": ("coastal",),
    "B": ("blue",),
    "G": ("green",),
    "G1": ("green05", "green"),
    "Y": ("yellow",),
    "R": ("red",),
    "RE1": ("rededge071", "rededge"),
    "RE2": ("rededge075",),
    "RE3": ("rededge078",),
    "N": ("nir", "nir08"),
    "N2": ("nir08", "nir"),
    "WV": ("nir09",),
    "S1": ("swir16",),
    "S2": ("swir22",),
    "T": ("lwir", "lwir11"),
    "T1": ("lwir11",),
    "T2": ("lwir12",),
}


def _catalogue():
    import spyndex

    return spyndex.indices, spyndex.constants


def spectral_index(
    ds: xr.Dataset, index: str | Sequence[str], **constants: float
) -> xr.DataArray | xr.Dataset:
    """Compute one index (DataArray named lower-case, e.g. ``ndvi``) or several (Dataset) from ``ds``.

    ``ds`` has variables named by STAC common band names (red, nir, swir16, ...), dims (time, y, x) or (y, x).
    Constants (L, g, C1, ...) take the catalogue's defaults unless given. Raises AnalyticsError naming the index
    and the missing band when ``ds`` lacks one.
    """
    if not isinstance(index, str):
        return xr.Dataset({i.lower(): spectral_index(ds, i, **constants) for i in index})
    indices, consts = _catalogue()
    if index not in indices:
        near = [k for k in indices if k.lower() == index.lower()]
        if near:
            index = near[0]
        else:
            raise AnalyticsError(
                f"unknown spectral index {index!r}; see spyndex.indices (e.g. NDVI, EVI, NBR, NDWI)"
            )
    spec = indices[index]
    variables: dict[str, xr.DataArray] = {}
    values: dict[str, float] = {}
    available = sorted(map(str, ds.data_vars))
    for sym in spec.bands:
        if sym in SYMBOLS:
            name = next((c for c in SYMBOLS[sym] if c in ds.data_vars), None)
            if name is None:
                raise AnalyticsError(
                    f"index {index} needs band {sym!r} ({' or '.join(SYMBOLS[sym])}); the cube has {available}"
                )
            variables[sym] = ds[name]
        elif sym in constants:
            values[sym] = float(constants[sym])
        elif sym in consts and consts[sym].default is not None:
            values[sym] = float(consts[sym].default)
        else:
            raise AnalyticsError(
                f"index {index} needs {sym!r}, which is neither a band we map nor a constant with a default"
            )
    out = band_math(xr.Dataset(variables), spec.formula, name=index.lower(), **values)
    out.attrs.update(long_name=spec.long_name, reference=spec.reference, formula=spec.formula)
    return out


__all__ = [
    "SYMBOLS",
    "spectral_index",
]
