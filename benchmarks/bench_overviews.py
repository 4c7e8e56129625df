"""Benchmark: a coarse load into another CRS (COG overviews), orbitcube against odc-stac (issue 13 defect 11).

    .venv/bin/python -m benchmarks.bench_overviews [--tiles 3] [--size 2048] [--runs 5]

Writes a strip of ``--tiles`` Sentinel-2-like COGs (uint16, nodata 0, 10 m, UTM 32N, 256 px blocks, overviews
2/4/8/16 by average) and loads one band of all of them onto EPSG:4326 at 0.002 degrees (~160 x 220 m) with
average resampling, each run in a fresh process (cold handle and GDAL caches), alternating the order:

- ``orbitcube``: ``load_cube(..., geobox=, resampling="average")`` (reads the overview GDAL's warper would pick);
- ``orbitcube-full``: the same with overview selection switched off (the behaviour before the fix);
- ``odc``: ``odc.stac.load(..., geobox=, resampling="average")``.

Reports the median wall time of the load (graph and compute, Dask threads scheduler; imports not timed) and checks that the
products agree (99th percentile |difference| in DN). Writes ``benchmarks/_out/overviews.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VARIANTS = ("orbitcube", "orbitcube-full", "odc")


def make_scenes(work: Path, tiles: int, size: int) -> Path:
    """``tiles`` COGs side by side (10 m, UTM 32N) and their STAC items (``items.json``)."""
    import pystac
    import rasterio
    from affine import Affine
    from odc.geo.geom import box
    from rasterio.enums import Resampling

    rng = np.random.default_rng(0)
    items = []
    for k in range(tiles):
        tr = Affine(10, 0, 600_000 + k * size * 10, 0, -10, 5_050_000)
        rows, cols = np.mgrid[0:size, 0:size]
        data = (3000 + 1500 * np.sin((cols + k * size) / 400) * np.cos(rows / 300)).astype("u2")
        data += rng.integers(0, 200, data.shape, dtype="u2")
        path = work / f"T{k}_B04.tif"
        profile = dict(
            driver="GTiff", width=size, height=size, count=1, dtype="uint16", crs="EPSG:32632", nodata=0,
            transform=tr, tiled=True, blockxsize=256, blockysize=256, compress="deflate",
        )  # fmt: skip
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data, 1)
            dst.build_overviews([2, 4, 8, 16], Resampling.average)
        fp = box(tr.c, tr.f - 10 * size, tr.c + 10 * size, tr.f, crs=32632).to_crs(4326)
        it = pystac.Item(
            f"T{k}", fp.json, list(fp.boundingbox), pystac.utils.str_to_datetime("2023-06-01T10:00Z"), {}
        )
        it.add_asset(
            "B04",
            pystac.Asset(
                str(path),
                extra_fields={
                    "proj:code": "EPSG:32632",
                    "proj:shape": [size, size],
                    "proj:transform": list(tr)[:6],
                    "raster:bands": [{"nodata": 0, "data_type": "uint16"}],
                    "eo:bands": [{"name": "B04", "common_name": "red"}],
                },  # fmt: skip
            ),
        )
        items.append(it.to_dict())
    (work / "items.json").write_text(json.dumps(items))
    return work / "items.json"


def _grid(items):
    from odc.geo.geobox import GeoBox
    from odc.geo.geom import Geometry

    union = Geometry(items[0].geometry, crs=4326)
    for it in items[1:]:
        union = union | Geometry(it.geometry, crs=4326)
    return GeoBox.from_geopolygon(union, resolution=0.002, crs="EPSG:4326")


def run_one(variant: str, items_json: Path, out: Path) -> float:
    """Time one load in this process; save the product to ``out`` (.npy)."""
    import dask
    import pystac

    items = [pystac.Item.from_dict(d) for d in json.loads(items_json.read_text())]
    gbox = _grid(items)
    dask.config.set(scheduler="threads")
    import dask.array as da
    import odc.stac  # noqa: F401  (imports and Dask's first-compute set-up are not timed)

    import orbitcube.pipeline.load  # noqa: F401

    da.zeros(4, chunks=2).sum().compute()
    if variant == "odc":
        t0 = time.perf_counter()
        arr = odc.stac.load(items, bands=["B04"], geobox=gbox, resampling="average", chunks={}).B04.values
        secs = time.perf_counter() - t0
        arr = np.where(arr == 0, np.nan, arr.astype("f4"))
    else:
        import orbitcube.pipeline.reader
        from orbitcube.pipeline.load import load_cube

        if variant == "orbitcube-full":
            orbitcube.pipeline.reader.overview_for = lambda *a, **k: None
        t0 = time.perf_counter()
        arr = load_cube(items, ["red"], geobox=gbox, mask=None, resampling="average")["red"].values
        secs = time.perf_counter() - t0
    np.save(out, arr.squeeze())
    return secs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiles", type=int, default=3)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--one", nargs=3, metavar=("VARIANT", "ITEMS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(run_one(args.one[0], Path(args.one[1]), Path(args.one[2])))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-ovr-"))
    items_json = make_scenes(work, args.tiles, args.size)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    for r in range(args.runs):
        order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
        for v in order:
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.bench_overviews",
                "--one",
                v,
                str(items_json),
                str(work / v),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, cwd=HERE.parent)
            times[v].append(float(res.stdout.strip().splitlines()[-1]))
    prods = {v: np.load(work / f"{v}.npy") for v in VARIANTS}
    both = np.isfinite(prods["orbitcube"]) & np.isfinite(prods["odc"])
    diff = np.abs(prods["orbitcube"] - prods["odc"])[both]
    full = np.abs(prods["orbitcube"] - prods["orbitcube-full"])[both]
    report = {
        "tiles": args.tiles, "size_px": args.size, "runs": args.runs, "output_shape": list(prods["odc"].shape),
        "median_s": {v: statistics.median(t) for v, t in times.items()}, "all_s": times,
        "p99_absdiff_dn_vs_odc": float(np.percentile(diff, 99)) if diff.size else None,
        "p99_absdiff_dn_vs_full_resolution": float(np.nanpercentile(full, 99)) if full.size else None,
        "nan_pattern_agreement": float(np.mean(np.isfinite(prods["orbitcube"]) == np.isfinite(prods["odc"]))),
        "machine": f"{platform.python_version()} on {os.cpu_count()} cores",
    }  # fmt: skip
    (HERE / "_out").mkdir(exist_ok=True)
    (HERE / "_out" / "overviews.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
