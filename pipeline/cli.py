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

from orbitcube.catalog._version import __version__
from orbitcube.catalog.errors import OrbitcubeError

__all__ = ["build_parser", "main"]

log = logging.getLogger("orbitcube")


# ----- commands --------------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from orbitcube.pipeline.demo import run_demo

    result = run_demo(args.out, tile_size=args.tile_size, workers=args.workers, progress=not args.quiet)
    print(result.summary())
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from orbitcube.catalog.simulator import MissionConfig, simulate_mission
    from orbitcube.pipeline.progress import TqdmProgress

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
    progress = None if args.quiet else TqdmProgress("simulating scenes", "scene")
    m = simulate_mission(cfg, args.out, progress=progress)
    print(f"{len(m.items)} scenes written")
    print(f"  STAC catalog : {m.catalog_path}")
    print(f"  ground truth : {m.truth_dir}  (landcover.tif, events.geojson, reflectance/)")
    print(f"  AOI (lon/lat): {', '.join(f'{v:.5f}' for v in m.config.aoi_bbox)}")
    return 0


def cmd_catalog_ingest(args: argparse.Namespace) -> int:
    from orbitcube.catalog.items import ingest

    result = ingest(
        args.sources, args.catalog, collection=args.collection, config=args.config, overwrite=args.overwrite
    )
    print(result.summary())
    return 0


def cmd_catalog_search(args: argparse.Namespace) -> int:
    from orbitcube.catalog.query import parse_bbox, search

    bbox = parse_bbox(args.bbox) if args.bbox else None
    found = search(
        args.source,
        bbox=bbox,
        datetime=args.datetime,
        collections=args.collections,
        max_cloud_cover=args.max_cloud_cover,
        filter=args.filter,
        limit=args.limit,
        allow=args.allow or (),
    )
    if args.json:
        print(json.dumps(found.to_dict(), indent=1))
    else:
        for it in found:
            cc = it.properties.get("eo:cloud_cover")
            when = (
                f"{it.datetime:%Y-%m-%dT%H:%M:%SZ}"
                if it.datetime
                else f"{it.properties.get('start_datetime')}/{it.properties.get('end_datetime')}"
            )
            print(f"{it.id}\t{when}\t{it.collection_id}\tcloud={cc}")
        print(f"{len(found)} item(s)", file=sys.stderr)
    return 0


def cmd_catalog_validate(args: argparse.Namespace) -> int:
    from orbitcube.catalog.validate import validate_catalog

    problems = validate_catalog(args.catalog, allow=args.allow or ())
    errors = [p for p in problems if p.severity == "error"]
    for p in problems:
        print(p)
    print(
        f"{len(errors)} error(s), {len(problems) - len(errors)} warning(s) in {args.catalog}", file=sys.stderr
    )
    return 1 if errors else 0


def cmd_catalog_publish(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from orbitcube.catalog.publish import publish_catalog
    from orbitcube.catalog.storage import redact

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
    from orbitcube.pipeline.recipe import example_recipe

    print(example_recipe(), end="")
    return 0


def cmd_recipe_validate(args: argparse.Namespace) -> int:
    from orbitcube.pipeline.recipe import load_recipe

    load_recipe(args.recipe)
    print(f"{args.recipe}: valid")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from orbitcube.pipeline.plan import plan_run
    from orbitcube.pipeline.recipe import load_recipe
    from orbitcube.pipeline.run import run_recipe

    if args.scheduler:
        from orbitcube.pipeline.cluster import check_scheduler_address

        check_scheduler_address(args.scheduler)  # before planning or touching the store
    recipe = load_recipe(args.recipe)
    if args.allow:  # --allow adds to the recipe's catalog.allow (orbitcube.catalog.policy)
        recipe = recipe.model_copy(
            update={
                "catalog": recipe.catalog.model_copy(update={"allow": [*recipe.catalog.allow, *args.allow]})
            }
        )
    if args.dry_run:
        print(plan_run(recipe).summary(workers=args.workers))
        return 0
    from orbitcube.pipeline.limits import LargePlanError

    def go(allow_large: bool):
        # recipe_file: a rewrite (--no-resume) must know which file never to delete
        return run_recipe(
            recipe,
            recipe_file=args.recipe,
            scheduler=args.scheduler,
            progress=not args.quiet,
            resume=not args.no_resume,
            allow_large=allow_large,
        )

    try:
        result = go(args.yes)
    except LargePlanError as exc:
        if not (sys.stdin.isatty() and _ask(f"{exc}\nStart it anyway? [y/N] ")):
            raise
        result = go(True)
    print(result.summary())
    return 0


def _ask(question: str) -> bool:
    """Ask a yes/no question on the terminal; only "y"/"yes" is yes."""
    print(question, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_export(args: argparse.Namespace) -> int:
    from orbitcube.pipeline.export import export_cog

    time = int(args.time) if args.time and args.time.lstrip("-").isdigit() else args.time  # index or ISO date
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    from orbitcube.pipeline.errors import SinkError

    try:
        out = export_cog(args.store, args.variable, time=time, out=args.to_cog, overwrite=args.overwrite)
    except (RasterioError, CPLE_BaseError) as exc:  # GDAL cannot create the file
        raise SinkError(f"cannot write the COG {args.to_cog}: {exc}; choose a writable .tif path") from exc
    print(f"wrote {out}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from orbitcube.pipeline.verify import verify_store

    report = verify_store(args.store)
    for problem in report.problems:
        print(problem)
    print(report.summary())
    report.raise_for_problems()
    return 0


# ----- parser ----------------------------------------------------------------------------------------------------
def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from exc


def _allow_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow",
        action="append",
        metavar="FOLDER|URL|SCHEME",
        help="let the catalog reference this folder, URL prefix or URL scheme besides its own tree (repeatable); "
        "loopback and link-local hosts must be named explicitly",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``orbitcube`` and its sub-commands."""
    p = argparse.ArgumentParser(
        prog="orbitcube",
        description="Satellite imagery to analysis-ready Zarr data cubes: simulate, catalog, run recipes, export.",
    )
    p.add_argument("--version", action="version", version=f"orbitcube {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    p.add_argument(
        "--debug-libs",
        action="store_true",
        help="let -v/-vv raise the log level of libraries too (cloud SDKs, Dask, GDAL; also ORBITCUBE_LOG_LIBS=1); "
        "by default they log warnings only",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_demo_and_simulate, _add_catalog, _add_recipe_and_run, _add_export_and_verify):
        add(sub)
    return p


def _add_demo_and_simulate(sub) -> None:
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


def _add_catalog(sub) -> None:
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
    _allow_option(cs)
    cs.set_defaults(func=cmd_catalog_search)
    cv = csub.add_parser("validate", help="check items and collections against the STAC schemas (offline)")
    cv.add_argument("catalog", type=Path, help="catalog folder or its catalog.json")
    _allow_option(cv)
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


def _add_recipe_and_run(sub) -> None:
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
        "--workers",
        type=int,
        help="with --dry-run: estimate the wall time on this many workers (default the recipe's cluster.n_workers)",
    )
    run.add_argument(
        "--scheduler",
        help="tcp://HOST:PORT of an existing Dask scheduler, or gateway://HOST:PORT of a Dask Gateway that starts a "
        "cluster for the run (auth from the recipe's cluster.gateway); default: a LocalCluster",
    )
    run.add_argument(
        "--no-resume",
        action="store_true",
        help="start over: delete the existing store at output.path and write every tile again (only a store "
        "orbitcube created is ever deleted; anything else is refused)",
    )
    run.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="start plans above the size limit without asking (see --dry-run)",
    )
    _allow_option(run)
    run.set_defaults(func=cmd_run)


def _add_export_and_verify(sub) -> None:
    e = sub.add_parser("export", help="export a variable/time slice of a cube as a Cloud-Optimized GeoTIFF")
    e.add_argument("store", help="Zarr store path")
    e.add_argument("--to-cog", required=True, type=Path, help="output .tif")
    e.add_argument("--variable", required=True)
    e.add_argument("--time", help="time step: an index or an ISO date")
    e.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing GeoTIFF file at --to-cog (never a folder, a Zarr store or another file)",
    )
    e.set_defaults(func=cmd_export)

    v = sub.add_parser(
        "verify",
        help="check every chunk of a run store against the checksums recorded when it was written",
    )
    v.add_argument("store", help="Zarr store written by `orbitcube run` (folder, az:// or s3:// URL)")
    v.set_defaults(func=cmd_verify)


#: third-party loggers held at WARNING whatever -v says (the cloud SDKs log every HTTP request, with headers and
#: access key ids, at INFO/DEBUG), unless the user raises them: --debug-libs or ORBITCUBE_LOG_LIBS=1
LIBRARY_LOGGERS = (
    "azure", "botocore", "boto3", "s3transfer", "s3fs", "aiobotocore", "adlfs", "urllib3", "requests", "fsspec",
    "distributed", "bokeh", "tornado", "rasterio", "asyncio", "pystac_client", "numcodecs", "zarr",
)  # fmt: skip


def _configure_logging(verbose: int, quiet: bool, debug_libs: bool = False) -> None:
    import os

    from orbitcube.catalog.storage import RedactingFilter

    level = logging.WARNING if quiet else (logging.INFO if verbose < 2 else logging.DEBUG)
    libs = debug_libs or os.environ.get("ORBITCUBE_LOG_LIBS", "").strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
    )
    # orbitcube's own loggers at the asked level; every other library at WARNING unless the user raises them
    logging.basicConfig(
        level=level if libs else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("orbitcube").setLevel(level)
    for handler in logging.getLogger().handlers:  # whoever logs, no secret reaches the console
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    if libs:
        return
    import dask

    # distributed configures its loggers (in the workers too) from dask's config
    dask.config.set({"distributed.logging.distributed": "warning"})
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``orbitcube`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    _configure_logging(args.verbose, args.quiet, args.debug_libs)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except OrbitcubeError as exc:
        from orbitcube.catalog.storage import (
            redact,  # whatever raised it: no signed URL or key in the message
        )

        print(f"orbitcube: error: {redact(exc)}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a path the user gave cannot be created, read or written
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"orbitcube: error: cannot use{where}: {exc.strerror or exc}; check that the path exists, is a folder "
            "where one is expected, and that you may write there",
            file=sys.stderr,
        )
        return 2
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
