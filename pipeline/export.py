"""Export: one variable / time slice of a cube store as a Cloud-Optimized GeoTIFF (``orbitcube export --to-cog``)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
import xarray as xr

from orbitcube.pipeline.errors import SinkError

log = logging.getLogger(__name__)


def export_cog(
    store: str | Path,
    variable: str,
    time: int | str | dt.date | np.datetime64 | None = None,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Write ``variable`` of the Zarr cube at ``store`` as a COG at ``out`` (default ``<store>-<variable>.tif``).

    ``store`` and ``out`` may be ``az://`` / ``s3://`` URLs (credentials in ``storage_options`` or the
    environment, see :mod:`orbitcube.catalog.storage`); a remote COG is written locally first, then uploaded.

    A (y, x) variable is written as is; a (t, y, x) one needs ``time``: an index along its first dimension
    (``time``, ``month``, ...) or a date/datetime64/ISO string that must match one of its coordinate values.
    The COG (GDAL COG driver) keeps the cube's CRS and transform, float32 with NaN nodata, deflate, 256 px tiles.
    """
    from orbitcube.catalog.failures import retry
    from orbitcube.catalog.storage import filesystem, is_remote, redact
    from orbitcube.pipeline.safety import check_cog_target
    from orbitcube.pipeline.sink import open_cube
    from orbitcube.pipeline.verify import check_before_read, naming_damaged_chunks

    ds = open_cube(store, storage_options=storage_options)
    if variable not in ds.data_vars:
        raise SinkError(
            f"{redact(store)} has no variable {variable!r}; it has {sorted(map(str, ds.data_vars))}"
        )
    da = _one_step(ds[variable], variable, time)
    target = str(out) if out else str(store).rstrip("/").removesuffix(".zarr") + f"-{variable}.tif"
    remote = is_remote(target)
    fs = filesystem(target, storage_options) if remote else None
    check_cog_target(target, store, overwrite=overwrite, storage_options=storage_options)
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    check_before_read(store, [variable], storage_options)  # checksums: never export silently wrong values
    with naming_damaged_chunks(store, storage_options):
        data = da.load().astype("float32")
    data = data.rio.write_crs(data.odc.crs.to_wkt()).rio.write_nodata(np.nan, encoded=False)
    # a fresh temporary file (GDAL never sees, and so never deletes, the old target), renamed over the target
    # only when complete: a failed export leaves the old target as it was
    tmp_dir = None if remote else Path(target).parent
    try:
        if tmp_dir is not None:
            tmp_dir.mkdir(parents=True, exist_ok=True)
        workdir = tempfile.TemporaryDirectory(prefix=".orbitcube-cog-", dir=tmp_dir)
    except OSError as exc:
        raise SinkError(
            f"cannot write the COG {target}: {exc.strerror or exc}; choose a folder you may write to"
        ) from exc
    with workdir as tmp:
        local = Path(tmp) / "out.tif"
        # GDAL's COG driver: tiled, overviews when large enough, IFDs first; floating-point predictor for float32
        data.rio.to_raster(
            local, driver="COG", compress="DEFLATE", predictor=3, blocksize=256, overview_resampling="average"
        )
        if fs is not None:
            retry(
                lambda: fs.put_file(str(local), target),
                url=target,
                action="upload the COG to",
                error=SinkError,
            )
        else:
            os.replace(local, target)
    log.info("wrote %s (%s)", redact(target), variable)
    return target if remote else Path(target)


def _one_step(
    da: xr.DataArray, variable: str, time: int | str | dt.date | np.datetime64 | None
) -> xr.DataArray:
    """The (y, x) slice of ``da`` that ``time`` names (an index along its one non-spatial dim, or a date that
    matches one of its values); ``da`` itself when it is (y, x). SinkError listing the choices otherwise."""
    steps = [d for d in da.dims if d not in ("y", "x")]
    if len(steps) > 1:
        raise SinkError(
            f"{variable!r} has dims {da.dims}; only (y, x) and (t, y, x) variables can be exported"
        )
    if steps:
        dim = steps[0]
        values = [str(v)[:10] for v in da[dim].values]
        if time is None:
            if da.sizes[dim] != 1:
                raise SinkError(
                    f"{variable!r} has {da.sizes[dim]} steps along {dim!r}; pick one with time= from {values}"
                )
            time = 0
        if isinstance(time, int | np.integer):
            if not -da.sizes[dim] <= int(time) < da.sizes[dim]:
                raise SinkError(f"time index {time} is out of range for {dim!r} of length {da.sizes[dim]}")
            da = da.isel({dim: int(time)})
        else:
            try:
                key = np.datetime64(
                    str(time)[:10] if isinstance(time, str) and len(str(time)) == 10 else time, "ns"
                )
            except ValueError:
                raise SinkError(
                    f"time {str(time)!r} is neither an index nor an ISO date; choose one of {values}"
                ) from None
            hits = np.nonzero(da[dim].values == key)[0]
            if not hits.size:
                raise SinkError(
                    f"{variable!r} has no step {str(time)!r} along {dim!r}; choose one of {values}"
                )
            da = da.isel({dim: int(hits[0])})
    return da


__all__ = [
    "export_cog",
]
