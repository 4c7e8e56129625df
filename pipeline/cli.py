"""The ``orbitcube`` command line: wiring only. Every command calls a library function and turns errors into
messages; nothing here that the library lacks (DESIGN rule 6). Imports are lazy so ``--help`` is instant."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from catalog._version import __version__
from catalog.errors import OrbitcubeError

log = logging.getLogger("orbitcube")


class _TqdmProgress:
    """A ``progress(done, total)`` callback drawing a tqdm bar on stderr."""

    def __init__(self, desc: str, unit: str) -> None:
        self.desc, self.unit, self.bar = desc, unit, None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()


# ----- commands --------------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    result = run_demo(args.out, tile_size=args.tile_size, workers=args.workers, progress=not args.quiet)
    print(result.summary())
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from catalog.simulator import MissionConfig, simulate_mission

    cfg = MissionConfig(
        seed=args.seed,
        start=args.start,
        end=args.end,
        sensors=tuple(args.sensors),
        tile_size=args.tile_size,
        cloudiness=args.cloudiness,
        workers=args.workers,
        write_truth_reflectance=not args.no_truth_reflectance,
    )
    progress = None if args.quiet else _TqdmProgress("simulating scenes", "scene")
    m = simulate_mission(cfg, args.out, progress=progress)
    print(f"{len(m.items)} scenes written")
    print(f"  STAC catalog : {m.catalog_path}")
    print(f"  ground truth : {m.truth_dir}  (landcover.tif, events.geojson, reflectance/)")
    print(f"  AOI (lon/lat): {', '.join(f'{v:.5f}' for v in m.config.aoi_bbox)}")
    return 0


def cmd_catalog_ingest(args: argparse.Namespace) -> int:
    from catalog.ingest import ingest

    result = ingest(
        args.sources, args.catalog, collection=args.collection, config=args.config, overwrite=args.overwrite
    )
    print(result.summary())
    return 0


def cmd_catalog_search(args: argparse.Namespace) -> int:
    from catalog.search import search

    bbox = tuple(float(v) for v in args.bbox.split(",")) if args.bbox else None
    found = search(
        args.source,
        bbox=bbox,
        datetime=args.datetime,
        collections=args.collections,
        max_cloud_cover=args.max_cloud_cover,
        filter=args.filter,
        limit=args.limit,
    )
    if args.json:
        print(json.dumps(found.to_dict(), indent=1))
    else:
        for it in found:
            cc = it.properties.get("eo:cloud_cover")
            print(f"{it.id}\t{it.datetime:%Y-%m-%dT%H:%M:%SZ}\t{it.collection_id}\tcloud={cc}")
        print(f"{len(found)} item(s)", file=sys.stderr)
    return 0


def cmd_catalog_validate(args: argparse.Namespace) -> int:
    from catalog.validate import validate_catalog

    problems = validate_catalog(args.catalog)
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        print(p)
    print(
        f"{len(errors)} error(s), {len(problems) - len(errors)} warning(s) in {args.catalog}", file=sys.stderr
    )
    return 1 if errors else 0


def cmd_catalog_publish(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from catalog.publish import publish_catalog
    from catalog.storage import redact

    with tqdm(unit="file", desc="publish", disable=None) as bar:

        def step(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        out = publish_catalog(args.catalog, args.url, progress=step)
    print(f"published: {redact(out)}")
    print(f"  search it : orbitcube catalog search {redact(out)}")
    print("  in a recipe: catalog: {source: <that URL>, kind: static}")
    return 0


def cmd_recipe_example(args: argparse.Namespace) -> int:
    from pipeline.recipe import example_recipe

    print(example_recipe(), end="")
    return 0


def cmd_recipe_validate(args: argparse.Namespace) -> int:
    from pipeline.recipe import load_recipe

    load_recipe(args.recipe)
    print(f"{args.recipe}: valid")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pipeline.recipe import load_recipe
    from pipeline.run import plan_run, run_recipe

    recipe = load_recipe(args.recipe)
    if args.dry_run:
        print(plan_run(recipe).summary())
        return 0
    result = run_recipe(recipe, scheduler=args.scheduler, progress=not args.quiet, resume=not args.no_resume)
    print(result.summary())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pipeline.export import export_cog

    time = int(args.time) if args.time and args.time.lstrip("-").isdigit() else args.time  # index or ISO date
    out = export_cog(args.store, args.variable, time=time, out=args.to_cog, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0


# ----- parser ----------------------------------------------------------------------------------------------------
def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from exc


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``orbitcube`` and its sub-commands."""
    p = argparse.ArgumentParser(
        prog="orbitcube",
        description="Satellite imagery to analysis-ready Zarr data cubes: simulate, catalog, run recipes, export.",
    )
    p.add_argument("--version", action="version", version=f"orbitcube {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    d = sub.add_parser("demo", help="simulate a mission and run the whole pipeline (no network)")
    d.add_argument(
        "--out", type=Path, default=Path("orbitcube-demo"), help="output folder (default ./orbitcube-demo)"
    )
    d.add_argument(
        "--tile-size", type=int, default=512, help="Sentinel-2 tile size in 10 m pixels (default 512)"
    )
    d.add_argument("--workers", type=int, default=2, help="Dask workers and simulator processes (default 2)")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("simulate", help="simulate a Sentinel-2 / Landsat mission with planted ground truth")
    s.add_argument("--out", type=Path, default=Path("orbitcube-sim"))
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--start", type=_date, default=dt.date(2023, 1, 1))
    s.add_argument("--end", type=_date, default=dt.date(2023, 12, 31))
    s.add_argument("--sensors", nargs="+", default=["sentinel-2"], choices=["sentinel-2", "landsat"])
    s.add_argument("--tile-size", type=int, default=512, help="tile width in 10 m pixels (even)")
    s.add_argument("--cloudiness", type=float, default=0.35)
    s.add_argument("--workers", type=int, default=2, help="rendering processes")
    s.add_argument(
        "--no-truth-reflectance", action="store_true", help="skip the per-date clear-sky truth rasters"
    )
    s.set_defaults(func=cmd_simulate)

    c = sub.add_parser("catalog", help="ingest raster files into STAC catalogs and search them")
    csub = c.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)
    ci = csub.add_parser("ingest", help="turn GeoTIFF/COG files (folder, glob, URLs) into a STAC catalog")
    ci.add_argument("sources", nargs="+", help="folders, globs or URLs of raster files")
    ci.add_argument("--catalog", type=Path, required=True, help="catalog folder to create or update")
    ci.add_argument("--collection", default=None, help="collection id (default: from the filename pattern)")
    ci.add_argument(
        "--config", type=Path, default=None, help="YAML collection config (pattern, bands, scale)"
    )
    ci.add_argument(
        "--overwrite", action="store_true", help="replace items whose id exists with other content"
    )
    ci.set_defaults(func=cmd_catalog_ingest)
    cs = csub.add_parser("search", help="search a local catalog, a static catalog URL or a STAC API")
    cs.add_argument(
        "source", help="catalog folder or catalog.json, or an http(s) URL of a catalog or STAC API"
    )
    cs.add_argument(
        "--bbox", help="west,south,east,north in degrees (WGS84); write --bbox=-55.2,... for negatives"
    )
    cs.add_argument("--datetime", help="e.g. 2023-01-01/2023-03-31, 2023-06/.. ")
    cs.add_argument("--collections", nargs="+")
    cs.add_argument("--max-cloud-cover", type=float)
    cs.add_argument(
        "--filter", help="CQL2 text or JSON, e.g. \"platform = 'sentinel-2a' AND view:off_nadir < 5\""
    )
    cs.add_argument("--limit", type=int)
    cs.add_argument("--json", action="store_true", help="print an ItemCollection as JSON")
    cs.set_defaults(func=cmd_catalog_search)
    cv = csub.add_parser("validate", help="check items and collections against the STAC schemas (offline)")
    cv.add_argument("catalog", type=Path, help="catalog folder or its catalog.json")
    cv.set_defaults(func=cmd_catalog_validate)
    cp = csub.add_parser(
        "publish",
        help="copy a catalog folder (JSON, index, scenes) to az:// or s3:// as a static catalog "
        "(credentials from AZURE_STORAGE_* / AWS_* environment variables)",
    )
    cp.add_argument("catalog", type=Path, help="catalog folder or its catalog.json")
    cp.add_argument(
        "url", help="destination prefix, e.g. az://container/catalogs/mission or s3://bucket/prefix"
    )
    cp.set_defaults(func=cmd_catalog_publish)
    r = sub.add_parser("recipe", help="write and check recipe files")
    rsub = r.add_subparsers(dest="recipe_command", metavar="ACTION", required=True)
    rsub.add_parser("example", help="print a commented example recipe").set_defaults(func=cmd_recipe_example)
    rv = rsub.add_parser("validate", help="check a recipe file and report the bad key")
    rv.add_argument("recipe", type=Path)
    rv.set_defaults(func=cmd_recipe_validate)

    run = sub.add_parser("run", help="run a recipe tile by tile into a Zarr store (resumable)")
    run.add_argument("recipe", type=Path)
    run.add_argument(
        "--dry-run", action="store_true", help="print the plan (tiles, items, bytes) without reading pixels"
    )
    run.add_argument(
        "--scheduler",
        help="tcp://HOST:PORT of an existing Dask scheduler, or gateway://HOST:PORT of a Dask Gateway that starts a "
        "cluster for the run (auth from the recipe's cluster.gateway); default: a LocalCluster",
    )
    run.add_argument("--no-resume", action="store_true", help="refuse to continue a partly written store")
    run.set_defaults(func=cmd_run)

    e = sub.add_parser("export", help="export a variable/time slice of a cube as a Cloud-Optimized GeoTIFF")
    e.add_argument("store", help="Zarr store path")
    e.add_argument("--to-cog", required=True, type=Path, help="output .tif")
    e.add_argument("--variable", required=True)
    e.add_argument("--time", help="time step: an index or an ISO date")
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(func=cmd_export)
    return p


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.INFO if verbose < 2 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbose < 2:
        import dask

        # distributed configures its loggers when first imported; tell it through dask's config
        dask.config.set({"distributed.logging.distributed": "warning"})
        for name in ("distributed", "bokeh", "tornado", "rasterio", "fsspec", "asyncio"):
            logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``orbitcube`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    _configure_logging(args.verbose, args.quiet)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except OrbitcubeError as exc:
        print(f"orbitcube: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("orbitcube: interrupted; completed tiles are kept and a rerun resumes", file=sys.stderr)
        return 130
    finally:
        close_filesystems()


def close_filesystems() -> None:
    """Drop fsspec's cached object-store file systems while its event loop still runs: s3fs and adlfs close
    their HTTP sessions in finalizers, which print a "Loop is not running" traceback if left to interpreter exit."""
    import contextlib
    import gc
    import weakref

    if "fsspec" not in sys.modules:
        return
    from fsspec.asyn import sync
    from fsspec.spec import AbstractFileSystem

    AbstractFileSystem.clear_instance_cache()
    gc.collect()
    # adlfs registers weakref.finalize(fs, sync, loop, close, fs): the finalizer holds the file system itself, so
    # it only ever runs at exit, after fsspec's loop stopped. Run such finalizers now (each runs at most once).
    registry = getattr(weakref.finalize, "_registry", {})
    for fin, info in list(registry.items()):
        if getattr(info, "func", None) is sync:
            with contextlib.suppress(Exception):
                fin()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
