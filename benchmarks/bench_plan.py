"""Continental plans (issue 15, item 3): calibrate the cost model, check it against real runs, time a continent.

    .venv/bin/python -m benchmarks.bench_plan [--calibrate] [--skip-continent | --continent-only] [--items 1000000]

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
3. Continent: the 1,000,000-item index of :mod:`benchmarks.bench_search` (its generator; the rasters of each
   item moved onto its footprint, :func:`consistent_index`) and a recipe of a year of it (~200k items) on a
   5,000 x 4,000 km grid at 10 m in EPSG:3035 with 2048 px tiles (~48k tiles): the real
   ``orbitcube run RECIPE --dry-run --workers 100``, in a subprocess, ``--runs`` times (median), with the
   phases it logs. ``--continent-only --index DIR`` reuses a catalog folder an earlier run built.

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
        tr = pa.ListArray.from_arrays(
            np.arange(n + 1) * 6, pa.array(np.column_stack([res, zero, x0, zero, -res, y1]).ravel())
        )
        shape = pa.ListArray.from_arrays(np.arange(n + 1) * 2, pa.array(np.column_stack([h, w]).ravel()))
        new = {"proj:transform": tr, "proj:shape": shape}
        kids = [new[c.name].cast(c.type) if c.name in new else a.field(c.name) for c in f.type]
        children.append(pa.StructArray.from_arrays(kids, fields=list(f.type), mask=a.is_null()))
    t = t.set_column(
        t.schema.get_field_index("assets"),
        t.schema.field("assets"),
        pa.StructArray.from_arrays(children, fields=list(assets.type), mask=assets.is_null()),
    )
    t = t.set_column(t.schema.get_field_index("proj:code"), t.schema.field("proj:code"),
                     pa.array([f"EPSG:{c}" for c in epsg.tolist()], pa.string()))  # fmt: skip
    tmp = path.with_name("items.tmp.parquet")
    write_index(t, tmp)
    tmp.replace(path)


def continent_index(work: Path, n_items: int) -> Path:
    """The continental catalog: the 1,000,000-item index of :mod:`benchmarks.bench_search` (its generator, its
    template mission) with rasters that cover each footprint (:func:`consistent_index`). Returns its folder."""
    from benchmarks.bench_search import grow_index, ingest_rate

    work.mkdir(parents=True, exist_ok=True)
    ing = ingest_rate(work)
    grow_index(Path(ing["catalog"]), n_items, work / "big")
    consistent_index(work / "big" / "items.parquet")
    return work / "big"


def continent_recipe(index: Path, out: Path, workers: int) -> Path:
    """The continental recipe (YAML beside ``out``): a year (2021) of the index on the :data:`CONTINENT` grid
    (its AOI: the grid's box traced in lon/lat), NDVI + monthly median, ``workers`` workers."""
    import yaml
    from pyproj import Transformer

    x0, y0, x1, y1 = CONTINENT["bounds"]
    t = np.linspace(0, 1, 200, endpoint=False)
    xs = np.r_[x0 + t * (x1 - x0), np.full_like(t, x1), x1 - t * (x1 - x0), np.full_like(t, x0)]
    ys = np.r_[np.full_like(t, y0), y0 + t * (y1 - y0), np.full_like(t, y1), y1 - t * (y1 - y0)]
    lon, lat = Transformer.from_crs(CONTINENT["crs"], 4326, always_xy=True).transform(xs, ys)
    ring = np.column_stack([lon, lat]).tolist()
    doc = {
        "name": "continent",
        "catalog": {"source": str(index), "allow": [str(index.parent / "mission")]},
        "search": {"aoi": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}, "datetime": "2021"},
        "grid": {"crs": CONTINENT["crs"], "resolution": CONTINENT["res"], "tile_shape": [CONTINENT["tile"]] * 2},
        "load": {"bands": ["red", "nir"]},
        "analytics": [{"op": "index", "index": "NDVI"},
                      {"op": "composite", "input": "ndvi", "stat": "median", "freq": "1MS"}],
        "output": {"path": str(out)},
        "cluster": {"n_workers": workers, "threads_per_worker": 1},
    }  # fmt: skip
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(doc))
    return path


def dry_run(recipe_path: Path, workers: int) -> dict:
    """``orbitcube run RECIPE --dry-run --workers N`` in a subprocess: wall and CPU seconds (the child's user +
    system), the load average before it, the phases it logs (``plan: ... in X s``) and what it prints."""
    import re
    import resource
    import subprocess
    import sys

    load = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "orbitcube.pipeline.cli",
        "run",
        str(recipe_path),
        "--dry-run",
        "--workers",
        str(workers),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode:
        raise RuntimeError(f"dry run failed ({res.returncode}):\n{res.stderr[-3000:]}")
    phases = {m[1]: float(m[2]) for m in re.finditer(r"plan: (.+) in ([0-9.]+) s", res.stderr)}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "loadavg_before": load, "phases_s": phases, "summary": res.stdout}


def continent(work: Path, n_items: int, workers: int, runs: int = 3, index: Path | None = None) -> dict:
    """The real dry run of the continental recipe (:func:`continent_recipe`), ``runs`` times: median wall time,
    and every run's wall and CPU seconds, load average and phases."""
    index = index or continent_index(work / "continent", n_items)
    recipe_path = continent_recipe(index, work / "continent.zarr", workers)
    timings = [dry_run(recipe_path, workers) for _ in range(runs)]
    return {"runs": [{k: v for k, v in t.items() if k != "summary"} for t in timings],
            "median_wall_s": float(np.median([t["wall_s"] for t in timings])),
            "median_cpu_s": float(np.median([t["cpu_s"] for t in timings])),
            "summary": timings[-1]["summary"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibrate", action="store_true", help="write benchmarks/calibration.json")
    ap.add_argument("--skip-continent", action="store_true")
    ap.add_argument("--continent-only", action="store_true", help="only step 3, with the stored calibration")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=100, help="workers of the continental estimate")
    ap.add_argument(
        "--runs", type=int, default=3, help="dry runs of the continental recipe (median reported)"
    )
    ap.add_argument("--index", type=Path, help="an existing continental catalog folder (skips building one)")
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)  # screening warns once per synthetic item
    report: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                "loadavg_start": os.getloadavg()}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.continent_only:
            c = continent(work, args.items, args.workers, args.runs, args.index)
            report["continent"] = c
            _print_continent(c)
            _write(report)
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
            report["continent"] = continent(work, args.items, args.workers, args.runs, args.index)
            _print_continent(report["continent"])
    _write(report)


def _print_continent(c: dict) -> None:
    print(
        f"continent: `orbitcube run --dry-run` median {c['median_wall_s']:.1f} s wall, {c['median_cpu_s']:.1f} s CPU"
    )
    for r in c["runs"]:
        print(f"  {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, load average before {r['loadavg_before'][0]:.1f}: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in r["phases_s"].items()))  # fmt: skip
    print(c["summary"])


def _write(report: dict) -> None:
    report["machine"]["loadavg_end"] = os.getloadavg()
    (HERE / "_out").mkdir(exist_ok=True)
    (HERE / "_out" / "plan.json").write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
