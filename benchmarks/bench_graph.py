"""Graph construction at scale (issue 15): ``load_cube`` over 1k, 10k and 100k items, graph ready, no pixel read.

    .venv/bin/python -m benchmarks.bench_graph [--items 1000 10000 100000] [--runs 3] [--modes table pystac]

1. Builds (once, cached in ``benchmarks/_data/graph-index``) the 1,000,000-item index of
   ``benchmarks.bench_search`` (its ingest of a simulated mission as the template, then ``grow_index``): items
   carry ``proj:code``/``proj:transform``/``proj:shape`` and ``raster:bands``, so no file header is read.
2. For each size N, selects the N earliest items whose bbox intersects a lon/lat box round (10 E, 50 N) (1, 3
   and 10 degrees a side for 1k, 10k and 100k: about five years of scenes), written as a small parquet file.
3. Runs each size and mode in a fresh process: the rows as ``load_cube`` takes them (untimed) -- ``table``: the
   stac-geoparquet Arrow table (hrefs made absolute, as ``orbitcube.pipeline.scenes.index_rows`` does for a
   catalog), ``pystac``: one pystac Item per row -- then times ``load_cube(rows, ["red", "nir"], geobox=...,
   mask SCL)`` on an EPSG:3035 grid over the box (``--resolution`` m, 512 px chunks) up to the graph (the dask
   arrays exist; nothing is computed), and samples the process RSS every 10 ms: before the call (the rows in
   memory) and the peak during it.

Writes ``benchmarks/_out/graph.json`` and prints a Markdown table for ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE / "_data" / "graph-index"
#: box side (degrees) round (10 E, 50 N) per item count
SIDE = {1000: 1.0, 10000: 3.0, 100000: 10.0}
CENTRE = (10.0, 50.0)
BANDS = ["red", "nir"]


def ensure_index() -> Path:
    """The 1M-item index of bench_search, built once under ``ROOT/big``."""
    from benchmarks.bench_search import grow_index, ingest_rate

    big = ROOT / "big"
    if not (big / "items.parquet").exists():
        ROOT.mkdir(parents=True, exist_ok=True)
        ing = ingest_rate(ROOT)
        grow_index(Path(ing["catalog"]), 1_000_000, big)
    return big


def _box(n: int) -> tuple[float, float, float, float]:
    s = SIDE.get(n, 10.0 * np.sqrt(n / 100000))
    return (CENTRE[0] - s / 2, CENTRE[1] - s / 2, CENTRE[0] + s / 2, CENTRE[1] + s / 2)


def select(n: int) -> Path:
    """Parquet file of the ``n`` earliest index rows whose bbox intersects the box for ``n`` (cached)."""
    import pyarrow.parquet as pq

    out = ROOT / f"select-{n}.parquet"
    if out.exists():
        return out
    big = ensure_index() / "items.parquet"
    t = pq.read_table(big, columns=["bbox", "datetime"])
    bb = t.column("bbox").combine_chunks()
    x0, y0, x1, y1 = (bb.field(k).to_numpy() for k in ("xmin", "ymin", "xmax", "ymax"))
    w, s, e, nn = _box(n)
    hit = np.flatnonzero((x0 <= e) & (x1 >= w) & (y0 <= nn) & (y1 >= s))
    when = t.column("datetime").combine_chunks().cast("int64").to_numpy()[hit]
    rows = np.sort(hit[np.argsort(when, kind="stable")[:n]])
    if len(rows) < n:
        raise SystemExit(f"only {len(rows)} items intersect {_box(n)}; widen SIDE[{n}]")
    full = pq.read_table(big)
    pq.write_table(full.take(rows), out)
    return out


def _items(path: Path, keep_assets: bool) -> list:
    import pyarrow.parquet as pq
    import pystac
    import stac_geoparquet.arrow as sga

    base = ROOT / "big"
    out, absolute = [], {}
    for d in sga.stac_table_to_items(pq.read_table(path)):
        if not keep_assets:
            d["assets"] = {k: v for k, v in d["assets"].items() if k in ("B04", "B08", "SCL")}
        for a in d["assets"].values():
            h = a["href"]
            if h not in absolute:
                absolute[h] = h if Path(h).is_absolute() else str((base / h).resolve())
            a["href"] = absolute[h]
        out.append(pystac.Item.from_dict(d, preserve_dict=False))
    return out


def _table(path: Path, keep_assets: bool):
    """The rows as a stac-geoparquet table, hrefs absolute (as :func:`_items` makes them)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    assets = t.column("assets").combine_chunks()
    keys = [k for k in assets.type.names if keep_assets or k in ("B04", "B08", "SCL")]
    absolute: dict = {}
    fields = []
    for k in keys:
        a = pc.struct_field(assets, k)
        href = pc.struct_field(a, "href").to_pylist()
        for h in set(href) - set(absolute) - {None}:
            absolute[h] = h if Path(h).is_absolute() else str((ROOT / "big" / h).resolve())
        sub = [pa.array([None if h is None else absolute[h] for h in href], pa.string()) if f == "href"
               else pc.struct_field(a, f) for f in a.type.names]  # fmt: skip
        fields.append(pa.StructArray.from_arrays(sub, names=a.type.names, mask=pc.invert(a.is_valid())))
    new = pa.StructArray.from_arrays(fields, names=keys, mask=pc.invert(assets.is_valid()))
    out = t.set_column(t.schema.get_field_index("assets"), "assets", new).combine_chunks()
    del t, assets, fields, new
    pa.default_memory_pool().release_unused()  # the other assets' buffers go back to the system
    return out


def _geobox(n: int, resolution: float):
    from odc.geo.geobox import GeoBox
    from odc.geo.geom import box

    return GeoBox.from_geopolygon(box(*_box(n), crs=4326).to_crs(3035), resolution=resolution)


def child(n: int, resolution: float, keep_assets: bool, profile: str | None, mode: str = "table") -> dict:
    """One size in this process: untimed decoding of the rows (``mode``: ``"table"`` or ``"pystac"``), then the
    timed ``load_cube`` with RSS sampling."""
    import dask.array  # noqa: F401  (imports are not graph construction: a session has them loaded)
    import psutil

    from orbitcube.pipeline.load import load_cube

    items = _table(select(n), keep_assets) if mode == "table" else _items(select(n), keep_assets)
    gbox = _geobox(n, resolution)
    proc = psutil.Process()
    import gc

    gc.collect()
    if mode == "table":
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    t0, c0 = time.perf_counter(), time.process_time()
    cube = load_cube(items, BANDS, geobox=gbox, chunks={"y": 512, "x": 512})
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    if prof is not None:
        prof.disable()
        prof.dump_stats(profile)
    done.set()
    th.join()
    peak[0] = max(peak[0], proc.memory_info().rss)
    arr = cube[BANDS[0]].data
    layer = arr.__dask_graph__().layers[
        [k for k in arr.__dask_graph__().layers if k.startswith("load-tile")][0]
    ]
    n_tasks, n_pairs = (
        len(layer) - 1,
        len(layer.mapping.scene_idx),
    )  # less the scene table; (tile, scene) pairs
    return {"mode": mode, "items": n, "items_used": len(cube.attrs["items"]), "seconds": secs, "cpu_s": cpu, "rss_before_mb": before / 2**20,
            "rss_peak_mb": peak[0] / 2**20, "grid": list(gbox.shape.yx), "resolution_m": resolution,
            "time_steps": cube.sizes["time"], "read_tasks": n_tasks, "tile_scene_pairs": n_pairs, "assets_kept": "all" if keep_assets else "B04 B08 SCL"}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--resolution", type=float, default=20.0, help="output pixel size, metres (EPSG:3035)")
    ap.add_argument(
        "--all-assets", action="store_true", help="keep the items' 11 assets (default: B04 B08 SCL)"
    )
    ap.add_argument("--profile", metavar="FILE", help="cProfile the build (with --child)")
    ap.add_argument("--modes", nargs="+", default=["table", "pystac"], choices=["table", "pystac"],
                    help="what load_cube is given: the Arrow table of the rows, or one pystac Item per row")  # fmt: skip
    ap.add_argument("--pystac-runs", type=int, help="runs of the pystac mode (default: --runs)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.resolution, args.all_assets, args.profile, args.modes[0])))
        return
    for n in args.items:
        select(n)
    rows = {}
    for n, mode in ((n, m) for n in args.items for m in args.modes):
        runs = []
        for _ in range(args.pystac_runs or args.runs if mode == "pystac" else args.runs):
            cmd = [sys.executable, "-m", "benchmarks.bench_graph", "--child", str(n), "--resolution",
                   str(args.resolution), "--modes", mode, *(["--all-assets"] if args.all_assets else [])]  # fmt: skip
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
            if res.returncode:
                raise SystemExit(res.stderr[-3000:])
            runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(
                f"{n:>7} items ({mode}): {runs[-1]['seconds']:.2f} s, peak {runs[-1]['rss_peak_mb']:.0f} MB",
                file=sys.stderr,
            )
        rows[f"{n} {mode}"] = {**runs[0], "seconds": statistics.median(r["seconds"] for r in runs),
                   "rss_peak_mb": statistics.median(r["rss_peak_mb"] for r in runs),
                   "rss_before_mb": statistics.median(r["rss_before_mb"] for r in runs),
                   "runs_s": [r["seconds"] for r in runs]}  # fmt: skip
    report = {"machine": {"platform": platform.platform(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d"), "load_average": os.getloadavg(), "rows": rows}  # fmt: skip
    (HERE / "_out").mkdir(exist_ok=True)
    (HERE / "_out" / "graph.json").write_text(json.dumps(report, indent=1))
    print(f"load average {os.getloadavg()}")
    print(
        "| items | input | grid px (tiles) | time steps | build s (median) | runs s | RSS before MB | peak RSS MB |"
    )
    print("|---:|---|---|---:|---:|---|---:|---:|")
    for r in rows.values():
        ty, tx = (-(-v // 512) for v in r["grid"])
        print(f"| {r['items']:,} | {r['mode']} | {r['grid'][0]} x {r['grid'][1]} ({ty * tx:,}) | {r['time_steps']} | {r['seconds']:.2f} | "
              f"{', '.join(f'{s:.2f}' for s in r['runs_s'])} | {r['rss_before_mb']:.0f} | {r['rss_peak_mb']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
