"""Simulator throughput: a 24-date, 2-tile, 2048 x 2048 Sentinel-2-like mission (issue target: < 2 min on 2 cores).

Baseline measured in the same run: writing the same number of same-size COGs of random-free constant data with the
same creation options (the encode floor), so the ratio says how much the simulation itself adds.

    .venv/bin/python -m benchmarks.bench_simulator [--tile-size 2048] [--dates 24] [--runs 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from orbitcube.catalog.simulator import MissionConfig, simulate_mission
from orbitcube.catalog.simulator.scenes import write_cog

OUT = Path(__file__).resolve().parent / "_out"


def _encode_floor(tile: int, scenes: int, tmp: Path) -> float:
    from odc.geo.geobox import GeoBox

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for res, n_bands, dtype in ((10, 4, np.uint16), (20, 7, np.uint16)):
        size = tile * 10 // res
        gb = GeoBox.from_bbox(
            (700000, 5000000, 700000 + tile * 10, 5000000 + tile * 10), "EPSG:32632", resolution=res
        )
        data = (rng.normal(2000, 300, (size, size))).astype(dtype)
        for _ in range(scenes * n_bands // 8):  # 1/8 of the files, scaled below
            write_cog(tmp / "floor.tif", data, gb, nodata=0, resampling="average")
    return (time.perf_counter() - t0) * 8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile-size", type=int, default=2048)
    ap.add_argument("--dates", type=int, default=24)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    # 24 Sentinel-2 passes (2A + 2B, 5 days apart) -> 120 days
    end = dt.date(2023, 3, 1) + dt.timedelta(days=5 * args.dates - 1)
    cfg = MissionConfig(
        seed=1, tile_size=args.tile_size, start=dt.date(2023, 3, 1), end=end, workers=args.workers,
        write_truth_reflectance=False,
    )  # fmt: skip
    times, floors = [], []
    for _ in range(args.runs):
        tmp = Path(tempfile.mkdtemp(prefix="oc-bench-sim-"))
        try:
            t0 = time.perf_counter()
            m = simulate_mission(cfg, tmp / "mission")
            times.append(time.perf_counter() - t0)
            n_scenes = len(m.items)
            floors.append(_encode_floor(args.tile_size, n_scenes, tmp) / args.workers)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    res = {
        "tile_size": args.tile_size,
        "dates": len({i.datetime.date() for i in m.items}),
        "scenes": n_scenes,
        "workers": args.workers,
        "median_s": statistics.median(times),
        "runs_s": times,
        "encode_floor_s": statistics.median(floors),
        "ratio_to_encode_floor": statistics.median(times) / statistics.median(floors),
        "target_s": 120,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "simulator.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
