"""Scheduler memory over a long batch run (issue 15): does it grow with the number of tiles already finished?

    .venv/bin/python -m benchmarks.bench_scheduler [--tile-px 32] [--min-tiles 200]

Simulates (once, cached in ``benchmarks/_data/sched``) a month of a Sentinel-2-like mission, starts a real
``dask scheduler`` and 2 ``dask worker`` processes (1 thread each, nannies) on loopback, runs the standard recipe
(SCL mask, NDVI, monthly median, Zarr) tile by tile with
``orbitcube.pipeline.run.run_recipe(recipe, scheduler="tcp://127.0.0.1:PORT")`` on small tiles (at least
``--min-tiles``), sampling the scheduler process's RSS every 100 ms, then stops the processes. Reports the
median RSS of the first and the last quarter of the run (target: last / first <= 1.2) and the peak.

Writes ``benchmarks/_out/scheduler.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "sched"
BIN = Path(sys.executable).parent


def _mission():
    from orbitcube.catalog.simulator import MissionConfig, simulate_mission

    cfg = MissionConfig(
        seed=21, tile_size=256, start=dt.date(2023, 6, 1), end=dt.date(2023, 6, 30), workers=2
    )
    if not (DATA / "mission" / "catalog" / "catalog.json").exists():
        shutil.rmtree(DATA, ignore_errors=True)
        simulate_mission(cfg, DATA / "mission")
    return cfg


def _recipe(cfg, out: Path, tile_px: int) -> dict:
    return {
        "name": "bench-scheduler",
        "catalog": {"source": str(DATA / "mission" / "catalog" / "catalog.json")},
        "search": {"aoi": list(cfg.aoi_bbox), "datetime": "2023-06-01/2023-06-30"},
        "grid": {"crs": f"EPSG:{cfg.truth_epsg}", "resolution": 10, "tile_shape": [tile_px, tile_px]},
        "load": {"bands": ["red", "nir"]},
        "analytics": [
            {"op": "index", "index": "NDVI"},
            {"op": "composite", "input": "ndvi", "stat": "median", "freq": "1MS"},
        ],
        "output": {"path": str(out)},
        "cluster": {"n_workers": 2, "threads_per_worker": 1},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(port: int) -> list[subprocess.Popen]:
    addr = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], **quiet)]  # fmt: skip
    for _ in range(2):
        procs.append(subprocess.Popen([BIN / "dask", "worker", addr, "--host", "127.0.0.1", "--nthreads", "1",
                                       "--no-dashboard", "--nanny"], **quiet))  # fmt: skip
    from distributed import Client

    with Client(addr, timeout="60s") as c:
        c.wait_for_workers(2, timeout=120)
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def scheduler_state(dask_scheduler) -> dict:
    """Sizes of what a scheduler keeps between computations (run on the scheduler with ``run_on_scheduler``)."""
    spans = getattr(dask_scheduler.extensions.get("spans"), "spans", {})
    return {
        "tasks": len(dask_scheduler.tasks),
        "task_groups": len(dask_scheduler.task_groups),
        "task_prefixes": len(dask_scheduler.task_prefixes),
        "spans": len(spans),
        "groups_held_by_spans": sum(len(s.groups) for s in spans.values()),
        "computations": len(dask_scheduler.computations),
        "transition_log": len(dask_scheduler.transition_log),
        "events": sum(len(getattr(t, "events", ())) for t in dask_scheduler._broker._topics.values())
        if hasattr(dask_scheduler, "_broker")
        else None,
        "span_code_entries": sum(len(getattr(s, "_code", ())) for s in spans.values()),
    }


def object_counts(dask_scheduler) -> dict:
    """Live Python objects on the scheduler by type name (diagnosis of growth between two runs)."""
    import collections
    import gc

    gc.collect()
    return dict(collections.Counter(type(o).__name__ for o in gc.get_objects()))


def holders(dask_scheduler, type_name: str = "ToPickle", depth: int = 4) -> list:
    """Chains of referrer types of a few live ``type_name`` objects on the scheduler (diagnosis)."""
    import gc

    gc.collect()
    found = [o for o in gc.get_objects() if type(o).__name__ == type_name][:3]
    chains = []
    for obj in found:
        chain, cur = [], obj
        for _ in range(depth):
            refs = [
                r
                for r in gc.get_referrers(cur)
                if r is not found and type(r).__name__ not in ("frame", "list")
            ]
            if not refs:
                break
            cur = refs[0]
            desc = type(cur).__name__
            if isinstance(cur, dict):
                desc += f"(keys {list(cur)[:4]})"
            chain.append(desc)
        chains.append(chain)
    return chains


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile-px", type=int, default=32)
    ap.add_argument("--min-tiles", type=int, default=200)
    ap.add_argument("--no-performance-report", action="store_true",
                    help="diagnosis: run without run.py's distributed.performance_report (task stream on the scheduler)")  # fmt: skip
    ap.add_argument("--diagnose", action="store_true",
                    help="run the recipe twice and print the object types that grew on the scheduler in between")  # fmt: skip
    args = ap.parse_args()
    if args.no_performance_report:
        import contextlib

        import distributed

        distributed.performance_report = lambda **kw: contextlib.nullcontext()
    from orbitcube.pipeline.run import plan_run, run_recipe

    cfg = _mission()
    out = DATA / "out" / "cube.zarr"
    shutil.rmtree(out.parent, ignore_errors=True)
    recipe = _recipe(cfg, out, args.tile_px)
    n_tiles = len(plan_run(recipe).tile_plans)
    if n_tiles < args.min_tiles:
        raise SystemExit(f"{n_tiles} tiles < {args.min_tiles}; lower --tile-px")
    port = _free_port()
    procs = _start(port)
    sched = psutil.Process(procs[0].pid)
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                samples.append((time.perf_counter(), sched.memory_info().rss / 2**20))
            except psutil.Error:
                return
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    try:
        rss_idle = sched.memory_info().rss / 2**20
        th.start()
        t0 = time.perf_counter()
        res = run_recipe(recipe, scheduler=f"tcp://127.0.0.1:{port}", progress=False, resume=False)
        t1 = time.perf_counter()
        done.set()
        th.join()
        rss_after = sched.memory_info().rss / 2**20
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{port}", timeout="60s") as c:
            state = c.run_on_scheduler(scheduler_state)
            if args.diagnose:
                before = c.run_on_scheduler(object_counts)
                run_recipe(recipe, scheduler=f"tcp://127.0.0.1:{port}", progress=False, resume=False)
                after = c.run_on_scheduler(object_counts)
                grew = sorted(((after.get(k, 0) - before.get(k, 0), k) for k in after), reverse=True)[:20]
                print("objects grown on the scheduler over a second run:", grew, flush=True)
                print("holders:", c.run_on_scheduler(holders), flush=True)
    finally:
        done.set()
        _stop(procs)
    run = [(t, r) for t, r in samples if t0 <= t <= t1]
    q = (t1 - t0) / 4
    first = [r for t, r in run if t < t0 + q]
    last = [r for t, r in run if t >= t1 - q]
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": psutil.cpu_count()},  # fmt: skip
        "tiles": n_tiles, "tiles_written": res.tiles_written if hasattr(res, "tiles_written") else None,
        "tile_px": args.tile_px, "performance_report": not args.no_performance_report, "seconds": t1 - t0, "rss_idle_mb": rss_idle,
        "rss_first_quarter_mb": statistics.median(first), "rss_last_quarter_mb": statistics.median(last),
        "rss_peak_mb": max(r for _, r in run), "rss_after_mb": rss_after,
        "ratio_last_first": statistics.median(last) / statistics.median(first),
        "scheduler_state": state,
        "samples": [(round(t - t0, 2), round(r, 1)) for t, r in run],
    }  # fmt: skip
    (HERE / "_out").mkdir(exist_ok=True)
    name = "scheduler-noreport.json" if args.no_performance_report else "scheduler.json"
    (HERE / "_out" / name).write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=1))


if __name__ == "__main__":
    main()
