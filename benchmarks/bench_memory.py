"""Peak memory of the whole process tree (issue 15): flat in the time span and the area, and against odc-stac.

    .venv/bin/python -m benchmarks.bench_memory [--runs 3] [--series dates area s2] [--prepare]

Each run is its own process (client + scheduler + a 2-worker LocalCluster started by the library, one thread
per worker), polled with psutil every 50 ms: the peak of the sum of the RSS of the process and all its
descendants, and each process's own peak (client, scheduler, workers) to show where the memory goes.

Series (simulated Sentinel-2-like missions over an AOI straddling UTM zones 32/33, the standard product: SCL
mask, NDVI, monthly median, both written to Zarr):

- ``dates``: 512 px tiles (grid 714 x 456 px, 2 chunks of 512 px), 1, 4 and 16 months of 5-day passes (6, 24
  and 96 solar days), orbitcube with its default chunking (time chunks from the 2 GB-per-worker budget);
- ``area``: June 2023 (6 solar days) over 512, 1024 and 2048 px tiles (grids 714 x 456, 1434 x 924 and
  2868 x 1848 px: 1x, 4x, 16x the area; 2, 6 and 24 chunks of 512 px);
- ``s2``: the "S2 two-zone product": 24 scenes of 2048 px (12 passes over both zones, January-February 2023),
  bilinear onto the western zone's 10 m grid, 1024 px chunks, monthly median NDVI; orbitcube and
  ``odc.stac.load`` (+ xarray, as ``benchmarks.variants``) alternating, same run.

Writes ``benchmarks/_out/memory-SERIES.json`` and prints Markdown tables for ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
OUT = HERE / "_out"

D = dt.date
#: name -> (MissionConfig overrides, load resampling, chunk px)
CASES: dict[str, tuple[dict, str, int]] = {
    "dates1x": ({"tile_size": 512, "start": D(2023, 1, 1), "end": D(2023, 1, 31)}, "nearest", 512),
    "dates4x": ({"tile_size": 512, "start": D(2023, 1, 1), "end": D(2023, 4, 30)}, "nearest", 512),
    "dates16x": ({"tile_size": 512, "start": D(2023, 1, 1), "end": D(2024, 4, 30)}, "nearest", 512),
    "area1x": ({"tile_size": 512, "start": D(2023, 6, 1), "end": D(2023, 6, 30)}, "nearest", 512),
    "area4x": ({"tile_size": 1024, "start": D(2023, 6, 1), "end": D(2023, 6, 30)}, "nearest", 512),
    "area16x": ({"tile_size": 2048, "start": D(2023, 6, 1), "end": D(2023, 6, 30)}, "nearest", 512),
    "s2": ({"tile_size": 2048, "start": D(2023, 1, 1), "end": D(2023, 3, 1)}, "bilinear", 1024),
}
SERIES = {
    "dates": (["dates1x", "dates4x", "dates16x"], ["orbitcube"]),
    "area": (["area1x", "area4x", "area16x"], ["orbitcube"]),
    "s2": (["s2"], ["orbitcube", "odc"]),
}


def ensure_data(case: str) -> Path:
    """Simulate the case's mission once (reused by later runs)."""
    from orbitcube.catalog.simulator import MissionConfig, simulate_mission

    data = DATA / f"mem-{case}"
    if not (data / "mission" / "catalog" / "catalog.json").exists():
        shutil.rmtree(data, ignore_errors=True)
        cfg = MissionConfig(seed=11, workers=2, write_truth_reflectance=False, events=False, **CASES[case][0])
        simulate_mission(cfg, data / "mission")
    return data


def measure(case: str, variant: str) -> dict:
    """Run one case and variant in a fresh process; peak RSS of the tree and of each process, wall time."""
    out = OUT / "memory" / f"{case}-{variant}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "benchmarks.bench_memory", "--child", variant, str(DATA / f"mem-{case}"),
           str(out), CASES[case][1], str(CASES[case][2])]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE.parent)
    root = psutil.Process(proc.pid)
    peak, own = 0, {}
    while proc.poll() is None:
        try:
            total = 0
            for p in [root, *root.children(recursive=True)]:
                try:
                    rss = p.memory_info().rss
                    role = _role(p, root)
                except psutil.Error:
                    continue
                total += rss
                own[(p.pid, role)] = max(own.get((p.pid, role), 0), rss)
            peak = max(peak, total)
        except psutil.Error:
            pass
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{case} {variant} failed:\n{stderr[-3000:]}")
    roles: dict[str, list[float]] = {}
    for (_pid, role), rss in own.items():
        roles.setdefault(role, []).append(rss / 2**20)
    return {
        "peak_rss_mb": peak / 2**20,
        "per_process_peak_mb": {k: sorted(v, reverse=True) for k, v in roles.items()},
        "wall_s": time.perf_counter() - t0,
        **json.loads(stdout.strip().splitlines()[-1]),
    }


def _role(p: psutil.Process, root: psutil.Process) -> str:
    if p.pid == root.pid:
        return "client"
    cmd = " ".join(p.cmdline())
    if "spawn_main" in cmd or "multiprocessing" in cmd:
        return "worker-or-scheduler" if "forkserver" not in cmd else "forkserver"
    return "other"


def child(variant: str, data_dir: Path, out: Path, resampling: str, chunk: int) -> None:
    """One run: the standard product (SCL mask, NDVI, monthly median, Zarr) by orbitcube or odc-stac."""
    from benchmarks import variants

    items, geobox = variants._setup(data_dir)
    t0 = time.perf_counter()
    if variant == "orbitcube":
        import xarray as xr

        from orbitcube.pipeline import composite, load_cube, spectral_index, start_cluster, write_zarr

        with start_cluster(n_workers=2, threads_per_worker=1, dashboard_address=None):
            cube = load_cube(
                items, ["red", "nir"], geobox=geobox, resampling=resampling, chunks={"y": chunk, "x": chunk}
            )
            ndvi = spectral_index(cube, "NDVI")
            monthly = composite(ndvi, "median", freq="1MS").rename(time="month")
            write_zarr(xr.Dataset({"ndvi": ndvi, "ndvi_median": monthly.rename("ndvi_median")}), out)
            time_chunks = list(cube["red"].chunks[0])
    else:
        import odc.stac

        client = variants._dask_client()
        ds = odc.stac.load(items, bands=["red", "nir", "SCL"], geobox=geobox, groupby="solar_day",
                           chunks={"x": chunk, "y": chunk}, resampling=resampling)  # fmt: skip
        valid = ~ds.SCL.isin(variants.SCL_BAD)
        red = (ds.red.where(ds.red != 0) * 1e-4 - 0.1).where(valid)
        nir = (ds.nir.where(ds.nir != 0) * 1e-4 - 0.1).where(valid)
        variants._finish(((nir - red) / (nir + red)).chunk({"time": -1}), out)
        time_chunks = None
        client.close()
    print(json.dumps({"inner_wall_s": time.perf_counter() - t0, "scenes": len(items),
                      "grid": list(geobox.shape.yx), "time_chunks": time_chunks}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--series", nargs="+", default=list(SERIES), choices=list(SERIES))
    ap.add_argument("--prepare", action="store_true", help="only simulate the missions")
    ap.add_argument("--child", nargs=5, metavar=("VARIANT", "DATA", "OUT", "RESAMPLING", "CHUNK"))
    args = ap.parse_args()
    if args.child:
        v, d, o, r, c = args.child
        return child(v, Path(d), Path(o), r, int(c))
    cases = [c for s in args.series for c in SERIES[s][0]]
    for c in cases:
        ensure_data(c)
    if args.prepare:
        return None
    raw: dict[str, dict[str, list[dict]]] = {}
    for r in range(args.runs):
        for s in args.series:
            names, vs = SERIES[s]
            for c in names if r % 2 == 0 else names[::-1]:
                for v in vs if r % 2 == 0 else vs[::-1]:
                    m = measure(c, v)
                    raw.setdefault(c, {}).setdefault(v, []).append(m)
                    print(f"run {r + 1} {c:9s} {v:9s} {m['peak_rss_mb']:7.0f} MB {m['wall_s']:6.1f} s "
                          f"{m['per_process_peak_mb']}", file=sys.stderr)  # fmt: skip
    med = {
        c: {v: statistics.median(m["peak_rss_mb"] for m in ms) for v, ms in d.items()} for c, d in raw.items()
    }
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="minutes"),
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },  # fmt: skip
        "runs": args.runs,
        "median_peak_rss_mb": med,
        "raw": raw,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / f"memory-{'-'.join(args.series)}.json").write_text(json.dumps(report, indent=1, default=str))
    for s in args.series:
        names, vs = SERIES[s]
        print(f"\n{s}: | variant | " + " | ".join(f"{n} MB" for n in names) + " | largest/smallest |")
        for v in vs:
            vals = [med[n][v] for n in names]
            print(f"| {v} | " + " | ".join(f"{x:.0f}" for x in vals) + f" | {max(vals) / min(vals):.2f} |")
    return None


if __name__ == "__main__":
    main()
