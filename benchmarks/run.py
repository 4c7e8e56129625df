"""Benchmark runner (``make bench``): orbitcube against odc-stac, stackstac and the I/O floors, in one run.

1. Generates (or reuses) a simulated Sentinel-2-like mission over an AOI straddling two UTM zones
   (``--size quick``: 512 px tiles, 3 months; ``--size full``: 2048 px tiles, a year).
2. Runs each variant (see ``benchmarks.variants``) as its own process, alternating, ``--runs`` times, measuring
   wall time, CPU time and the peak RSS of the whole process tree (psutil, polled every 50 ms).
3. Checks that orbitcube, odc-stac and stackstac agree on the output before reporting any time.
4. Writes ``benchmarks/_out/bench-SIZE.json`` and prints a Markdown table for ``benchmarks/README.md``.

    .venv/bin/python -m benchmarks.run --size quick --runs 3 [--variants odc stackstac decode encode]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
SIZES = {
    "quick": {"tile_size": 512, "start": dt.date(2023, 4, 1), "end": dt.date(2023, 6, 30)},
    "full": {"tile_size": 2048, "start": dt.date(2023, 1, 1), "end": dt.date(2023, 12, 31)},
}
ALL_VARIANTS = ("orbitcube", "odc", "stackstac", "decode", "encode")


#: AOI growth: the same month over 1x, 4x and 16x the area (tile edge x1, x2, x4)
GROWTH = {f"aoi{f * f}x": {"tile_size": 256 * f, "start": dt.date(2023, 6, 1), "end": dt.date(2023, 6, 30)}
          for f in (1, 2, 4)}  # fmt: skip


def ensure_data(size: str, root: Path) -> Path:
    """Simulate the benchmark mission once per size; later runs reuse it."""
    from orbitcube.catalog.simulator import MissionConfig, simulate_mission

    data = root / size
    if not (data / "mission" / "catalog" / "catalog.json").exists():
        shutil.rmtree(data, ignore_errors=True)
        cfg = MissionConfig(seed=11, workers=2, write_truth_reflectance=False, **{**SIZES, **GROWTH}[size])
        simulate_mission(cfg, data / "mission")
    return data


def measure(variant: str, data: Path, out: Path, case: str = "native") -> dict:
    """Run one variant in a fresh process; wall, CPU (whole tree) and peak RSS (whole tree)."""
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]  # the machine may be shared: recorded with every run
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.variants", variant, str(data), str(out), case],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
    )
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [ps, *ps.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{stderr[-3000:]}")
    inner = json.loads(stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        **inner,
        "process_wall_s": wall,
        "tree_cpu_s": cpu,
        "peak_rss_mb": peak / 2**20,
        "load_1min": load,
    }


def agreement(out_root: Path, variants: list[str]) -> dict:
    """Compare the monthly NDVI medians of the product variants pairwise (NaN pattern and values)."""
    import xarray as xr

    arrays = {
        v: xr.open_zarr(out_root / v, consolidated=False)["ndvi_median"].load()
        for v in variants
        if v in ("orbitcube", "odc", "stackstac")
    }
    names = sorted(arrays)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            x, y = arrays[a].values, arrays[b].values
            if x.shape != y.shape:
                raise AssertionError(f"{a} and {b} disagree on shape: {x.shape} vs {y.shape}")
            both = np.isfinite(x) & np.isfinite(y)
            nan_mismatch = float(np.mean(np.isfinite(x) != np.isfinite(y)))
            diff = np.abs(x - y)[both]
            res = {
                "nan_mismatch_fraction": nan_mismatch,
                "median_abs_diff": float(np.median(diff)) if diff.size else None,
                "p99_abs_diff": float(np.quantile(diff, 0.99)) if diff.size else None,
            }
            ok = nan_mismatch < 0.02 and diff.size and res["p99_abs_diff"] < 0.05
            if not ok:
                raise AssertionError(f"{a} and {b} disagree beyond tolerance: {res}")
            out[f"{a}~{b}"] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="quick")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--variants", nargs="+", default=list(ALL_VARIANTS), choices=ALL_VARIANTS)
    ap.add_argument("--aoi-growth", action="store_true", help="peak memory as the AOI grows 1x, 4x, 16x")
    ap.add_argument("--case", choices=("native", "bilinear", "upsample20"), default="native",
                    help="I/O-floor case (benchmarks.variants.CASES): only orbitcube, decode, encode outside native")  # fmt: skip
    args = ap.parse_args()
    if args.case != "native":
        args.variants = [v for v in args.variants if v in ("orbitcube", "decode", "encode")]
    if args.aoi_growth:
        return aoi_growth(args.runs, [v for v in args.variants if v in ("orbitcube", "odc", "stackstac")])
    data = ensure_data(args.size, HERE / "_data")
    tag = args.size if args.case == "native" else f"{args.size}-{args.case}"
    out_root = HERE / "_out" / f"run-{tag}"
    results: dict[str, list[dict]] = {v: [] for v in args.variants}
    for r in range(args.runs):  # alternate variants within each round
        order = args.variants if r % 2 == 0 else list(reversed(args.variants))
        for v in order:
            results[v].append(measure(v, data, out_root / v, args.case))
            m = results[v][-1]
            print(
                f"round {r + 1}: {v:10s} {m['process_wall_s']:7.2f} s, CPU {m['tree_cpu_s']:6.2f} s, "
                f"load {m['load_1min']:.1f}",
                file=sys.stderr,
            )
        if r == 0:
            agree = agreement(out_root, args.variants) if args.case == "native" else {}
    med = {
        v: {
            "wall_s": statistics.median(x["process_wall_s"] for x in rs),
            "cpu_s": statistics.median(x["tree_cpu_s"] for x in rs),
            "peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in rs),
            "input_mpix_per_s": rs[0]["input_pixels"]
            / 1e6
            / statistics.median(x["process_wall_s"] for x in rs),
        }
        for v, rs in results.items()
    }
    ratios = {}
    if "orbitcube" in med:
        a = med["orbitcube"]["wall_s"]
        if "odc" in med:
            ratios["a/b (odc-stac)"] = a / med["odc"]["wall_s"]
        if "stackstac" in med:
            ratios["a/c (stackstac)"] = a / med["stackstac"]["wall_s"]
        if "decode" in med and "encode" in med:
            ratios["a/(d+e) (I/O floor)"] = a / (med["decode"]["wall_s"] + med["encode"]["wall_s"])
            ratios["a/(d+e) by CPU"] = med["orbitcube"]["cpu_s"] / (
                med["decode"]["cpu_s"] + med["encode"]["cpu_s"]
            )
            ratios.update(_per_round(results))
    report = {
        "size": args.size,
        "case": args.case,
        "runs": args.runs,
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "medians": med,
        "ratios": ratios,
        "agreement": agree,
        "raw": results,
    }
    (HERE / "_out").mkdir(exist_ok=True)
    (HERE / "_out" / f"bench-{tag}.json").write_text(json.dumps(report, indent=1))
    print("| variant | wall s | CPU s | peak RSS MB | input Mpx/s |")
    print("|---|---:|---:|---:|---:|")
    for v, m in med.items():
        print(
            f"| {v} | {m['wall_s']:.2f} | {m['cpu_s']:.2f} | {m['peak_rss_mb']:.0f} | {m['input_mpix_per_s']:.1f} |"
        )
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")


def _per_round(results: dict[str, list[dict]]) -> dict[str, float]:
    """a/(d+e) within each round (the three variants ran minutes apart, so a shared machine's load changes less
    between them than between rounds), median over the rounds, by wall and by CPU time of the process tree."""
    out = {}
    for label, key in (("wall", "process_wall_s"), ("CPU", "tree_cpu_s")):
        per = [
            a[key] / (d[key] + e[key])
            for a, d, e in zip(results["orbitcube"], results["decode"], results["encode"], strict=True)
        ]
        out[f"a/(d+e) per round, median ({label})"] = statistics.median(per)
    return out


def aoi_growth(runs: int, variants: list[str]) -> None:
    """Peak RSS of each product variant on 1x, 4x and 16x the AOI (same month, same chunks); growth = 16x / 1x."""
    rows: dict[str, dict[str, float]] = {v: {} for v in variants}
    for size in GROWTH:
        data = ensure_data(size, HERE / "_data")
        for r in range(runs):
            for v in variants if r % 2 == 0 else list(reversed(variants)):
                m = measure(v, data, HERE / "_out" / f"growth-{size}" / v)
                rows[v].setdefault(size, []).append(m["peak_rss_mb"])  # type: ignore[attr-defined]
                print(
                    f"{size} {v:10s} {m['peak_rss_mb']:7.0f} MB {m['process_wall_s']:6.1f} s", file=sys.stderr
                )
    med = {v: {k: statistics.median(x) for k, x in d.items()} for v, d in rows.items()}
    report = {
        "runs": runs,
        "peak_rss_mb": med,
        "growth_16x_over_1x": {v: d["aoi16x"] / d["aoi1x"] for v, d in med.items()},
    }
    (HERE / "_out").mkdir(exist_ok=True)
    (HERE / "_out" / "aoi-growth.json").write_text(json.dumps(report, indent=1))
    print("| variant | 1x MB | 4x MB | 16x MB | 16x/1x |")
    print("|---|---:|---:|---:|---:|")
    for v, d in med.items():
        print(
            f"| {v} | {d['aoi1x']:.0f} | {d['aoi4x']:.0f} | {d['aoi16x']:.0f} | {d['aoi16x'] / d['aoi1x']:.2f} |"
        )


if __name__ == "__main__":
    main()
