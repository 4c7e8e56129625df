"""``orbitcube demo``: simulate a mission, catalog it, load a cloud-masked cube, compute NDVI and monthly median
composites on a Dask cluster, write a Zarr v3 store and a report. No network. Wiring only: every step is a
library call a notebook could make."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    """Where the demo put everything."""

    out: Path
    catalog: Path
    truth: Path
    store: Path
    report: Path
    dashboard: str | None
    n_items: int
    shape: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """Human-readable summary: paths and how to open the results."""
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        return f"""
orbitcube demo finished ({timings})
  scenes + STAC catalog : {self.catalog}   ({self.n_items} items)
  ground truth          : {self.truth}
  Zarr v3 cube          : {self.store}   {self.shape}
  report                : {self.report}
  Dask dashboard (while it ran): {self.dashboard}

Open the cube:
  import xarray as xr, rioxarray
  ds = xr.open_zarr("{self.store}", consolidated=False)
  ds.ndvi_median.rio.crs, ds.ndvi.isel(time=0).plot()
or:  from pipeline import open_cube; ds = open_cube("{self.store}")
"""


def run_demo(
    out: str | Path = "orbitcube-demo",
    *,
    tile_size: int = 512,
    workers: int = 2,
    start: dt.date = dt.date(2023, 4, 1),
    end: dt.date = dt.date(2023, 9, 30),
    progress: bool = True,
) -> DemoResult:
    """Run the whole flow on a simulated Sentinel-2 mission into ``out``; returns where things are.

    The cube is on the truth CRS (UTM 32N) at 20 m over the AOI; ``ndvi`` is (time, y, x) per solar day with
    clouds, cirrus, shadows and nodata as NaN; ``ndvi_median`` is the monthly median (month, y, x).
    Rerunning reuses the simulated mission and rewrites the cube.
    """
    from catalog.search import search
    from catalog.simulator import MissionConfig, simulate_mission
    from catalog.simulator.mission import Mission
    from catalog.simulator.truth import Truth
    from pipeline.analytics import composite, spectral_index
    from pipeline.cluster import start_cluster
    from pipeline.load import load_cube
    from pipeline.report import quicklook, write_html_report
    from pipeline.sink import write_zarr

    out = Path(out)
    secs: dict[str, float] = {}
    cfg = MissionConfig(seed=42, tile_size=tile_size, start=start, end=end, workers=max(1, workers))
    mission_dir = out / "mission"
    t0 = time.perf_counter()
    if (mission_dir / "catalog" / "catalog.json").exists() and _same_mission(mission_dir, cfg):
        log.info("reusing the simulated mission in %s", mission_dir)
        mission = Mission(
            cfg, mission_dir, mission_dir / "catalog" / "catalog.json", mission_dir / "truth", [], Truth(cfg)
        )
    else:
        if mission_dir.exists():
            import shutil

            shutil.rmtree(mission_dir)
        mission = simulate_mission(
            cfg, mission_dir, progress=_progress("simulating scenes") if progress else None
        )
    secs["simulate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    items = search(mission.catalog_path, bbox=cfg.aoi_bbox, collections=["sentinel-2-l2a-sim"])
    log.info("catalog search: %d items over the AOI", len(items))
    with start_cluster(n_workers=max(1, workers), threads_per_worker=1) as client:
        dashboard = client.dashboard_link
        cube = load_cube(items, ["red", "nir"], crs=f"EPSG:{cfg.truth_epsg}", resolution=20, aoi=cfg.aoi_bbox)
        ndvi = spectral_index(cube, "NDVI")
        monthly = composite(ndvi, "median", freq="1MS").rename(time="month")
        import xarray as xr

        ds = xr.Dataset({"ndvi": ndvi, "ndvi_median": monthly})
        ds["ndvi_median"].attrs.update(long_name="monthly median NDVI (clear observations only)")
        store = out / "cube.zarr"
        provenance = {
            "recipe": "orbitcube demo: SCL mask -> NDVI -> monthly median",
            "mission": json.loads((mission.truth_dir / "mission.json").read_text()),
            "items": [it.id for it in items],
        }
        if store.exists():
            import shutil

            shutil.rmtree(store)
        job = write_zarr(ds, store, provenance=provenance, compute=False)
        if progress:
            from distributed import progress as dask_progress

            fut = client.compute(job)
            dask_progress(fut)
            fut.result()
        else:
            client.compute(job).result()
    secs["cube"] = time.perf_counter() - t0

    from pipeline.sink import open_cube

    result = open_cube(store)
    report_dir = out / "report"
    img = quicklook(
        result["ndvi_median"], report_dir / "ndvi_monthly_median.png", title="Monthly median NDVI"
    )
    report = write_html_report(
        report_dir / "index.html",
        title="orbitcube demo run",
        facts={
            "scenes": str(len(items)),
            "cube": str(store),
            "grid": f"EPSG:{cfg.truth_epsg}, 20 m, {result.sizes['y']} x {result.sizes['x']} pixels",
            "dates": f"{result.sizes['time']} solar days, {result.sizes['month']} months",
            "masked": "SCL nodata, saturated, cloud (medium, high), cirrus, shadow",
            "Dask dashboard": str(dashboard),
        },
        images=[img],
    )
    return DemoResult(
        out=out,
        catalog=mission.catalog_path,
        truth=mission.truth_dir,
        store=store,
        report=report,
        dashboard=dashboard,
        n_items=len(items),
        shape={k: int(v) for k, v in result.sizes.items()},
        seconds=secs,
    )


def _same_mission(mission_dir: Path, cfg) -> bool:
    from dataclasses import asdict

    try:
        meta = json.loads((mission_dir / "truth" / "mission.json").read_text())
    except (OSError, ValueError):
        return False
    want = {k: v for k, v in asdict(cfg).items() if k != "workers"}
    return all(
        str(meta.get(k)) == str(v) if not isinstance(v, tuple) else list(meta.get(k, [])) == list(v)
        for k, v in want.items()
    )


def _progress(desc: str):
    from pipeline.cli import _TqdmProgress

    return _TqdmProgress(desc, "scene")
