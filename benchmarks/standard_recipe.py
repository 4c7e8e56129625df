"""Variant (a): orbitcube's standard product through the library: load_cube (SCL mask before the solar-day
mosaic) -> NDVI -> monthly median -> write_zarr, computed on a 2-worker LocalCluster."""

from __future__ import annotations

from pathlib import Path

import xarray as xr


def run_standard(
    items, geobox, out: Path, bands=("red", "nir"), resampling: str = "nearest", index: str = "NDVI"
) -> None:
    """The standard product of ``bands`` (resampled with ``resampling``) and ``index``; the store's variables
    are named ``ndvi`` and ``ndvi_median`` whatever the index (the runner compares them by name)."""
    from orbitcube.pipeline import composite, load_cube, spectral_index, start_cluster, write_zarr

    with start_cluster(n_workers=2, threads_per_worker=1, dashboard_address=None):
        cube = load_cube(
            items, list(bands), geobox=geobox, resampling=resampling, chunks={"y": 512, "x": 512}
        )
        ndvi = spectral_index(cube, index).rename("ndvi")
        monthly = composite(ndvi, "median", freq="1MS").rename(time="month")
        ds = xr.Dataset({"ndvi": ndvi, "ndvi_median": monthly.rename("ndvi_median")})
        write_zarr(ds, out, overwrite=True)
