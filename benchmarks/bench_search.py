"""Catalog benchmark: search latency on a 1,000,000-item stac-geoparquet index, and the ingest rate.

    .venv/bin/python -m benchmarks.bench_search [--items 1000000] [--repeats 15]

1. Simulates a small mission and ingests its scenes (COGs, one file per band) into a fresh catalog: the ingest
   rate in items (scenes) and files per second, reading every file's header.
2. Takes that catalog's index as a template and grows it, vectorised (no pystac objects), to ``--items`` rows:
   footprints of ~1 degree scattered over Europe, datetimes over five years, cloud cover 0-100 %.
3. Opens the catalog (reads ``items.parquet``) and times ``catalog.search`` with bbox + datetime + cloud-cover
   filters (a different 1-degree box and month each repeat, results materialised as pystac Items), reporting
   the first search after open and the median of the repeats (target: under 200 ms).

Writes ``benchmarks/_out/search.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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
    from catalog.ingest import ingest
    from catalog.simulator import MissionConfig, simulate_mission

    cfg = MissionConfig(seed=3, tile_size=128, start=dt.date(2023, 5, 1), end=dt.date(2023, 8, 31))
    m = simulate_mission(cfg, work / "mission")
    files = sorted(p for p in m.catalog_path.parent.rglob("*.tif"))
    t0 = time.perf_counter()
    res = ingest(files, work / "ingested")
    secs = time.perf_counter() - t0
    return {"items": len(res.items), "files": len(files), "seconds": secs, "items_per_s": len(res.items) / secs,
            "files_per_s": len(files) / secs, "catalog": str(work / "ingested")}  # fmt: skip


def grow_index(template: Path, n: int, out: Path, seed: int = 0) -> None:
    """Write ``out/items.parquet`` with ``n`` rows derived from the template index (and its catalog.json)."""
    import shapely

    t = pq.read_table(template / "items.parquet")
    rng = np.random.default_rng(seed)
    reps = -(-n // t.num_rows)
    big = pa.concat_tables([t] * reps).slice(0, n)
    lon0 = rng.uniform(-10, 30, n)
    lat0 = rng.uniform(35, 60, n)
    size = rng.uniform(0.8, 1.2, n)
    geoms = shapely.box(lon0, lat0, lon0 + size, lat0 + size)
    start = np.datetime64("2019-01-01T00:00:00", "us").astype(np.int64)
    span = int(5 * 365.25 * 86400e6)
    when = pa.array(np.sort(rng.integers(start, start + span, n)), pa.timestamp("us", tz="UTC"))
    bbox_type = big.schema.field("bbox").type
    bbox = pa.StructArray.from_arrays(
        [pa.array(v, bbox_type.field(i).type) for i, v in enumerate((lon0, lat0, lon0 + size, lat0 + size))],
        fields=list(bbox_type),
    )
    cols = {
        "id": pa.array([f"synthetic-{i:07d}" for i in range(n)]),
        "geometry": pa.array(shapely.to_wkb(geoms), big.schema.field("geometry").type),
        "bbox": bbox,
        "datetime": when.cast(big.schema.field("datetime").type),
        "eo:cloud_cover": pa.array(rng.uniform(0, 100, n), pa.float64()),
    }
    for name, arr in cols.items():
        if name in big.schema.names:
            big = big.set_column(big.schema.get_field_index(name), big.schema.field(name), arr)
        else:  # ingested files know no cloud cover
            big = big.append_column(name, arr)
    out.mkdir(parents=True, exist_ok=True)
    (out / "catalog.json").write_text((template / "catalog.json").read_text())
    pq.write_table(big, out / "items.parquet", row_group_size=128 * 1024)


def time_search(root: Path, repeats: int, seed: int = 1) -> dict:
    from catalog.search import search
    from catalog.store import open_catalog

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    cat = open_catalog(root)
    open_s = time.perf_counter() - t0
    times, counts = [], []
    for _ in range(repeats + 1):
        lon, lat = rng.uniform(-8, 27), rng.uniform(37, 57)
        year, month = int(rng.integers(2019, 2024)), int(rng.integers(1, 13))
        t0 = time.perf_counter()
        found = search(
            cat, bbox=(lon, lat, lon + 1, lat + 1), datetime=f"{year}-{month:02d}", max_cloud_cover=20
        )
        times.append(time.perf_counter() - t0)
        counts.append(len(found))
    return {"items": len(cat), "open_s": open_s, "first_search_s": times[0], "median_search_s": statistics.median(times[1:]),
            "searches_s": times[1:], "matches": counts[1:]}  # fmt: skip


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
    report = {
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "ingest": {k: v for k, v in ing.items() if k != "catalog"},
        "index_build_s": build_s,
        "search": res,
    }
    (HERE / "_out").mkdir(exist_ok=True)
    (HERE / "_out" / "search.json").write_text(json.dumps(report, indent=1))
    print(f"ingest: {ing['items']} items ({ing['files']} files) in {ing['seconds']:.2f} s = "
          f"{ing['items_per_s']:.1f} items/s, {ing['files_per_s']:.0f} files/s")  # fmt: skip
    print(f"index of {res['items']:,} items: open {res['open_s'] * 1e3:.0f} ms, first search "
          f"{res['first_search_s'] * 1e3:.0f} ms, median search {res['median_search_s'] * 1e3:.1f} ms "
          f"over {args.repeats} (matches per search: median {statistics.median(res['matches'])})")  # fmt: skip


if __name__ == "__main__":
    main()
