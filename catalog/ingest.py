"""Ingest: GeoTIFF/COG files -> STAC 1.1 Items -> a self-contained catalog with a stac-geoparquet index.

What the files say (CRS, transform, shape, dtype, nodata, overviews) is read with rasterio; what they do not say
(datetime, platform, band common names, scale/offset) comes from a filename pattern: the known Landsat
Collection 1/2, Sentinel-2 and orbitcube-simulator patterns, or a user's :class:`CollectionConfig`. Files of one
scene (one file per band) become one Item. Unreadable files are reported and skipped, never half-ingested.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pystac
import rasterio
from odc.geo.geom import box

from catalog.errors import CatalogError
from catalog.extensions import COG, EXT, GTIFF

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".TIF", ".TIFF")

OLI = {
    "B1": ("coastal", 0.44), "B2": ("blue", 0.48), "B3": ("green", 0.56), "B4": ("red", 0.655),
    "B5": ("nir08", 0.865), "B6": ("swir16", 1.61), "B7": ("swir22", 2.2), "B8": ("pan", 0.59),
    "B9": ("cirrus", 1.37), "B10": ("lwir11", 10.9), "B11": ("lwir12", 12.0),
}  # fmt: skip
MSI = {
    "B01": ("coastal", 0.443), "B02": ("blue", 0.49), "B03": ("green", 0.56), "B04": ("red", 0.665),
    "B05": ("rededge1", 0.704), "B06": ("rededge2", 0.74), "B07": ("rededge3", 0.783), "B08": ("nir", 0.842),
    "B8A": ("nir08", 0.865), "B09": ("nir09", 0.945), "B11": ("swir16", 1.61), "B12": ("swir22", 2.19),
}  # fmt: skip


@dataclass(frozen=True)
class CollectionConfig:
    """How to turn file names of one collection into items.

    ``pattern`` is a regex searched in the file path with named groups ``id`` (scene id; files sharing it form one
    item), ``band`` (asset key) and ``date`` (``YYYYMMDD``) or ``datetime`` (``YYYYMMDDTHHMMSS``). ``bands`` maps
    asset keys to (common name, centre wavelength in micrometres); ``scale``/``offset``/``nodata`` apply to every
    band unless ``per_band`` overrides them for a key.
    """

    collection_id: str
    pattern: str
    platform: str | None = None
    instrument: str | None = None
    bands: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None
    per_band: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping) -> CollectionConfig:
        """Build from a dict / YAML mapping; raise CatalogError naming a missing or unknown key."""
        allowed = set(cls.__dataclass_fields__)
        unknown = set(data) - allowed
        if unknown:
            raise CatalogError(
                f"collection config: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
            )
        for key in ("collection_id", "pattern"):
            if key not in data:
                raise CatalogError(f"collection config: missing required key {key!r}")
        try:
            re.compile(data["pattern"])
        except re.error as exc:
            raise CatalogError(
                f"collection config: pattern {data['pattern']!r} is not a valid regex: {exc}"
            ) from exc
        bands = {k: tuple(v) for k, v in (data.get("bands") or {}).items()}
        return cls(**{**data, "bands": bands})


KNOWN: tuple[CollectionConfig, ...] = (
    CollectionConfig(
        "landsat-c2-l2",
        r"(?P<id>L[COTEM]0(?P<sat>\d)_L2S[PR]_(?P<path>\d{3})(?P<row>\d{3})_(?P<date>\d{8})_\d{8}_02_(T1|T2|RT))_(?P<band>SR_B\d+|QA_PIXEL)\.TIF$",
        None, "oli", {f"SR_{k}": v for k, v in OLI.items()}, 2.75e-05, -0.2, 0, {"QA_PIXEL": {"scale": 1.0, "offset": 0.0, "nodata": 1}},
    ),
    CollectionConfig(
        "landsat-c1-l1",
        r"(?P<id>L[COTEM]0(?P<sat>\d)_L1(TP|GT|GS)_(?P<path>\d{3})(?P<row>\d{3})_(?P<date>\d{8})_\d{8}_01_(T1|T2|RT))_(?P<band>B\d+|BQA)\.TIF$",
        None, "oli", OLI, None, None, 0,
    ),
    CollectionConfig(
        "sentinel-2-l2a",
        r"(?P<id>T(?P<tile>\d{2}[A-Z]{3})_(?P<datetime>\d{8}T\d{6}))_(?P<band>B\d[\dA]|SCL)(_\d+m)?\.(tif|TIF|jp2)$",
        None, "msi", MSI, 0.0001, -0.1, 0, {"SCL": {"scale": 1.0, "offset": 0.0, "nodata": 0}},
    ),
    CollectionConfig(
        "sentinel-2-l2a-sim",
        r"(?P<id>S2(?P<sat>[AB])_(?P<tile>\d{2}[A-Z]{3})_(?P<date>\d{8})_0_L2A)/(?P<band>B\d[\dA]|SCL)\.tif$",
        None, "msi", MSI, 0.0001, -0.1, 0, {"SCL": {"scale": 1.0, "offset": 0.0, "nodata": 0}},
    ),
    CollectionConfig(
        "landsat-c2-l2-sim",
        r"(?P<id>LC0(?P<sat>\d)_L2SP_(?P<path>\d{3})(?P<row>\d{3})_(?P<date>\d{8})_02_T1)/(?P<band>SR_B\d|QA_PIXEL)\.tif$",
        None, "oli", {f"SR_{k}": v for k, v in OLI.items()}, 2.75e-05, -0.2, 0, {"QA_PIXEL": {"scale": 1.0, "offset": 0.0, "nodata": 1}},
    ),
)  # fmt: skip


@dataclass
class IngestResult:
    """What an ingest did: items added, unchanged, and files skipped with the reason."""

    catalog_path: Path | None
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    items: list[pystac.Item] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{len(self.added)} item(s) added, {len(self.unchanged)} unchanged -> {self.catalog_path}"]
        lines += [f"  skipped {path}: {why}" for path, why in self.skipped]
        return "\n".join(lines)


def expand_sources(sources: str | Path | Iterable[str | Path]) -> list[str]:
    """Folders (searched recursively for .tif/.tiff), globs, file paths and URLs -> sorted unique hrefs."""
    if isinstance(sources, str | Path):
        sources = [sources]
    out: set[str] = set()
    for src in sources:
        s = str(src)
        if "://" in s:
            out.add(s)
        elif any(c in s for c in "*?["):
            out.update(p for p in glob.glob(s, recursive=True) if p.endswith(RASTER_SUFFIXES))
        elif os.path.isdir(s):
            if not os.access(s, os.R_OK | os.X_OK):
                raise CatalogError(f"cannot read folder {s}: permission denied; check its permissions")
            for root, _dirs, files in os.walk(s):
                out.update(os.path.join(root, f) for f in files if f.endswith(RASTER_SUFFIXES))
        elif os.path.exists(s):
            out.add(s)
        else:
            raise CatalogError(f"source {s} does not exist; give a folder, a glob, a file or a URL")
    return sorted(os.path.abspath(p) if "://" not in p else p for p in out)


def _match(href: str, configs: Sequence[CollectionConfig]) -> tuple[CollectionConfig, re.Match] | None:
    for cfg in configs:
        m = re.search(cfg.pattern, href.replace(os.sep, "/"))
        if m:
            return cfg, m
    return None


def _datetime(m: re.Match) -> dt.datetime:
    g = m.groupdict()
    if g.get("datetime"):
        return dt.datetime.strptime(g["datetime"], "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    if g.get("date"):
        return dt.datetime.strptime(g["date"], "%Y%m%d").replace(tzinfo=dt.UTC)
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


def _read_header(href: str) -> dict:
    try:
        with rasterio.open(href) as src:
            if src.crs is None:
                raise CatalogError(
                    f"{href} has no CRS; fix the file (gdal_edit.py -a_srs EPSG:...) and ingest again"
                )
            return {
                "crs": src.crs,
                "epsg": src.crs.to_epsg(),
                "transform": list(src.transform)[:6],
                "shape": [src.height, src.width],
                "dtype": src.dtypes[0],
                "nodata": src.nodata,
                "count": src.count,
                "bounds": tuple(src.bounds),
                "cog": bool(src.profile.get("tiled")) and bool(src.overviews(1)),
            }
    except rasterio.errors.RasterioIOError as exc:
        raise CatalogError(f"{href} is not a readable raster ({exc}); remove it or fix it") from exc


def items_from_files(
    hrefs: Iterable[str], *, config: CollectionConfig | Mapping | None = None
) -> tuple[list[pystac.Item], list[tuple[str, str]]]:
    """Group raster files into STAC Items; returns (items, skipped) where skipped lists (href, reason).

    Asset hrefs are absolute; geometry and bbox are the union of the band footprints in WGS84.
    """
    configs: list[CollectionConfig] = list(KNOWN)
    if config is not None:
        configs.insert(
            0, config if isinstance(config, CollectionConfig) else CollectionConfig.from_mapping(config)
        )
    groups: dict[tuple[str, str], list[tuple[str, CollectionConfig, re.Match]]] = {}
    skipped: list[tuple[str, str]] = []
    for href in hrefs:
        hit = _match(href, configs)
        if hit is None:
            skipped.append(
                (href, "file name matches no known pattern; pass a collection config with a pattern")
            )
            continue
        cfg, m = hit
        groups.setdefault((cfg.collection_id, m.group("id")), []).append((href, cfg, m))
    items = []
    for (coll, scene_id), files in sorted(groups.items()):
        try:
            items.append(_item(coll, scene_id, files))
        except CatalogError as exc:
            skipped.extend((href, str(exc)) for href, _, _ in files)
    return items, skipped


def _item(coll: str, scene_id: str, files: list[tuple[str, CollectionConfig, re.Match]]) -> pystac.Item:
    cfg, m0 = files[0][1], files[0][2]
    when = _datetime(m0)
    headers = {href: _read_header(href) for href, _, _ in files}
    epsgs = {h["epsg"] for h in headers.values()}
    footprint = None
    for h in headers.values():
        b = box(*h["bounds"], crs=h["crs"]).to_crs(4326)
        footprint = b if footprint is None else footprint | b
    props = {
        "proj:code": f"EPSG:{epsgs.pop()}" if len(epsgs) == 1 else None,
        "instruments": [cfg.instrument] if cfg.instrument else None,
        "platform": _platform(cfg, m0),
    }
    g = m0.groupdict()
    if g.get("path"):
        props.update({"landsat:wrs_path": g["path"], "landsat:wrs_row": g["row"]})
    if g.get("tile"):
        props["grid:code"] = f"MGRS-{g['tile']}"
    item = pystac.Item(
        id=scene_id,
        geometry=footprint.json,
        bbox=list(footprint.boundingbox),
        datetime=when,
        properties={k: v for k, v in props.items() if v is not None},
        collection=coll,
        stac_extensions=[EXT[k] for k in ("eo", "raster", "proj")]
        + ([EXT["grid"]] if "grid:code" in props else []),
    )
    for href, _cfg, m in sorted(files, key=lambda f: f[2].group("band")):
        key = m.group("band")
        h = headers[href]
        over = cfg.per_band.get(key, {})
        raster = {"data_type": h["dtype"], "spatial_resolution": abs(h["transform"][0])}
        nodata = over.get("nodata", h["nodata"] if h["nodata"] is not None else cfg.nodata)
        if nodata is not None:
            raster["nodata"] = nodata
        scale, offset = over.get("scale", cfg.scale), over.get("offset", cfg.offset)
        if scale is not None and scale != 1.0:
            raster["scale"] = scale
        if offset:
            raster["offset"] = offset
        extra: dict = {"raster:bands": [raster], "proj:shape": h["shape"], "proj:transform": h["transform"]}
        if len(epsgs) > 1 or props["proj:code"] is None:
            extra["proj:code"] = f"EPSG:{h['epsg']}"
        roles = ["data"]
        if key in cfg.bands:
            common, wl = cfg.bands[key]
            extra["eo:bands"] = [{"name": key, "common_name": common, "center_wavelength": wl}]
            roles.append("reflectance")
        else:
            roles.append("cloud" if key in ("SCL", "QA_PIXEL", "BQA") else "metadata")
        item.add_asset(
            key,
            pystac.Asset(href=href, media_type=COG if h["cog"] else GTIFF, roles=roles, extra_fields=extra),
        )
    return item


def _collection(coll_id: str, items: list[pystac.Item]) -> pystac.Collection:
    footprints = [box(*it.bbox, crs=4326) for it in items]
    union = footprints[0]
    for f in footprints[1:]:
        union = union | f
    times = sorted(it.datetime for it in items)
    return pystac.Collection(
        id=coll_id,
        description=f"{coll_id}: scenes ingested by orbitcube",
        extent=pystac.Extent(
            pystac.SpatialExtent([list(union.boundingbox)]), pystac.TemporalExtent([[times[0], times[-1]]])
        ),
        license="other",
    )


def write_catalog(
    items: Sequence[pystac.Item], root: str | Path, *, title: str = "orbitcube catalog"
) -> Path:
    """Write ``items`` as a self-contained catalog under ``root`` (one collection per collection id, extents
    computed, relative hrefs) plus ``items.parquet`` (stac-geoparquet), atomically: everything is written to a
    temporary folder beside ``root`` and swapped in at the end, so a failure never leaves a half-written catalog.
    """
    import stac_geoparquet.arrow as sga

    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        cat = pystac.Catalog(id=root.name or "catalog", description=title, title=title)
        by_coll: dict[str, list[pystac.Item]] = {}
        for it in items:
            by_coll.setdefault(it.collection_id or "items", []).append(it.clone())
        for coll_id, its in sorted(by_coll.items()):
            coll = _collection(coll_id, its)
            coll.add_items(its)
            cat.add_child(coll)
        cat.normalize_hrefs(str(tmp))
        for it in cat.get_items(recursive=True):
            item_dir = Path(tmp) / it.collection_id / it.id
            for a in it.assets.values():
                if "://" not in a.href:  # relative to where the item JSON will live under root
                    a.href = os.path.relpath(os.path.abspath(a.href), start=root / it.collection_id / it.id)
            del item_dir
        cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
        dicts = []
        for it in cat.get_items(recursive=True):
            d = it.to_dict(transform_hrefs=False)
            for a in d["assets"].values():
                if "://" not in a["href"]:
                    a["href"] = os.path.normpath(str(root / it.collection_id / it.id / a["href"]))
            dicts.append(d)
        if dicts:
            sga.to_parquet(sga.parse_stac_items_to_arrow(dicts), tmp / "items.parquet")
        if root.exists():
            old = root.with_name(root.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            root.rename(old)
            tmp.rename(root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root / "catalog.json"


def _existing(root: Path) -> dict[str, pystac.Item]:
    cat_file = root / "catalog.json"
    if not cat_file.exists():
        return {}
    cat = pystac.Catalog.from_file(str(cat_file))
    out = {}
    for it in cat.get_items(recursive=True):
        it.make_asset_hrefs_absolute()
        out[it.id] = it
    return out


def _comparable(item: pystac.Item) -> str:
    d = item.to_dict(include_self_link=False, transform_hrefs=False)
    d.pop("links", None)
    for a in d["assets"].values():
        a["href"] = os.path.normpath(a["href"])
    return json.dumps(d, sort_keys=True, default=str)


def ingest(
    sources: str | Path | Iterable[str | Path],
    catalog: str | Path,
    *,
    collection: str | None = None,
    config: CollectionConfig | Mapping | str | Path | None = None,
    overwrite: bool = False,
) -> IngestResult:
    """Ingest raster files into the catalog folder ``catalog`` (created or updated).

    Re-ingesting the same files changes nothing; new files add items and update extents and the index; an item id
    that exists with different content raises CatalogError unless ``overwrite``. ``config`` is a
    :class:`CollectionConfig`, a mapping, or a YAML file holding one; ``collection`` renames the collection.
    """
    if isinstance(config, str | Path):
        import yaml

        try:
            config = yaml.safe_load(Path(config).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CatalogError(f"cannot read collection config {config}: {exc}") from exc
    root = Path(catalog)
    hrefs = expand_sources(sources)
    if not hrefs:
        raise CatalogError(f"no .tif/.tiff files found in {sources}; check the folder or glob")
    items, skipped = items_from_files(hrefs, config=config)
    if collection:
        for it in items:
            it.collection_id = collection
    existing = _existing(root)
    result = IngestResult(None, skipped=skipped)
    merged = dict(existing)
    for it in items:
        old = existing.get(it.id)
        if old is not None:
            it.collection_id = it.collection_id or old.collection_id
            if _comparable(old) == _comparable(it):
                result.unchanged.append(it.id)
                continue
            if not overwrite:
                raise CatalogError(
                    f"item {it.id!r} already exists in {root} with different content; pass overwrite=True "
                    "(CLI: remove the old item) or give the new files another id"
                )
        merged[it.id] = it
        result.added.append(it.id)
    for path, why in skipped:
        log.warning("skipped %s: %s", path, why)
    if result.added or not (root / "catalog.json").exists():
        if not merged:
            raise CatalogError(
                f"nothing to ingest: every file was skipped ({len(skipped)}); see the reasons above"
            )
        result.catalog_path = write_catalog(list(merged.values()), root)
    else:
        result.catalog_path = root / "catalog.json"
    result.items = sorted(merged.values(), key=lambda i: (i.datetime, i.id))
    return result
