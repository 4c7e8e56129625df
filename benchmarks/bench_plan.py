"""Continental plans (issue 15, item 3): calibrate the cost model, check it against real runs, time a continent.

    .venv/bin/python -m benchmarks.bench_plan [--calibrate] [--skip-continent] [--items 1000000]

1. Calibration (``--calibrate`` also writes ``benchmarks/calibration.json``): a simulated Sentinel-2 mission
   (128 px scenes, May-June 2023) planned at 10 m in 3 x 3 and 6 x 6 tiles (NDVI + monthly median); every
   tile's graph is computed in this process (synchronous scheduler) and timed, and the per-tile model of
   :mod:`orbitcube.pipeline.estimate` fitted (least squares, non-negative) to seconds ~ 1 + values read + values
   written; the peak memory of the largest tile (tracemalloc) gives ``mem_factor``; real runs of both tilings
   on a 2-worker LocalCluster give the fixed start-up seconds, the cluster's overhead per tile and the workers'
   base memory.
2. Check: 10 tiles (10 m) and 100 tiles (5 m) of the same mission (other tile shapes than the calibration's),
   estimated, then run for real on a 2-worker LocalCluster: wall time, CPU seconds and peak worker RSS of the
   process tree against the estimate.
3. Continent: the 1,000,000-item index of :mod:`benchmarks.bench_search`, a year of it (~200k footprints) on a
   5,000 x 4,000 km grid at 10 m in EPSG:3035 with 2048 px tiles (~48k tiles): footprints, items per tile, time
   axis, estimate and summary, timed; and the per-item cost of the catalog search + screening that a full
   ``plan_run`` adds (measured on three days of the index and scaled to the year).

Writes ``benchmarks/_out/plan.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CALIBRATION = HERE / "calibration.json"


class TreeMonitor:
    """CPU seconds and peak RSS of this process and its descendants (psutil, every 0.1 s) while in ``with``."""

    def __init__(self) -> None:
        self.cpu: dict[int, float] = {}
        self.rss: dict[int, int] = {}
        self._stop = threading.Event()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        for p in [me, *me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                self.cpu[p.pid] = max(self.cpu.get(p.pid, 0.0), t.user + t.system)
                self.rss[p.pid] = max(self.rss.get(p.pid, 0), p.memory_info().rss)
            except psutil.Error:
                continue

    def __enter__(self) -> TreeMonitor:
        import psutil

        self._pid = os.getpid()
        t = psutil.Process().cpu_times()
        self._cpu0 = t.user + t.system
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def __exit__(self, *exc) -> None:
        self._sample()
        self._stop.set()
        self._thread.join()

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values()) - self._cpu0

    @property
    def worker_peak_mb(self) -> float:
        others = [v for pid, v in self.rss.items() if pid != self._pid]
        return max(others, default=0) / 1e6


def mission(work: Path):
    from orbitcube.catalog.simulator import MissionConfig, simulate_mission

    cfg = MissionConfig(seed=1, tile_size=128, start=dt.date(2023, 5, 1), end=dt.date(2023, 6, 30))
    return simulate_mission(cfg, work / "mission")


def recipe(m, out: Path, tile_shape: tuple[int, int], resolution: float = 10.0) -> dict:
    """NDVI + monthly median of red/nir (SCL mask) on the mission's AOI, 2 workers of 1 thread."""
    return {
        "name": "bench-plan",
        "catalog": {"source": str(m.catalog_path)},
        "search": {"aoi": list(m.config.aoi_bbox), "datetime": "2023-05-01/2023-06-30"},
        "grid": {
            "crs": f"EPSG:{m.config.truth_epsg}",
            "resolution": resolution,
            "tile_shape": list(tile_shape),
        },
        "load": {"bands": ["red", "nir"]},
        "analytics": [
            {"op": "index", "index": "NDVI"},
            {"op": "composite", "input": "ndvi", "stat": "median", "freq": "1MS"},
        ],
        "output": {"path": str(out)},
        "cluster": {"n_workers": 2, "threads_per_worker": 1, "max_tiles_in_flight": 4},
    }


def tiles_for(m, work: Path, ny: int, nx: int, resolution: float = 10.0) -> tuple[int, int]:
    """A tile shape that splits the mission's grid at ``resolution`` into ``ny`` x ``nx`` tiles."""
    from orbitcube.pipeline.plan import plan_run

    g = plan_run(recipe(m, work / "probe.zarr", (4096, 4096), resolution)).geobox
    ty, tx = math.ceil(g.shape.y / ny), math.ceil(g.shape.x / nx)
    assert (math.ceil(g.shape.y / ty), math.ceil(g.shape.x / tx)) == (ny, nx), (g.shape, ny, nx)
    return ty, tx


def time_tiles(plan) -> list[dict]:
    """Every tile of ``plan`` computed and written in this process (synchronous scheduler), timed."""
    import dask

    from orbitcube.pipeline.estimate import tile_work
    from orbitcube.pipeline.execute import tile_graph
    from orbitcube.pipeline.run import _open_store

    _open_store(plan, False, ())
    reads, writes, steps, bands = tile_work(plan)
    out = []
    with dask.config.set(scheduler="synchronous"):
        for n, tp in enumerate(plan.tile_plans):
            g = tile_graph(plan, tp.index, plan.read_env)
            t0, c0 = time.perf_counter(), time.process_time()
            g.compute()
            out.append({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                        "reads": reads[n], "writes": writes[n], "pixels": tp.shape[0] * tp.shape[1]})  # fmt: skip
    return out


def fit(rows: list[dict]) -> tuple[float, float, float]:
    """Non-negative least squares of wall seconds ~ tile_s + k_read * reads/1e9 + k_write * writes/1e9."""
    from scipy.optimize import nnls

    a = np.array([[1.0, r["reads"] / 1e9, r["writes"] / 1e9] for r in rows])
    b = np.array([r["wall_s"] for r in rows])
    coef, _ = nnls(a, b)
    return tuple(float(c) for c in coef)


def peak_factor(plan) -> float:
    """tracemalloc peak of the largest tile / its float32 (bands x time x pixels) bytes."""
    import tracemalloc

    import dask

    from orbitcube.pipeline.estimate import tile_work
    from orbitcube.pipeline.execute import tile_graph

    _, _, steps, bands = tile_work(plan)
    tp = max(plan.tile_plans, key=lambda t: (len(t.items), t.shape[0] * t.shape[1]))
    g = tile_graph(plan, tp.index, plan.read_env)
    tracemalloc.start()
    with dask.config.set(scheduler="synchronous"):
        g.compute()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / (4.0 * steps * bands * tp.shape[0] * tp.shape[1])


def real_run(doc: dict) -> dict:
    from orbitcube.pipeline.run import run_recipe

    with TreeMonitor() as mon:
        t0 = time.perf_counter()
        res = run_recipe(doc, progress=False, resume=False)
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "cpu_s": mon.cpu_s, "worker_peak_mb": mon.worker_peak_mb, "tiles": res.tiles_done}


def calibrate(m, work: Path) -> dict:
    """Per-tile seconds fitted on every tile of a 3 x 3 and a 6 x 6 tiling (computed in this process); then real
    runs of both tilings on a 2-worker LocalCluster give the fixed start-up seconds and the per-tile overhead of
    the cluster (scheduling, tile markers), added to ``tile_s``."""
    from orbitcube.pipeline.estimate import CostModel, estimate_run
    from orbitcube.pipeline.plan import plan_run

    plans, rows = [], []
    for n in (3, 6):
        plan = plan_run(recipe(m, work / f"calib-{n}.zarr", tiles_for(m, work, n, n)))
        plans.append(plan)
        rows += time_tiles(plan)
    tile_s, k_read, k_write = fit(rows)
    factor = peak_factor(plans[-1])
    sync = CostModel(tile_s, k_read, k_write, 0.0, 0.0, factor)
    runs, work_s = [], []
    for n, plan in zip((3, 6), plans, strict=True):
        runs.append(real_run(recipe(m, work / f"calib-run-{n}.zarr", tuple(plan.recipe.grid.tile_shape))))
        work_s.append(estimate_run(plan, 1, sync).cpu_hours * 3600)
    (w1, w2), (n1, n2), workers = [r["wall_s"] for r in runs], (9, 36), 2
    overhead = max((workers * (w2 - w1) - (work_s[1] - work_s[0])) / (n2 - n1), 0.0)
    startup = max(w1 - (work_s[0] + n1 * overhead) / workers, 0.0)
    e = estimate_run(plans[-1], workers, sync)
    model = CostModel(
        tile_s=tile_s + overhead,
        read_s_per_gvalue=k_read,
        write_s_per_gvalue=k_write,
        startup_s=startup,
        worker_base_mb=max(runs[1]["worker_peak_mb"] - (e.worker_memory_mb - sync.worker_base_mb), 0.0),
        mem_factor=factor,
        machine=f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}",
        measured=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    return {"model": model, "sync_tile_s": tile_s, "cluster_tile_overhead_s": overhead, "tiles": rows,
            "runs": runs}  # fmt: skip


def check(m, work: Path, model, ny: int, nx: int, resolution: float) -> dict:
    """Estimate, then run for real, the mission at ``resolution`` in ``ny`` x ``nx`` tiles."""
    from orbitcube.pipeline.estimate import estimate_run
    from orbitcube.pipeline.plan import plan_run

    shape = tiles_for(m, work, ny, nx, resolution)
    doc = recipe(m, work / f"check-{ny * nx}.zarr", shape, resolution)
    plan = plan_run(doc)
    e = estimate_run(plan, 2, model)
    run = real_run(doc)
    return {
        "tiles": len(plan.tile_plans),
        "tile_shape": shape,
        "resolution": resolution,
        "estimate": {
            "wall_s": e.wall_s,
            "tile_cpu_s": e.cpu_hours * 3600,
            "worker_memory_mb": e.worker_memory_mb,
        },  # fmt: skip
        "actual": run,
        "wall_error": e.wall_s / run["wall_s"] - 1.0,
        "memory_error": e.worker_memory_mb / run["worker_peak_mb"] - 1.0,
    }


#: the continental grid: EPSG:3035 (ETRS89 LAEA Europe), 5,000 x 4,000 km, 10 m, 2048 px tiles
CONTINENT = {
    "crs": "EPSG:3035",
    "bounds": (2_000_000, 1_000_000, 7_000_000, 5_000_000),
    "res": 10,
    "tile": 2048,
}


def _template(gbox, utc: np.ndarray, geoms: np.ndarray, ts: int):
    """Solar days of the items (UTC + centre longitude / 15 h) and the NDVI + monthly-median template."""
    import dask.array as dsa
    import shapely
    import xarray as xr
    from odc.geo.xr import xr_coords

    lon = shapely.get_coordinates(shapely.centroid(geoms))[:, 0]
    utc = utc.astype("datetime64[ns]")
    days = np.unique((utc + (lon / 15 * 3600e9).astype("timedelta64[ns]")).astype("datetime64[D]"))
    time_axis = days.astype("datetime64[ns]")
    months = np.unique(days.astype("datetime64[M]")).astype("datetime64[ns]")
    coords = xr_coords(gbox, crs_coord_name="spatial_ref")
    ny, nx = gbox.shape.yx
    template = xr.Dataset(
        {"ndvi": (("time", "y", "x"), dsa.zeros((len(time_axis), ny, nx), "float32", chunks=(-1, ts, ts))),
         "ndvi_median": (("month", "y", "x"), dsa.zeros((len(months), ny, nx), "float32", chunks=(-1, ts, ts)))},
        coords={"time": time_axis, "month": months, **coords},
    )  # fmt: skip
    return time_axis, template


def consistent_index(path: Path) -> None:
    """Rewrite the grown index ``path`` (items.parquet) so that every item's rasters cover its footprint:
    ``proj:code`` the UTM zone of the footprint's centre, each asset's ``proj:transform`` / ``proj:shape`` the
    footprint's UTM bounds at the asset's pixel size. (The grown rows keep their template's, which lie
    elsewhere: a real plan would skip every item as 'raster outside the item's geometry'.)"""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import shapely
    from pyproj import Transformer

    from orbitcube.catalog.index import write_index

    t = pq.read_table(path)
    geoms = shapely.from_wkb(t.column("geometry").to_numpy(zero_copy_only=False))
    lon, lat = shapely.get_coordinates(shapely.centroid(geoms)).T
    epsg = np.where(lat >= 0, 32600, 32700) + np.clip(np.floor((lon + 180) / 6).astype(int) + 1, 1, 60)
    n = len(geoms)
    xmin, ymin, xmax, ymax = np.full(n, np.inf), np.full(n, np.inf), np.full(n, -np.inf), np.full(n, -np.inf)
    xy, which = shapely.get_coordinates(geoms, return_index=True)
    for code in np.unique(epsg):
        sel = epsg[which] == code
        x, y = Transformer.from_crs(4326, int(code), always_xy=True).transform(xy[sel, 0], xy[sel, 1])
        rows = which[sel]
        np.minimum.at(xmin, rows, x), np.minimum.at(ymin, rows, y)
        np.maximum.at(xmax, rows, x), np.maximum.at(ymax, rows, y)
    assets = t.column("assets").combine_chunks()
    children = []
    for f in assets.type:
        a = assets.field(f.name)
        res = np.abs(pc.list_element(a.field("proj:transform"), 0).to_numpy(zero_copy_only=False))
        x0, y1 = np.floor(xmin / res) * res, np.ceil(ymax / res) * res
        w, h = np.ceil((xmax - x0) / res).astype(np.int64), np.ceil((y1 - ymin) / res).astype(np.int64)
        zero = np.zeros(n)
        tr = pa.ListArray.from_arrays(np.arange(n + 1) * 6, pa.array(np.column_stack([res, zero, x0, zero, -res, y1]).ravel()))
        shape = pa.ListArray.from_arrays(np.arange(n + 1) * 2, pa.array(np.column_stack([h, w]).ravel()))
        new = {"proj:transform": tr, "proj:shape": shape}
        kids = [new[c.name].cast(c.type) if c.name in new else a.field(c.name) for c in f.type]
        children.append(pa.StructArray.from_arrays(kids, fields=list(f.type), mask=a.is_null()))
    t = t.set_column(t.schema.get_field_index("assets"), t.schema.field("assets"),
                     pa.StructArray.from_arrays(children, fields=list(assets.type), mask=assets.is_null()))
    t = t.set_column(t.schema.get_field_index("proj:code"), t.schema.field("proj:code"),
                     pa.array([f"EPSG:{c}" for c in epsg.tolist()], pa.string()))  # fmt: skip
    tmp = path.with_name("items.tmp.parquet")
    write_index(t, tmp)
    tmp.replace(path)


def continent(work: Path, n_items: int, workers: int) -> dict:
    """Plan a year of the grown index on the continental grid (no pystac Items: footprints from the index's
    WKB column), timed phase by phase; plus the per-item cost of search + screening on three days of it."""
    import types

    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import shapely
    from odc.geo.geobox import GeoBox

    from benchmarks.bench_search import grow_index, ingest_rate
    from orbitcube.catalog.access import Storage
    from orbitcube.pipeline.grid import tile_grid
    from orbitcube.pipeline.plan import RunPlan, _tile_plans
    from orbitcube.pipeline.recipe import load_recipe

    work = work / "continent"
    work.mkdir()
    ing = ingest_rate(work)
    grow_index(Path(ing["catalog"]), n_items, work / "big")
    times: dict[str, float] = {}
    t0 = t = time.perf_counter()
    table = pq.read_table(work / "big" / "items.parquet", columns=["id", "datetime", "geometry"])
    when = table.column("datetime")
    year = pc.and_(pc.greater_equal(when, pc.strptime("2021-01-01", "%Y-%m-%d", "us", error_is_null=True).cast(when.type)),
                   pc.less(when, pc.strptime("2022-01-01", "%Y-%m-%d", "us", error_is_null=True).cast(when.type)))  # fmt: skip
    table = table.filter(year)
    geoms = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    items = [
        types.SimpleNamespace(id=i, geometry=g)
        for i, g in zip(table.column("id").to_pylist(), geoms, strict=True)
    ]
    times["read index columns (year)"] = time.perf_counter() - t
    t = time.perf_counter()
    x0, y0, x1, y1 = CONTINENT["bounds"]
    res, ts = CONTINENT["res"], CONTINENT["tile"]
    gbox = GeoBox.from_bbox((x0, y0, x1, y1), crs=CONTINENT["crs"], resolution=res)
    tiles = tile_grid(gbox, (ts, ts))
    times["grid and tiles"] = time.perf_counter() - t
    t = time.perf_counter()
    skipped: dict[str, str] = {}
    inside, plans = _tile_plans(items, gbox, tiles, skipped)
    times["footprints + items per tile"] = time.perf_counter() - t
    t = time.perf_counter()
    time_axis, template = _template(gbox, table.column("datetime").to_numpy(), geoms, ts)
    doc = {
        "name": "continent",
        "catalog": {"source": str(work / "big"), "allow": [str(work / "mission")]},
        "search": {"aoi": [-12.0, 33.0, 45.0, 66.0], "datetime": "2021"},
        "grid": {"crs": CONTINENT["crs"], "resolution": res, "tile_shape": [ts, ts]},
        "load": {"bands": ["red", "nir"]},
        "analytics": [{"op": "index", "index": "NDVI"},
                      {"op": "composite", "input": "ndvi", "stat": "median", "freq": "1MS"}],
        "output": {"path": str(work / "continent.zarr")},
        "cluster": {"n_workers": workers, "threads_per_worker": 1},
    }  # fmt: skip
    rec = load_recipe(doc)
    plan = RunPlan(
        recipe=rec, geobox=gbox, tiles=tiles, tile_plans=plans, items=tuple(inside),
        skipped_items=tuple(skipped.items()), template=template, time_axis=time_axis,
        bytes_read=sum(len(tp.items) * tp.shape[0] * tp.shape[1] for tp in plans) * 6,
        bytes_written=sum(int(v.size) * 4 for v in template.data_vars.values()),
        storage=Storage.resolve(rec.storage, rec.cluster.gdal_env),
    )  # fmt: skip
    times["time axis + template"] = time.perf_counter() - t
    t = time.perf_counter()
    summary = plan.summary(workers=workers)
    times["estimate + summary"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    per_item = search_cost(work)
    return {"items": len(items), "inside": len(inside), "tiles": len(plans), "grid_px": list(gbox.shape.yx),
            "times_s": times, "total_s": total, "summary": summary, "search": per_item,
            "search_year_s": per_item["s_per_item"] * len(items)}  # fmt: skip


def search_cost(work: Path) -> dict:
    """Seconds per item of the catalog search (pystac Items materialised) + screening, on three days of the index."""
    from orbitcube.catalog.query import search
    from orbitcube.catalog.store import open_catalog
    from orbitcube.pipeline.preflight import screen_items

    cat = open_catalog(work / "big")
    t = time.perf_counter()
    found = search(
        cat, bbox=(-12, 33, 45, 66), datetime="2021-01-01/2021-01-03", allow=[str(work / "mission")]
    )
    s = time.perf_counter() - t
    t = time.perf_counter()
    screen_items(list(found), ["red", "nir"], True)
    sc = time.perf_counter() - t
    return {"items": len(found), "search_s": s, "screen_s": sc, "s_per_item": (s + sc) / max(len(found), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibrate", action="store_true", help="write benchmarks/calibration.json")
    ap.add_argument("--skip-continent", action="store_true")
    ap.add_argument("--continent-only", action="store_true", help="only step 3, with the stored calibration")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=100, help="workers of the continental estimate")
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)  # screening warns once per synthetic item
    report: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                "loadavg_start": os.getloadavg()}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.continent_only:
            c = continent(work, args.items, args.workers)
            print(json.dumps({k: v for k, v in c.items() if k != "summary"}, indent=1, default=str))
            print(c["summary"])
            return
        m = mission(work)
        cal = calibrate(m, work)
        model = cal["model"]
        report["calibration"] = {**cal, "model": model.to_json()}
        if args.calibrate:
            CALIBRATION.write_text(json.dumps({"model": model.to_json(), "tilings": ["3x3", "6x6"],
                                               "tiles_timed": len(cal["tiles"]), "runs": cal["runs"]},
                                              indent=1))  # fmt: skip
        print(f"calibration: {json.dumps(model.to_json())}\n  in-process tile intercept {cal['sync_tile_s']:.3f} s, "
              f"cluster overhead per tile {cal['cluster_tile_overhead_s']:.3f} s, real runs (9, 36 tiles): "
              + ", ".join(f"{r['wall_s']:.1f} s" for r in cal["runs"]))  # fmt: skip
        for ny, nx, res in ((2, 5, 10.0), (10, 10, 5.0)):
            r = check(m, work, model, ny, nx, res)
            report[f"check_{r['tiles']}"] = r
            a, e = r["actual"], r["estimate"]
            print(f"{r['tiles']} tiles of {r['tile_shape']} px at {res:g} m: wall estimate {e['wall_s']:.1f} s, actual {a['wall_s']:.1f} s "
                  f"({r['wall_error']:+.0%}); worker memory estimate {e['worker_memory_mb']:.0f} MB, actual peak "
                  f"{a['worker_peak_mb']:.0f} MB ({r['memory_error']:+.0%}); CPU actual {a['cpu_s']:.1f} s "
                  f"(tiles estimate {e['tile_cpu_s']:.1f} s)")  # fmt: skip
        if not args.skip_continent:
            c = continent(work, args.items, args.workers)
            report["continent"] = c
            print(
                f"continent: {c['items']} items of a year ({c['inside']} on the grid), {c['tiles']} tiles, "
                f"planned in {c['total_s']:.1f} s: "
                + ", ".join(f"{k} {v:.1f} s" for k, v in c["times_s"].items())
            )
            print(
                f"  search + screening: {c['search']['s_per_item'] * 1e3:.1f} ms per item "
                f"({c['search']['items']} items of 3 days) -> {c['search_year_s']:.0f} s for the year"
            )
            print(c["summary"])
    report["machine"]["loadavg_end"] = os.getloadavg()
    (HERE / "_out").mkdir(exist_ok=True)
    (HERE / "_out" / "plan.json").write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
