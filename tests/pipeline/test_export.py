"""COG export of a variable / time slice of a run store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from orbitcube.pipeline.errors import SinkError
from orbitcube.pipeline.export import export_cog
from orbitcube.pipeline.sink import open_cube


def test_export_slice_keeps_crs_transform_and_values(reference_run, tmp_path: Path) -> None:
    ds = open_cube(reference_run.store)
    out = export_cog(reference_run.store, "ndvi_median", "2023-06-01", tmp_path / "june.tif")
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 32632
        assert tuple(src.transform)[:6] == tuple(reference_run.plan.geobox.transform)[:6]
        assert src.dtypes == ("float32",) and np.isnan(src.nodata)
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and src.block_shapes == [(256, 256)]
        np.testing.assert_array_equal(src.read(1), ds.ndvi_median.sel(month="2023-06-01").values)
    by_index = export_cog(reference_run.store, "ndvi", 3, tmp_path / "t3.tif")
    with rasterio.open(by_index) as src:
        np.testing.assert_array_equal(src.read(1), ds.ndvi.isel(time=3).values)


def test_export_errors_name_the_choices(reference_run, tmp_path: Path) -> None:
    with pytest.raises(SinkError, match=r"no variable 'evi'.*ndvi"):
        export_cog(reference_run.store, "evi", 0, tmp_path / "a.tif")
    with pytest.raises(SinkError, match=r"2 steps along 'month'.*2023-05-01"):
        export_cog(reference_run.store, "ndvi_median", None, tmp_path / "a.tif")
    with pytest.raises(SinkError, match=r"no step '2023-07-01'.*2023-06-01"):
        export_cog(reference_run.store, "ndvi_median", "2023-07-01", tmp_path / "a.tif")
    path = export_cog(reference_run.store, "ndvi_median", 0, tmp_path / "a.tif")
    with pytest.raises(SinkError, match="already exists"):
        export_cog(reference_run.store, "ndvi_median", 0, path)
