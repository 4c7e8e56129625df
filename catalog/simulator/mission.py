"""Simulate a whole mission: plan -> scenes (COGs) -> STAC items -> a self-contained catalog, plus ground truth."""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pystac

from orbitcube.catalog.errors import SimulatorError
from orbitcube.catalog.simulator.landscape import BANDS, Landscape, StaticLayers
from orbitcube.catalog.simulator.plan import Acquisition, MissionConfig, acquisition_plan
from orbitcube.catalog.simulator.scenes import SceneRecord, render_scene, write_cog
from orbitcube.catalog.simulator.sensors import SENSORS
from orbitcube.catalog.simulator.stac import scene_item, sensor_collection
from orbitcube.catalog.simulator.truth import Truth

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]


@dataclass
class Mission:
    """A simulated mission on disk.

    Attributes:
        config: the configuration it was made from.
        root: the output folder.
        catalog_path: ``root/catalog/catalog.json``, a self-contained STAC catalog (relative hrefs; scenes sit
            beside their item JSON).
        truth_dir: ``root/truth``: ``landcover.tif``, ``events.geojson``, ``reflectance/YYYY-MM-DD.tif`` (one band
            per common name, float32, truth CRS, 10 m) and ``mission.json``.
        items: every scene's STAC Item, sorted by time.
        truth: the planted truth, evaluable on any grid.
    """

    config: MissionConfig
    root: Path
    catalog_path: Path
    truth_dir: Path
    items: list[pystac.Item]
    truth: Truth


def _render_batch(config: MissionConfig, acqs: list[Acquisition], root: str) -> list[SceneRecord]:
    landscape = Landscape(config)
    statics: dict[tuple[str, float], StaticLayers] = {}
    out = []
    for a in acqs:
        item_dir = Path(root) / "catalog" / a.spec.collection_id / a.item_id
        out.append(render_scene(config, a, landscape, item_dir, statics))
    return out


def _batches(acqs: list[Acquisition], workers: int) -> list[list[Acquisition]]:
    by_tile: dict[str, list[Acquisition]] = {}
    for a in acqs:
        by_tile.setdefault(a.tile.tile_id, []).append(a)
    parts = max(1, -(-2 * workers // max(len(by_tile), 1)))  # about two batches per worker
    return [lst[i::parts] for lst in by_tile.values() for i in range(parts) if lst[i::parts]]


def simulate_mission(
    config: MissionConfig | None = None,
    out_dir: str | Path = "orbitcube-sim",
    *,
    progress: ProgressCallback | None = None,
) -> Mission:
    """Render every scene of ``config``'s mission under ``out_dir`` and write its STAC catalog and ground truth.

    Deterministic: the same config writes identical bytes. Scenes are Cloud-Optimized GeoTIFFs in each tile's
    native UTM CRS; the ground truth is written in the truth CRS (``config.truth_epsg``) at 10 m.
    ``progress(done, total)`` is called after each scene batch.
    """
    config = config or MissionConfig()
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise SimulatorError(f"output path {root} exists and is not a folder; choose another --out")
    cat_file = root / "catalog" / "catalog.json"
    if cat_file.exists():
        raise SimulatorError(
            f"{root} already holds a simulated mission ({cat_file}); remove it or choose another --out"
        )
    root.mkdir(parents=True, exist_ok=True)
    acqs = acquisition_plan(config)
    if not acqs:
        raise SimulatorError(f"no acquisitions between {config.start} and {config.end}; widen the date range")
    log.info(
        "simulating %d scenes (%s) into %s with %d worker(s)",
        len(acqs),
        ", ".join(config.sensors),
        root,
        config.workers,
    )
    records: list[SceneRecord] = []
    batches = _batches(acqs, config.workers)
    done = 0
    if config.workers == 1:
        for batch in batches:
            records.extend(_render_batch(config, batch, str(root)))
            done += len(batch)
            if progress:
                progress(done, len(acqs))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=config.workers, mp_context=ctx) as pool:
            futures = {pool.submit(_render_batch, config, b, str(root)): len(b) for b in batches}
            for fut in as_completed(futures):
                records.extend(fut.result())
                done += futures[fut]
                if progress:
                    progress(done, len(acqs))
    records.sort(key=lambda r: (r.acquisition.datetime, r.acquisition.tile.tile_id))
    items = [scene_item(config, r, root) for r in records]
    truth = Truth(config)
    _write_catalog(config, items, root / "catalog")
    truth_dir = _write_truth(config, truth, root / "truth")
    log.info("mission written: %d items, catalog %s", len(items), cat_file)
    items = [
        pystac.Item.from_file(str(root / "catalog" / it.collection_id / it.id / f"{it.id}.json"))
        for it in items
    ]
    return Mission(config, root, cat_file, truth_dir, items, truth)


def _write_catalog(config: MissionConfig, items: list[pystac.Item], cat_root: Path) -> None:
    cat = pystac.Catalog(
        id="orbitcube-simulated-mission",
        description=f"Simulated Earth-observation mission (orbitcube simulator, seed {config.seed}); not real data.",
        title="orbitcube simulated mission",
    )
    for name in config.sensors:
        spec = SENSORS[name]
        mine = [it for it in items if it.collection_id == spec.collection_id]
        coll = sensor_collection(config, spec, mine)
        coll.add_items(mine)
        cat.add_child(coll)
    cat.normalize_hrefs(str(cat_root))
    cat.make_all_asset_hrefs_relative()
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)


def _write_truth(config: MissionConfig, truth: Truth, truth_dir: Path) -> Path:
    truth_dir.mkdir(parents=True, exist_ok=True)
    gbox = config.truth_geobox(10.0)
    write_cog(truth_dir / "landcover.tif", truth.landcover(gbox), gbox, nodata=255, resampling="nearest")
    fc = {"type": "FeatureCollection", "features": [ev.to_feature() for ev in truth.events]}
    (truth_dir / "events.geojson").write_text(json.dumps(fc, indent=1))
    from orbitcube.catalog.simulator.landscape import LandCover

    # workers do not change the bytes; the opt-in encoding flags are recorded only when set (same bytes as before)
    opt_in = {"nodata_in_files": True, "s2_baseline_change": False}
    meta = {
        k: v for k, v in asdict(config).items() if k != "workers" and not (k in opt_in and opt_in[k] == v)
    }
    meta.update(
        truth_epsg=config.truth_epsg,
        aoi_bbox=list(config.aoi_bbox),
        landcover_classes={c.name.lower(): int(c) for c in LandCover},
    )
    (truth_dir / "mission.json").write_text(json.dumps(meta, indent=1, default=str))
    if config.write_truth_reflectance:
        import rasterio

        st = truth.landscape.static_layers(gbox)
        days = sorted({a.datetime.date() for a in truth.acquisitions})
        (truth_dir / "reflectance").mkdir(exist_ok=True)
        for d in days:
            refl = truth.landscape.reflectance(gbox, d, BANDS, static=st)
            arr = np.stack([refl[b] for b in BANDS])
            prof = dict(
                driver="COG",
                width=arr.shape[2],
                height=arr.shape[1],
                count=len(BANDS),
                dtype="float32",
                crs=gbox.crs.to_wkt(),
                transform=gbox.transform,
                compress="ZSTD",
                predictor=3,
                blocksize=256,
            )
            with rasterio.open(truth_dir / "reflectance" / f"{d.isoformat()}.tif", "w", **prof) as dst:
                dst.write(arr)
                dst.descriptions = BANDS
    return truth_dir


__all__ = [
    "Mission",
    "ProgressCallback",
    "simulate_mission",
]
