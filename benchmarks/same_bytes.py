"""Same outputs, byte for byte, across a refactoring: run two recipes (native nearest in UTM 32N; bilinear onto
UTM 33N with NBR, monthly mean and trend) with one checkout's code and record the sha256 of every file of each
store in OUT/hashes.json. Run it with the old and the new checkout and compare the two JSON files:

    git worktree add /tmp/old <old commit>
    PYTHONPATH=/tmp/old python benchmarks/same_bytes.py /tmp/old /tmp/sb/old
    PYTHONPATH=$PWD python benchmarks/same_bytes.py $PWD /tmp/sb/new
    python -c "import json; a, b = (json.load(open(f'/tmp/sb/{k}/hashes.json')) for k in ('old', 'new')); print(a == b)"

The simulated mission is written once to /tmp/sb/mission and shared (a checkout before the orbitcube.* import
names is recognised by its missing orbitcube/ folder).
"""

import datetime as dt
import hashlib
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1])
out = pathlib.Path(sys.argv[2])
mission_dir = pathlib.Path("/tmp/sb/mission")
if (root / "orbitcube").is_dir():
    from orbitcube.catalog.simulator import MissionConfig, simulate_mission
    from orbitcube.pipeline.run import run_recipe
else:
    from catalog.simulator import MissionConfig, simulate_mission
    from pipeline.run import run_recipe


def main():
    cfg = MissionConfig(seed=1, tile_size=128, start=dt.date(2023, 5, 1), end=dt.date(2023, 6, 30))
    if not (mission_dir / "catalog" / "catalog.json").exists():
        simulate_mission(cfg, mission_dir)
    cat = mission_dir / "catalog" / "catalog.json"
    recipes = {
        "native": {
            "grid": {"crs": "EPSG:32632", "resolution": 20, "tile_shape": [32, 32]},
            "analytics": [
                {"op": "index", "index": "NDVI"},
                {"op": "composite", "input": "ndvi", "stat": "median", "freq": "1MS"},
            ],
        },
        "bilinear33": {
            "grid": {"crs": "EPSG:32633", "resolution": 30, "tile_shape": [24, 40]},
            "load": {"bands": ["red", "nir", "swir22"], "resampling": "bilinear"},
            "analytics": [
                {"op": "index", "index": "NBR"},
                {"op": "composite", "input": "nbr", "stat": "mean", "freq": "1MS"},
                {"op": "trend", "input": "nbr"},
            ],
        },
    }
    res = {}
    for name, extra in recipes.items():
        doc = {
            "name": "same-bytes",
            "catalog": {"source": str(cat)},
            "search": {
                "aoi": list(cfg.aoi_bbox),
                "datetime": "2023-05-01/2023-06-30",
                "collections": ["sentinel-2-l2a-sim"],
            },
            "load": {"bands": ["red", "nir"]},
            "output": {"path": str(out / f"{name}.zarr")},
            "cluster": {"n_workers": 2, "threads_per_worker": 1, "max_tiles_in_flight": 3},
        }
        doc.update(extra)
        run_recipe(doc, progress=False, resume=False)
        store = out / f"{name}.zarr"
        for f in sorted(store.rglob("*")):
            if f.is_file():
                res[str(f.relative_to(out))] = hashlib.sha256(f.read_bytes()).hexdigest()
    json.dump(res, open(out / "hashes.json", "w"), indent=1, sort_keys=True)
    print(len(res), "files hashed")


if __name__ == "__main__":
    main()
