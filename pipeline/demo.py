"""``orbitcube demo``: simulate a mission, write the example recipe for it and run it with the batch runner
(:func:`orbitcube.pipeline.run.run_recipe`: the same write path as ``orbitcube run``), then find the planted clearing, burn
and flood in the cube and score them against the simulator's truth. No network. Wiring only: every step is a
library call a notebook could make."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orbitcube.catalog.simulator import MissionConfig

log = logging.getLogger(__name__)

#: what the demo adds to the example recipe: the bands and indices that show the planted events
DEMO_BANDS = ["green", "red", "nir", "swir22"]
DEMO_STEPS = [
    {"op": "index", "index": "NDVI"},
    {"op": "index", "index": "NDWI"},
    {"op": "index", "index": "NBR"},
    {"op": "composite", "input": "ndvi", "stat": "median", "freq": "1MS"},
]
DEMO_OUTPUTS = ["red", "ndvi", "ndwi", "nbr", "ndvi_median"]
RECIPE_HEADER = (
    "# Written by `orbitcube demo`: the example recipe (`orbitcube recipe example`) for the simulated mission,\n"
    "# with the bands and indices that show the planted events. Paths are relative to this file.\n"
    "# Rerun it with: orbitcube run recipe.yaml\n"
)


@dataclass
class DemoResult:
    """Where the demo put everything, and how well it found the planted events (see :func:`score_events`)."""

    out: Path
    catalog: Path
    truth: Path
    recipe: Path
    store: Path
    report: Path
    run_report: Path | None
    dashboard: str | None
    n_items: int
    shape: dict[str, int]
    scores: dict[str, dict[str, float | int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """Human-readable summary: paths, the event scores and how to open the results."""
        timings = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        scores = "\n".join(
            f"  {k:14s} precision {s['precision']:.2f}  recall {s['recall']:.2f}  F1 {s['f1']:.2f}  "
            f"IoU {s['iou']:.2f}"
            for k, s in self.scores.items()
        )
        return f"""
orbitcube demo finished ({timings})
  scenes + STAC catalog : {self.catalog}   ({self.n_items} items)
  ground truth          : {self.truth}
  recipe                : {self.recipe}   (rerun it with: orbitcube run {self.recipe})
  Zarr v3 cube          : {self.store}   {self.shape}
  report                : {self.report}
  batch run report      : {self.run_report}
  Dask dashboard (while it ran): {self.dashboard}

Planted events found in the cube, scored against the truth (pixels):
{scores}

Open the cube:
  import xarray as xr, rioxarray
  ds = xr.open_zarr("{self.store}", consolidated=False)
  ds.ndvi_median.rio.crs, ds.ndvi.isel(time=0).plot()
or:  from pipeline import open_cube; ds = open_cube("{self.store}")
"""


def demo_recipe(cfg: MissionConfig, workers: int) -> dict[str, Any]:
    """The example recipe (:func:`orbitcube.pipeline.recipe.example_recipe`) for the simulated mission ``cfg``: its AOI and
    dates, the truth CRS at 20 m, the bands and indices that show the planted events. Paths are relative to the
    recipe file's folder (the demo's ``out``): the catalog ``mission/catalog/catalog.json``, the cube
    ``cube.zarr``, the run report ``run-report/``."""
    import yaml

    from orbitcube.pipeline.recipe import example_recipe

    doc = yaml.safe_load(example_recipe())
    doc["name"] = "orbitcube-demo"
    doc["catalog"]["source"] = "mission/catalog/catalog.json"
    doc["search"].update(aoi=list(cfg.aoi_bbox), datetime=f"{cfg.start}/{cfg.end}")
    doc["grid"].update(crs=f"EPSG:{cfg.truth_epsg}", resolution=20)
    doc["load"]["bands"] = list(DEMO_BANDS)
    doc["analytics"] = [dict(s) for s in DEMO_STEPS]
    doc["output"].update(path="cube.zarr", variables=list(DEMO_OUTPUTS), report_dir="run-report")
    doc["cluster"]["n_workers"] = max(1, workers)
    return doc


def run_demo(
    out: str | Path = "orbitcube-demo",
    *,
    tile_size: int = 512,
    workers: int = 2,
    start: dt.date = dt.date(2023, 4, 1),
    end: dt.date = dt.date(2023, 9, 30),
    progress: bool = True,
) -> DemoResult:
    """Run the whole flow on a simulated Sentinel-2 mission into ``out``; returns where things are and the scores.

    Writes ``out/recipe.yaml`` (the example recipe for this mission) and runs it with
    :func:`orbitcube.pipeline.run.run_recipe` on a LocalCluster of ``workers`` (dashboard link logged): the cube
    ``out/cube.zarr`` is on the truth CRS (UTM 32N) at 20 m over the AOI with ``red``, ``ndvi``, ``ndwi``,
    ``nbr`` (time, y, x) per solar day, NaN under clouds, cirrus, shadows and nodata, and ``ndvi_median`` the
    monthly median (month, y, x). The planted events are then found per pixel (:func:`detect_events`) and scored
    against the truth (:func:`score_events`); ``out/report/index.html`` maps them and tabulates the scores.
    Rerunning reuses the simulated mission and rewrites the cube.
    """
    import yaml

    from orbitcube.catalog.simulator import MissionConfig
    from orbitcube.pipeline.run import run_recipe

    out = Path(out)
    secs: dict[str, float] = {}
    cfg = MissionConfig(seed=42, tile_size=tile_size, start=start, end=end, workers=max(1, workers))
    t0 = time.perf_counter()
    mission = _mission(cfg, out / "mission", progress)
    secs["simulate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    recipe_path = out / "recipe.yaml"
    recipe_path.write_text(RECIPE_HEADER + yaml.safe_dump(demo_recipe(cfg, workers), sort_keys=False))
    run = run_recipe(recipe_path, progress=progress, resume=False)
    secs["cube"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    report, scores, sizes = _insight(run, mission, out / "report")
    secs["events"] = time.perf_counter() - t0
    return DemoResult(
        out=out,
        catalog=mission.catalog_path,
        truth=mission.truth_dir,
        recipe=recipe_path,
        store=Path(run.store),
        report=report,
        run_report=run.report,
        dashboard=run.dashboard,
        n_items=len(run.plan.item_ids),
        shape=sizes,
        scores=scores,
        seconds=secs,
    )


def _mission(cfg, mission_dir: Path, progress: bool):
    """The simulated mission of ``cfg`` in ``mission_dir``: reused when it is already there, else simulated."""
    from orbitcube.catalog.simulator import simulate_mission
    from orbitcube.catalog.simulator.mission import Mission
    from orbitcube.catalog.simulator.truth import Truth

    if (mission_dir / "catalog" / "catalog.json").exists() and _same_mission(mission_dir, cfg):
        log.info("reusing the simulated mission in %s", mission_dir)
        return Mission(
            cfg, mission_dir, mission_dir / "catalog" / "catalog.json", mission_dir / "truth", [], Truth(cfg)
        )
    if mission_dir.exists():
        import shutil

        shutil.rmtree(mission_dir)
    from orbitcube.pipeline.progress import TqdmProgress

    return simulate_mission(
        cfg, mission_dir, progress=TqdmProgress("simulating scenes", "scene") if progress else None
    )


def _insight(run, mission, report_dir: Path):
    """Find the planted events in the cube ``run`` wrote, score them against the truth, write the demo report."""

    from orbitcube.pipeline.analytics.events import detect_events
    from orbitcube.pipeline.analytics.score import score_events
    from orbitcube.pipeline.report import event_quicklook, quicklook, write_html_report
    from orbitcube.pipeline.sink import open_cube

    store = run.store
    cube = open_cube(store)
    gbox = cube.odc.geobox
    found = detect_events(cube[["red", "ndwi", "nbr"]].load())
    truth = {ev.kind: mission.truth.event_mask(gbox, ev.kind) for ev in mission.truth.events}
    detected = {k: found[k].values for k in truth}
    scores = score_events(detected, truth, edge_px=1)
    rows = _score_rows(mission.truth.events, found, detected, truth, scores)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "scores.json").write_text(json.dumps(scores, indent=2))
    events_png = event_quicklook(
        detected, truth, gbox, report_dir / "events_detected_vs_truth.png", scores=scores
    )
    ndvi_png = quicklook(
        cube["ndvi_median"], report_dir / "ndvi_monthly_median.png", title="Monthly median NDVI"
    )
    run_index = Path(run.report).resolve() if run.report else None
    links = (
        {"batch run report (tiles, timings, scenes)": _relative(run_index, report_dir)} if run_index else {}
    )
    report = write_html_report(
        report_dir / "index.html",
        title="orbitcube demo: what the cube shows",
        facts={
            "scenes": str(len(run.plan.item_ids)),
            "cube": str(store),
            "grid": f"EPSG:{gbox.crs.epsg}, 20 m, {cube.sizes['y']} x {cube.sizes['x']} pixels",
            "dates": f"{cube.sizes['time']} solar days, {cube.sizes['month']} months",
            "masked": "SCL nodata, saturated, cloud (medium, high), cirrus, shadow",
            "how events are found": "per-pixel breaks: red rises (clearing), NBR drops (burn), NDWI rises (flood)",
            "scored": "against the simulator's planted polygons; pixels within 1 px of an edge left out",
            "Dask dashboard (while it ran)": str(run.dashboard),
        },
        images=[events_png, ndvi_png],
        tables={"Planted events found in the cube": rows},
        links=links,
    )
    return report, scores, {k: int(v) for k, v in cube.sizes.items()}


def _score_rows(events, found, detected, truth, scores) -> list[dict[str, str]]:
    """The report's table: per planted event its dates, the median date it was found, and its scores; then all
    events together ("any")."""
    import numpy as np

    rows = []
    for ev in [*events, None]:
        kind = ev.kind if ev else "any"
        s = scores[kind]
        row = {"event": kind if ev else "any event (union)", "planted": "", "found (median date)": "-"}
        if ev:
            row["planted"] = f"{ev.start}" + (f" to {ev.end}" if ev.end else "")
            start = np.datetime64(ev.start, "ns")
            days = (found[f"{kind}_date"].values[detected[kind] & truth[kind]] - start) / np.timedelta64(
                1, "D"
            )
            if days.size:
                row["found (median date)"] = str(np.datetime64(ev.start) + int(np.median(days)))
        row.update(
            {
                "precision": f"{s['precision']:.2f}",
                "recall": f"{s['recall']:.2f}",
                "F1": f"{s['f1']:.2f}",
                "IoU": f"{s['iou']:.2f}",
                "pixels true / found": f"{s['tp'] + s['fn']} / {s['tp'] + s['fp']}",
            }
        )
        rows.append(row)
        log.info("%s: precision %.2f, recall %.2f, F1 %.2f", kind, s["precision"], s["recall"], s["f1"])
    return rows


def _relative(path: Path, start: Path) -> str:
    import os

    return os.path.relpath(path, start.resolve())


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


__all__ = [
    "DEMO_BANDS",
    "DEMO_OUTPUTS",
    "DEMO_STEPS",
    "DemoResult",
    "RECIPE_HEADER",
    "demo_recipe",
    "run_demo",
]
