"""Spectral indices from the spyndex catalogue on common band names."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from orbitcube.pipeline.analytics import spectral_index
from orbitcube.pipeline.errors import AnalyticsError


@pytest.fixture()
def cube() -> xr.Dataset:
    rng = np.random.default_rng(1)
    names = ("blue", "green", "red", "nir", "swir16", "swir22")
    return xr.Dataset(
        {b: (("time", "y", "x"), rng.uniform(0.02, 0.5, (3, 4, 4)).astype("f4")) for b in names}
    )


def test_ndvi_nbr_evi_match_their_formulas(cube: xr.Dataset) -> None:
    n, r, b, s2 = cube.nir, cube.red, cube.blue, cube.swir22
    np.testing.assert_allclose(spectral_index(cube, "NDVI"), (n - r) / (n + r), rtol=1e-5)
    np.testing.assert_allclose(spectral_index(cube, "NBR"), (n - s2) / (n + s2), rtol=1e-5)
    evi = 2.5 * (n - r) / (n + 6 * r - 7.5 * b + 1)  # catalogue defaults g=2.5, C1=6, C2=7.5, L=1
    np.testing.assert_allclose(spectral_index(cube, "EVI"), evi, rtol=1e-4)
    np.testing.assert_allclose(
        spectral_index(cube, "SAVI", L=0.25), 1.25 * (n - r) / (n + r + 0.25), rtol=1e-5
    )


def test_several_indices_make_a_dataset(cube: xr.Dataset) -> None:
    ds = spectral_index(cube, ["NDVI", "NDWI", "NBR"])
    assert list(ds.data_vars) == ["ndvi", "ndwi", "nbr"]


def test_missing_band_names_index_band_and_available(cube: xr.Dataset) -> None:
    with pytest.raises(AnalyticsError, match=r"NDREI.*rededge071.*cube has"):
        spectral_index(cube, "NDREI")
    with pytest.raises(AnalyticsError, match="unknown spectral index"):
        spectral_index(cube, "NOT_AN_INDEX")
