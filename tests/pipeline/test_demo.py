"""`orbitcube demo` end to end through the CLI: simulate -> catalog -> cube -> NDVI -> monthly median -> Zarr."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import rioxarray  # noqa: F401
import xarray as xr

from catalog.simulator import MissionConfig, Truth


def test_demo_writes_a_store_with_crs_and_masked_ndvi(tmp_path: Path) -> None:
    """Run as `make demo` runs it: from the working folder, with a relative --out (relative catalog paths must
    resolve to the scenes)."""
    out = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "demo",
            "--out",
            "demo",
            "--tile-size",
            "128",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Dask dashboard" in proc.stdout and "http://" in proc.stdout
    assert "demo/cube.zarr" in proc.stdout and "xr.open_zarr" in proc.stdout
    assert (out / "report" / "index.html").exists() and (out / "report" / "ndvi_monthly_median.png").exists()

    ds = xr.open_zarr(out / "cube.zarr", consolidated=False)
    assert ds.ndvi.rio.crs.to_epsg() == 32632 and ds.ndvi_median.rio.crs.to_epsg() == 32632
    ndvi = ds.ndvi.values
    finite = ndvi[np.isfinite(ndvi)]
    assert finite.size and finite.min() >= -1 and finite.max() <= 1
    assert ds.sizes["month"] == 6

    # NaN where the simulator planted clouds (checked on the demo's own grid)
    meta = json.loads((out / "mission" / "truth" / "mission.json").read_text())
    cfg = MissionConfig(
        seed=meta["seed"], tile_size=meta["tile_size"], start=dt.date.fromisoformat(meta["start"]),
        end=dt.date.fromisoformat(meta["end"]),
    )  # fmt: skip
    truth = Truth(cfg)
    gbox = ds.odc.geobox
    checked = 0
    for i, (_day, acqs) in enumerate(sorted(truth.passes().items())):
        cloud = truth.masks(gbox, acqs[0])["cloud"]
        if cloud.sum() > 50:
            assert np.isnan(ndvi[i][cloud]).mean() > 0.97
            checked += 1
    assert checked >= 3
