"""Catalog benchmark: search latency on a 1,000,000-item stac-geoparquet index, and the ingest rate.

    .venv/bin/python -m benchmarks.bench_search [--items 1000000] [--repeats 15]

1. Simulates a small mission and ingests its scenes (COGs, one file per band) into a fresh catalog: the ingest
   rate in items (scenes) and files per second, reading every file's header.
2. Takes that catalog's index as a template and grows it, vectorised (no pystac objects), to ``--items`` rows:
   footprints of ~1 degree scattered over Europe, datetimes over five years, cloud cover 0-100 %.
3. Opens the catalog (reads ``items.parquet``) and times ``orbitcube.catalog.search`` with bbox + datetime + cloud-cover
   filters (a different 1-degree box and month each repeat, results materialised as pystac Items), reporting
   the first search after open and the median of the repeats (target: under 200 ms).

Writes ``benchmarks/_out/search.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent


def ingest_rate(work: Path) -> dict:
    from orbitcube.catalog.items import ingest
    from orbitcube.catalog.simulator import MissionConfig, simulate_mission

    cfg = MissionConfig(seed=3, tile_size=128, start=dt.date(2023, 5, 1), end=dt.date(2023, 8, 31))
    m = simulate_mission(cfg, work / "mission")
    files = sorted(p for p in m.catalog_path.parent.rglob("*.tif"))
    t0 = time.perf_counter()
    res = ingest(files, work / "ingested")
    secs = time.perf_counter() - t0
    return {"items": len(res.items), "files": len(files), "seconds": secs, "items_per_s": len(res.items) / secs,
            "files_per_s": len(files) / secs, "catalog": str(work / "ingested")}  # fmt: skip


def grow_index(template: Path, n: int, out: Path, seed: int = 0) -> None:
    """Write ``out/items.parquet`` with ``n`` rows derived from the template index (and its catalog.json):
    the template's rows repeated (assets, links, properties), with new ids, footprints, datetimes and cloud
    cover; in orbitcube.catalog.store's row order (:func:`orbitcube.catalog.index.sort_order`) and layout (:func:`write_index`)."""
    import shapely

    from orbitcube.catalog.index import sort_order, write_index
    from orbitcube.catalog.store import INDEX_NAME

    t = pq.read_table(template / INDEX_NAME)
    rng = np.random.default_rng(seed)
    reps = -(-n // t.num_rows)
    big = pa.concat_tables([t] * reps).slice(0, n)
    lon0 = rng.uniform(-10, 30, n)
    lat0 = rng.uniform(35, 60, n)
    size = rng.uniform(0.8, 1.2, n)
    start = np.datetime64("2019-01-01T00:00:00", "us").astype(np.int64)
    span = int(5 * 365.25 * 86400e6)
    bbox_type = big.schema.field("bbox").type
    light = pa.table(
        {
            "id": pa.array([f"synthetic-{i:07d}" for i in range(n)]),
            "bbox": pa.StructArray.from_arrays(
                [
                    pa.array(v, bbox_type.field(i).type)
                    for i, v in enumerate((lon0, lat0, lon0 + size, lat0 + size))
                ],
                fields=list(bbox_type),
            ),
            "datetime": pa.array(rng.integers(start, start + span, n), pa.timestamp("us", tz="UTC")).cast(
                big.schema.field("datetime").type
            ),
            "eo:cloud_cover": pa.array(rng.uniform(0, 100, n), pa.float64()),
            "geometry": pa.array(
                shapely.to_wkb(shapely.box(lon0, lat0, lon0 + size, lat0 + size)),
                big.schema.field("geometry").type,
            ),
        }
    )
    light = light.take(sort_order(light))
    for name in light.column_names:
        arr = light.column(name)
        if name in big.schema.names:
            big = big.set_column(big.schema.get_field_index(name), big.schema.field(name), arr)
        else:  # ingested files know no cloud cover
            big = big.append_column(name, arr)
    out.mkdir(parents=True, exist_ok=True)
    (out / "catalog.json").write_text((template / "catalog.json").read_text())
    write_index(big, out / INDEX_NAME)


#: query shapes: (name, box size in degrees, period) -- a Sentinel-2 tile for a month, a small AOI for a year
SHAPES = (("tile-month", 1.0, "month"), ("aoi-year", 0.05, "year"))


def _queries(shape: tuple[str, float, str], k: int, rng: np.random.Generator) -> list[dict]:
    _name, size, period = shape
    out = []
    for _ in range(k):
        lon, lat = rng.uniform(-8, 27), rng.uniform(37, 57)
        year, month = int(rng.integers(2019, 2024)), int(rng.integers(1, 13))
        when = f"{year}-{month:02d}" if period == "month" else str(year)
        out.append({"bbox": (lon, lat, lon + size, lat + size), "datetime": when, "max_cloud_cover": 20})
    return out


def time_search(root: Path, repeats: int, seed: int = 1) -> dict:
    """Open the catalog, then time ``repeats`` searches of each query shape on it (after one untimed warm-up
    search, which reads the bbox/datetime/cloud columns), and a few searches by path (each opens the index)."""
    from orbitcube.catalog.query import search
    from orbitcube.catalog.store import open_catalog

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    cat = open_catalog(root)
    open_s = time.perf_counter() - t0
    out: dict = {"items": len(cat), "open_s": open_s}
    for i, shape in enumerate(SHAPES):
        times, counts = [], []
        for kw in _queries(shape, repeats + (1 if i == 0 else 0), rng):
            t0 = time.perf_counter()
            found = search(cat, **kw)
            times.append(time.perf_counter() - t0)
            counts.append(len(found))
        if i == 0:
            out["first_search_s"] = times.pop(0)
            counts.pop(0)
        out[shape[0]] = {"median_s": statistics.median(times), "searches_s": times, "matches": counts}
    by_path = []
    for kw in _queries(SHAPES[0], 5, rng):
        t0 = time.perf_counter()
        search(root, **kw)
        by_path.append(time.perf_counter() - t0)
    out["by_path"] = {"median_s": statistics.median(by_path), "searches_s": by_path}
    out["median_search_s"] = out[SHAPES[0][0]]["median_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ing = ingest_rate(work)
        t0 = time.perf_counter()
        grow_index(Path(ing["catalog"]), args.items, work / "big")
        build_s = time.perf_counter() - t0
        res = time_search(work / "big", args.repeats)
        index_mb = (work / "big" / "items.parquet").stat().st_size / 1e6
    report = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "pyarrow": pa.__version__,
        },
        "ingest": {k: v for k, v in ing.items() if k != "catalog"},
        "index_build_s": build_s,
        "index_mb": index_mb,
        "search": res,
    }
    (HERE / "_out").mkdir(exist_ok=True)
    (HERE / "_out" / "search.json").write_text(json.dumps(report, indent=1))
    print(f"ingest: {ing['items']} items ({ing['files']} files) in {ing['seconds']:.2f} s = "
          f"{ing['items_per_s']:.1f} items/s, {ing['files_per_s']:.0f} files/s")  # fmt: skip
    print(f"index of {res['items']:,} items ({report['index_mb']:.0f} MB): open {res['open_s'] * 1e3:.0f} ms, "
          f"first search {res['first_search_s'] * 1e3:.0f} ms")  # fmt: skip
    for name, *_ in SHAPES:
        r = res[name]
        print(f"  {name}: median {r['median_s'] * 1e3:.1f} ms over {len(r['searches_s'])} searches "
              f"(matches: median {statistics.median(r['matches'])})")  # fmt: skip
    print(f"  by path (open + search each time): median {res['by_path']['median_s'] * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
