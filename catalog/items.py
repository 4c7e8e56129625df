"""Ingest: GeoTIFF/COG files (a folder, a glob, a list of paths or URLs) -> STAC 1.1 Items -> a catalog on disk.

What the files say (CRS, transform, shape, dtype, nodata, band count, overviews) is read with rasterio; what they
do not say (datetime, platform, band common names, scale/offset) comes from a file-name pattern
(:mod:`orbitcube.catalog.patterns`: the known Landsat, Sentinel-2 and simulator patterns, or a user's
:class:`~orbitcube.catalog.patterns.CollectionConfig`). Files of one scene (one file per band) become one Item. Unreadable
files are reported and skipped, never half-ingested; the catalog is written by :mod:`orbitcube.catalog.merge`.
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pystac
import rasterio
from odc.geo.geom import box

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.extensions import COG, EXT, GTIFF
from orbitcube.catalog.patterns import KNOWN, QUALITY_KEYS, CollectionConfig, load_configs
from orbitcube.catalog.products import band_encoding

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".TIF", ".TIFF")


@dataclass
class IngestResult:
    """What an ingest did: item ids added, ids unchanged, and files skipped as (path, reason)."""

    catalog_path: Path | None
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    items: list[pystac.Item] = field(default_factory=list)

    def summary(self) -> str:
        """Human-readable report: counts, the catalog path, and each skipped file with its reason."""
        lines = [f"{len(self.added)} item(s) added, {len(self.unchanged)} unchanged -> {self.catalog_path}"]
        lines += [f"  skipped {path}: {why}" for path, why in self.skipped]
        return "\n".join(lines)


def expand_sources(sources: str | Path | Iterable[str | Path]) -> list[str]:
    """Folders (searched recursively for .tif/.tiff), globs, file paths and URLs -> sorted unique hrefs.

    Raises CatalogError for a path that does not exist or a folder that cannot be read.
    """
    if isinstance(sources, str | Path):
        sources = [sources]
    out: set[str] = set()
    for src in sources:
        s = str(src)
        if "://" in s:
            out.add(s)
        elif any(c in s for c in "*?["):
            out.update(
                os.path.abspath(p) for p in glob.glob(s, recursive=True) if p.endswith(RASTER_SUFFIXES)
            )
        elif os.path.isdir(s):
            if not os.access(s, os.R_OK | os.X_OK):
                raise CatalogError(f"cannot read folder {s}: permission denied; check its permissions")

            def _raise(exc: OSError) -> None:
                raise CatalogError(
                    f"cannot read folder {exc.filename}: {exc.strerror}; check its permissions"
                )

            for root, _dirs, files in os.walk(s, onerror=_raise):
                out.update(
                    os.path.abspath(os.path.join(root, f)) for f in files if f.endswith(RASTER_SUFFIXES)
                )
        elif os.path.exists(s):
            out.add(os.path.abspath(s))
        else:
            raise CatalogError(f"source {s} does not exist; give a folder, a glob, a file or a URL")
    return sorted(out)


def _match(href: str, configs: Sequence[CollectionConfig]) -> tuple[CollectionConfig, re.Match] | None:
    for cfg in configs:
        m = re.search(cfg.pattern, href.replace(os.sep, "/"))
        if m:
            return cfg, m
    return None


def _day_interval(m: re.Match) -> dict:
    """For a file name that gives only a date: ``start_datetime``/``end_datetime`` spanning that UTC day, the
    STAC way of saying the time of day is unknown (the item's datetime is then the day's 00:00 UTC, and
    :mod:`orbitcube.pipeline.timeaxis` labels the scene with the date as given instead of shifting it by longitude)."""
    if m.groupdict().get("datetime") or not m.groupdict().get("date"):
        return {}
    start = _datetime(m)
    end = start + dt.timedelta(days=1) - dt.timedelta(seconds=1)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"  # as the catalog index writes times back, so re-ingest compares equal
    return {"start_datetime": start.strftime(fmt), "end_datetime": end.strftime(fmt)}


def _datetime(m: re.Match) -> dt.datetime:
    g = m.groupdict()
    try:
        if g.get("datetime"):
            return dt.datetime.strptime(g["datetime"], "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
        if g.get("date"):
            return dt.datetime.strptime(g["date"], "%Y%m%d").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise CatalogError(
            f"file name date in {m.string!r} is not a valid date ({exc}); rename the file"
        ) from exc
    raise CatalogError(
        f"pattern {m.re.pattern!r} has no 'date' or 'datetime' group; add one so items get a time"
    )


def _platform(cfg: CollectionConfig, m: re.Match) -> str | None:
    if cfg.platform:
        return cfg.platform
    sat = m.groupdict().get("sat")
    if cfg.collection_id.startswith("landsat") and sat:
        return f"landsat-{sat}"
    if cfg.collection_id.startswith("sentinel-2") and sat:
        return f"sentinel-2{sat.lower()}"
    return None


def read_header(href: str) -> dict:
    """What a raster file says about itself: CRS, EPSG code, transform (6 affine terms), shape (rows, cols),
    per-band dtypes and nodata, band count, bounds in the file CRS, and whether it is a tiled COG with overviews.

    Raises CatalogError for a file that is not a readable raster or has no CRS.
    """
    try:
        with rasterio.open(href) as src:
            if src.crs is None:
                raise CatalogError(
                    f"{href} has no CRS; fix the file (gdal_edit.py -a_srs EPSG:...) and ingest again"
                )
            epsg = src.crs.to_epsg()
            return {
                "crs": src.crs,
                "code": f"EPSG:{epsg}" if epsg else None,
                "wkt2": None if epsg else src.crs.to_wkt(),
                "transform": list(src.transform)[:6],
                "shape": [src.height, src.width],
                "dtypes": list(src.dtypes),
                "nodatavals": list(src.nodatavals),
                "count": src.count,
                "bounds": tuple(src.bounds),
                "overviews": src.overviews(1),
                "tiled": bool(src.profile.get("tiled")),
            }
    except rasterio.errors.RasterioIOError as exc:
        raise CatalogError(f"{href} is not a readable raster ({exc}); remove it or fix it") from exc


def items_from_files(
    hrefs: Iterable[str], *, config: CollectionConfig | Mapping | list | str | Path | None = None
) -> tuple[list[pystac.Item], list[tuple[str, str]]]:
    """Group raster files into STAC Items; returns ``(items, skipped)`` where skipped lists (href, reason).

    ``config`` adds user patterns (see :func:`orbitcube.catalog.patterns.load_configs`) tried before the known ones.
    Asset hrefs are absolute paths or URLs; geometry and bbox are the union of the band footprints in WGS84
    (lon/lat); ``proj:*`` fields are per asset (native CRS of each file).
    """
    configs = load_configs(config)
    groups: dict[tuple[str, str], list[tuple[str, CollectionConfig, re.Match]]] = {}
    skipped: list[tuple[str, str]] = []
    for href in hrefs:
        hit = _match(str(href), configs)
        if hit is None:
            skipped.append(
                (str(href), "file name matches no known pattern; pass a collection config with a pattern")
            )
            continue
        cfg, m = hit
        groups.setdefault((cfg.collection_id, m.group("id")), []).append((str(href), cfg, m))
    items = []
    for (coll, scene_id), files in sorted(groups.items()):
        good, headers = [], {}
        for f in files:
            try:
                headers[f[0]] = read_header(f[0])
                good.append(f)
            except CatalogError as exc:
                skipped.append((f[0], str(exc)))
        if not good:
            continue
        try:
            items.append(_item(coll, scene_id, good, headers))
        except CatalogError as exc:
            skipped.extend((href, str(exc)) for href, _, _ in good)
    return items, skipped


def _band_key(m: re.Match) -> str:
    return m.groupdict().get("band") or "data"


def _item(
    coll: str, scene_id: str, files: list[tuple[str, CollectionConfig, re.Match]], headers: dict[str, dict]
) -> pystac.Item:
    cfg, m0 = files[0][1], files[0][2]
    keys = [_band_key(m) for _, _, m in files]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise CatalogError(
            f"scene {scene_id}: several files give band(s) {dup}; keep one file per band or fix the pattern"
        )
    footprint = None
    for h in headers.values():
        b = box(*h["bounds"], crs=h["crs"]).to_crs(4326)
        footprint = b if footprint is None else footprint | b
    codes = {h["code"] for h in headers.values()}
    common_code = codes.pop() if len(codes) == 1 else None
    props: dict = {
        "proj:code": common_code,
        "instruments": [cfg.instrument] if cfg.instrument else None,
        "platform": _platform(cfg, m0),
        **_day_interval(m0),
    }
    g = m0.groupdict()
    if g.get("path") and g.get("row"):
        props.update({"landsat:wrs_path": g["path"], "landsat:wrs_row": g["row"]})
    if g.get("tile"):
        props["grid:code"] = f"MGRS-{g['tile']}"
    item = pystac.Item(
        id=scene_id,
        geometry=footprint.json,
        bbox=list(footprint.boundingbox),
        datetime=_datetime(m0),
        properties={k: v for k, v in props.items() if v is not None},
        collection=coll,
        stac_extensions=[EXT[k] for k in ("eo", "raster", "proj")] + ([EXT["grid"]] if g.get("tile") else []),
    )
    for href, _cfg, m in sorted(files, key=lambda f: _band_key(f[2])):
        key = _band_key(m)
        item.add_asset(key, _asset(cfg, key, href, headers[href], common_code, item.datetime))
    return item


def _asset(
    cfg: CollectionConfig, key: str, href: str, h: dict, common_code: str | None, when: dt.datetime | None
) -> pystac.Asset:
    over = cfg.per_band.get(key, {})
    scale, offset = over.get("scale", cfg.scale), over.get("offset", cfg.offset)
    if cfg in KNOWN and "offset" not in over:  # a known product: the product table decides (per date for S2)
        enc = band_encoding(cfg.collection_id, {}, when.date() if when else None, key)
        if enc is not None:
            scale, offset = enc.scale, enc.offset
    bands = []
    for dtype, file_nodata in zip(h["dtypes"], h["nodatavals"], strict=True):
        raster: dict = {"data_type": dtype, "spatial_resolution": abs(h["transform"][0])}
        nodata = over.get("nodata", file_nodata if file_nodata is not None else cfg.nodata)
        if nodata is not None:
            raster["nodata"] = "nan" if nodata != nodata else nodata  # STAC writes NaN as "nan"
        if scale is not None and scale != 1.0:
            raster["scale"] = scale
        if offset:
            raster["offset"] = offset
        bands.append(raster)
    extra: dict = {"raster:bands": bands, "proj:shape": h["shape"], "proj:transform": h["transform"]}
    if h["code"] is None:
        extra["proj:code"], extra["proj:wkt2"] = None, h["wkt2"]
    elif h["code"] != common_code:
        extra["proj:code"] = h["code"]
    roles = ["data"]
    if key in cfg.bands and h["count"] == 1:
        common, wl = cfg.bands[key]
        extra["eo:bands"] = [{"name": key, "common_name": common, "center_wavelength": wl}]
        roles.append("reflectance")
    elif key in QUALITY_KEYS:
        roles.append("cloud")
    cog = h["tiled"] and bool(h["overviews"])
    return pystac.Asset(href=href, media_type=COG if cog else GTIFF, roles=roles, extra_fields=extra)


def ingest(
    sources: str | Path | Iterable[str | Path],
    catalog: str | Path,
    *,
    collection: str | None = None,
    config: CollectionConfig | Mapping | list | str | Path | None = None,
    overwrite: bool = False,
) -> IngestResult:
    """Ingest raster files (folders, globs, paths, URLs) into the catalog folder ``catalog`` (created or updated).

    Re-ingesting the same files changes nothing (not a byte); new files add items and update collection extents
    and the ``items.parquet`` index; an item id that exists with different content raises CatalogError naming
    the id unless ``overwrite``. Files that cannot be read, have no CRS or match no pattern are skipped and
    listed in the result (and logged). ``config``: see :func:`orbitcube.catalog.patterns.load_configs`; ``collection``
    puts every item into that collection instead of the pattern's.
    """
    from orbitcube.catalog.merge import merge_items, write_merged

    root = Path(catalog)
    hrefs = expand_sources(sources)
    if not hrefs:
        raise CatalogError(f"no .tif/.tiff files found in {sources}; check the folder or glob")
    items, skipped = items_from_files(hrefs, config=config)
    if collection:
        for it in items:
            it.collection_id = collection
    for path, why in skipped:
        log.warning("skipped %s: %s", path, why)
    if not items and not (root / "catalog.json").exists():
        raise CatalogError(
            f"nothing to ingest: every file was skipped ({len(skipped)}); see the reasons above"
        )
    plan = merge_items(root, items, overwrite=overwrite)
    cat = write_merged(plan)
    return IngestResult(cat.catalog_file, plan.added, plan.unchanged, skipped, cat.items)


__all__ = [
    "IngestResult",
    "RASTER_SUFFIXES",
    "expand_sources",
    "ingest",
    "items_from_files",
    "read_header",
]
