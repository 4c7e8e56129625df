"""Search STAC items by area, time, collection, cloud cover and CQL2 property filters.

One call for every source: a local catalog folder (or an opened :class:`~orbitcube.catalog.store.Catalog`), a list of
items, a static catalog URL or a STAC API URL (:mod:`orbitcube.catalog.remote`). Local catalogs are searched on their
stac-geoparquet index only: vectorised numpy/pyarrow filters on the bbox, datetime and property columns, an
exact shapely intersection test on the few candidates, and only the matching items are materialised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pystac
import shapely

from orbitcube.catalog.antimeridian import bbox_parts, normalize_lonlat
from orbitcube.catalog.errors import CatalogError

__all__ = [
    "Interval",
    "Query",
    "SearchArgs",
    "format_interval",
    "make_query",
    "parse_bbox",
    "parse_datetime",
    "search",
    "search_items",
    "select_rows",
]

if TYPE_CHECKING:
    from orbitcube.catalog.index import ItemIndex

Interval = tuple[dt.datetime | None, dt.datetime | None]


def parse_datetime(value: str | dt.datetime | dt.date | Sequence | None) -> Interval:
    """A STAC datetime (``"2023-01-01/2023-03-31"``, ``"../2023-03"``, ``"2023-06"``, a date, or a pair) as a
    closed UTC interval; ``None`` ends are open. Naive datetimes are taken as UTC."""
    if value is None:
        return (None, None)

    def one(v: Any, end: bool) -> dt.datetime | None:
        if v is None or v in ("..", ""):
            return None
        if isinstance(v, dt.datetime):
            return v if v.tzinfo else v.replace(tzinfo=dt.UTC)
        if isinstance(v, dt.date):
            t = dt.datetime.combine(v, dt.time.max if end else dt.time.min)
            return t.replace(tzinfo=dt.UTC)
        text = str(v).strip()
        try:
            if len(text) == 4:  # year
                d = dt.date(int(text), 12 if end else 1, 31 if end else 1)
            elif len(text) == 7:  # year-month
                y, m = int(text[:4]), int(text[5:7])
                d = (dt.date(y + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1)) if end else dt.date(y, m, 1)
            elif len(text) == 10:
                d = dt.date.fromisoformat(text)
            else:
                return one(dt.datetime.fromisoformat(text.replace("Z", "+00:00")), end)
        except ValueError as exc:
            raise CatalogError(
                f"datetime {text!r} is not ISO 8601; use e.g. 2023-06-01, 2023-06, or 2023-06-01/2023-08-31"
            ) from exc
        return one(d, end)

    if isinstance(value, str):
        parts = value.split("/")
        if len(parts) == 1:
            return (one(parts[0], False), one(parts[0], True))
        if len(parts) != 2:
            raise CatalogError(
                f"datetime {value!r} has more than one '/'; use START/END with '..' for open ends"
            )
        t0, t1 = one(parts[0], False), one(parts[1], True)
        if t0 and t1 and t0 > t1:
            raise CatalogError(
                f"datetime interval {value!r} ends before it starts; swap them: {parts[1]}/{parts[0]}"
            )
        return (t0, t1)
    if isinstance(value, dt.datetime | dt.date):
        return (one(value, False), one(value, True))
    if len(value) != 2:
        raise CatalogError(
            f"datetime {value!r} must be one time or a (start, end) pair; use None for open ends"
        )
    start, end = value
    t0, t1 = one(start, False), one(end, True)
    if t0 and t1 and t0 > t1:
        raise CatalogError(f"datetime interval {value!r} ends before it starts; swap start and end")
    return (t0, t1)


def parse_bbox(value: str | Sequence[float], *, geographic: bool = True) -> tuple[float, float, float, float]:
    """A bbox as four floats (west, south, east, north) from a sequence or a ``"w,s,e,n"`` string; CatalogError
    naming the value unless they are four finite numbers, south < north and, when ``geographic`` (degrees,
    WGS84), longitudes within [-180, 180] and latitudes within [-90, 90]. The one check of a bbox for searches,
    recipes and the CLI (the west/east order is left to the caller: an antimeridian bbox has west > east)."""
    import math

    parts = value.split(",") if isinstance(value, str) else value
    try:
        w, s, e, n = (float(v) for v in parts)
    except (TypeError, ValueError) as exc:
        raise CatalogError(
            f"bbox {value!r} must be four numbers west,south,east,north in degrees, e.g. 11.9,45.4,12.1,45.6 "
            "(write --bbox=-55.2,... for a negative west)"
        ) from exc
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise CatalogError(f"bbox {value!r} must be finite numbers (no nan or inf)")
    if geographic:
        bad = [(k, v) for k, v in (("west", w), ("east", e)) if not -180 <= v <= 180]
        bad += [(k, v) for k, v in (("south", s), ("north", n)) if not -90 <= v <= 90]
        if bad:
            k, v = bad[0]
            limit = "[-180, 180]" if k in ("west", "east") else "[-90, 90]"
            raise CatalogError(
                f"bbox {value!r}: {k} {v:g} is outside {limit} degrees; give (west, south, east, north) as "
                "longitude, latitude in WGS84 degrees"
            )
    if not s < n:
        raise CatalogError(f"bbox {value!r} must have south < north (order: west, south, east, north)")
    return (w, s, e, n)


def format_interval(interval: Interval) -> str | None:
    """An interval as a STAC API datetime string (``..`` for open ends); None when both ends are open."""
    t0, t1 = interval
    if t0 is None and t1 is None:
        return None

    def fmt(t: dt.datetime | None) -> str:
        return ".." if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    return f"{fmt(t0)}/{fmt(t1)}"


def _is_lonlat(crs: Any) -> bool:
    """Whether ``crs`` is WGS84 longitude/latitude (EPSG:4326 or OGC:CRS84)."""
    from odc.geo import CRS

    try:
        return CRS(crs).epsg == 4326 or str(crs).upper().endswith("CRS84")
    except Exception:  # noqa: BLE001 (an unknown CRS is reported when the AOI is projected)
        return False


@dataclass(frozen=True)
class Query:
    """A normalised search: AOI in WGS84 (a shapely geometry and its bbox), UTC interval, collections, ids,
    cloud-cover ceiling (percent), CQL2 JSON filter, sort keys ``[(field, ascending)]`` and limit."""

    aoi: Any = None
    aoi_bbox: tuple[float, float, float, float] | None = None
    interval: Interval = (None, None)
    collections: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    max_cloud_cover: float | None = None
    filter: dict | None = None
    sortby: tuple[tuple[str, bool], ...] = (("datetime", True),)
    limit: int | None = None


class SearchArgs(TypedDict, total=False):
    """The filters :func:`search` takes as keyword arguments (the one list of them; see there for their meaning).
    Each one left out is None, except ``sortby`` (default ``"datetime"``)."""

    bbox: Sequence[float] | None
    intersects: Any
    crs: Any
    datetime: Any
    collections: str | Sequence[str] | None
    ids: str | Sequence[str] | None
    max_cloud_cover: float | None
    filter: str | dict | None
    sortby: str | Sequence[str] | None
    limit: int | None


#: the value of each :class:`SearchArgs` key that is not given
_SEARCH_DEFAULTS: dict[str, Any] = {**dict.fromkeys(SearchArgs.__annotations__), "sortby": "datetime"}


def make_query(**kwargs: Unpack[SearchArgs]) -> Query:
    """Check and normalise the arguments of :func:`search` (see there); CatalogError names the bad one,
    TypeError an unknown keyword."""
    unknown = sorted(set(kwargs) - set(_SEARCH_DEFAULTS))
    if unknown:
        raise TypeError(
            f"search() got an unexpected keyword argument {unknown[0]!r}; the filters are "
            f"{', '.join(_SEARCH_DEFAULTS)} (and allow)"
        )
    a = {**_SEARCH_DEFAULTS, **kwargs}
    bbox, intersects, crs, max_cloud_cover = a["bbox"], a["intersects"], a["crs"], a["max_cloud_cover"]
    limit, sortby = a["limit"], a["sortby"]
    from odc.geo.geom import Geometry, box

    from orbitcube.catalog.filters import parse_filter

    aoi = None
    src_crs = crs if crs is not None else 4326
    if bbox is not None:
        w, s, e, n = parse_bbox(bbox, geographic=crs is None or _is_lonlat(crs))
        crossing = w > e and crs is None  # STAC: west > east crosses the antimeridian
        if not ((w < e or crossing) and s < n):
            raise CatalogError(
                f"bbox {tuple(bbox)} must be (west, south, east, north) with west < east (or, in lon/lat, "
                "west > east for a box that crosses the antimeridian) and south < north"
            )
        aoi = box(w, s, e, n, crs=src_crs) if not crossing else _crossing_box(w, s, e, n)
    if intersects is not None:
        if isinstance(intersects, Geometry):
            geom = intersects
        else:
            gj = intersects.__geo_interface__ if hasattr(intersects, "__geo_interface__") else intersects
            if isinstance(gj, dict) and gj.get("type") == "Feature":
                gj = gj["geometry"]
            try:
                geom = Geometry(gj, crs=src_crs)
            except Exception as exc:  # shapely raises several types on bad GeoJSON
                raise CatalogError(f"intersects {intersects!r} is not a GeoJSON geometry: {exc}") from exc
        aoi = geom if aoi is None else aoi & geom.to_crs(aoi.crs)
    aoi_bbox = None
    if aoi is not None:
        aoi = aoi.to_crs(4326, resolution=None) if aoi.crs is not None and aoi.crs.epsg != 4326 else aoi
        aoi = normalize_lonlat(aoi.geom)  # a ring that crosses the antimeridian: split at +-180
        aoi_bbox = _lonlat_bbox(aoi)
    if max_cloud_cover is not None and not (0 <= float(max_cloud_cover) <= 100):
        raise CatalogError(f"max_cloud_cover {max_cloud_cover!r} must be a percentage between 0 and 100")
    if limit is not None and (int(limit) != limit or limit < 1):
        raise CatalogError(f"limit {limit!r} must be a positive integer (or None for all)")
    if isinstance(sortby, str):
        sortby = [s.strip() for s in sortby.split(",") if s.strip()]
    keys = []
    for s in sortby or ():
        name = s.lstrip("+-")
        keys.append((name.removeprefix("properties."), not s.startswith("-")))

    def tup(v: Any) -> tuple[str, ...] | None:
        return None if v is None else ((v,) if isinstance(v, str) else tuple(v))

    return Query(
        aoi=aoi,
        aoi_bbox=aoi_bbox,
        interval=parse_datetime(a["datetime"]),
        collections=tup(a["collections"]),
        ids=tup(a["ids"]),
        max_cloud_cover=None if max_cloud_cover is None else float(max_cloud_cover),
        filter=parse_filter(a["filter"]),
        sortby=tuple(keys),
        limit=limit,
    )


def _crossing_box(w: float, s: float, e: float, n: float):
    """The odc-geo Geometry of a lon/lat bbox with west > east: its two parts on either side of +-180."""
    from odc.geo.geom import Geometry

    return Geometry(shapely.union_all([shapely.box(*b) for b in bbox_parts((w, s, e, n))]), crs=4326)


def _lonlat_bbox(geom) -> tuple[float, float, float, float]:
    """The STAC bbox of a normalised lon/lat geometry: west > east when its parts touch both sides of +-180 and
    the gap between them is wider than the span round the antimeridian."""
    w, s, e, n = (float(v) for v in geom.bounds)
    parts = shapely.get_parts(geom)
    if len(parts) > 1 and w <= -180 + 1e-9 and e >= 180 - 1e-9:
        east_side = [p.bounds[0] for p in parts if p.bounds[0] >= 0]  # west edges of the parts east of 0
        west_side = [p.bounds[2] for p in parts if p.bounds[2] < 0]  # east edges of the parts west of 0
        if east_side and west_side and min(east_side) > max(west_side):
            return (min(east_side), s, max(west_side), n)
    return (w, s, e, n)


def search(
    source: Any,
    *,
    allow: Sequence[str] = (),
    storage_options: dict[str, Any] | None = None,
    **query: Unpack[SearchArgs],
) -> pystac.ItemCollection:
    """Items of ``source`` matching every given filter, as a ``pystac.ItemCollection``.

    ``source``: a catalog folder or ``catalog.json`` path, a :class:`~orbitcube.catalog.store.Catalog`, a list or
    ItemCollection of items, an ``http(s)://`` URL of a static catalog or a STAC API, or the ``az://`` / ``s3://``
    URL of a static catalog's catalog.json (e.g. one :func:`orbitcube.catalog.publish.publish_catalog` wrote; credentials
    from ``storage_options``, else from the environment).
    ``bbox`` (west, south, east, north) and ``intersects`` (GeoJSON dict, shapely or odc-geo geometry) are in
    ``crs`` (default EPSG:4326, lon/lat degrees; an odc-geo Geometry carries its own); items match when their
    geometry intersects the area; a lon/lat ``bbox`` with west > east crosses the antimeridian (STAC), and items
    whose footprint crosses it (split at +-180, bbox west > east, or one ring jumping across) are found from
    either side. ``datetime``: ``"2023-01-01/2023-03-31"``, ``"../2023-03"``, ``"2023-06"``,
    a date/datetime, or a (start, end) pair with None for open ends (UTC). ``max_cloud_cover`` in percent
    (items without ``eo:cloud_cover`` do not match). ``filter``: CQL2 text or JSON (see :mod:`orbitcube.catalog.filters`).
    ``sortby``: field names, ``-`` prefix for descending (default ``datetime``, ties by id). At most ``limit``
    items. Local asset hrefs are absolute.
    A catalog's links and the asset hrefs of the items found must stay in the catalog's own tree (its folder, or
    its origin for a URL) or under an ``allow`` entry (a folder, URL prefix or scheme; :mod:`orbitcube.catalog.policy`):
    CatalogError naming the item, asset and href otherwise. Items given as a list are not checked.
    """
    q = make_query(**query)
    from orbitcube.catalog.store import Catalog, open_catalog

    if isinstance(source, Catalog):
        return _search_catalog(source, q, allow)
    if isinstance(source, pystac.ItemCollection | list | tuple):
        return search_items(list(source), q)
    text = str(source)
    if "://" in text and not text.startswith("file://"):  # http(s), az://, s3:// ...
        from orbitcube.catalog.remote import search_remote

        return search_remote(text, q, allow=allow, storage_options=storage_options)
    if not isinstance(source, str | Path):
        raise CatalogError(
            f"cannot search a {type(source).__name__}; give a catalog path, a Catalog, a list of items or a URL"
        )
    cat = open_catalog(source, allow=allow)
    try:
        return _search_catalog(cat, q)
    finally:
        cat.close()


def _search_catalog(cat: Any, q: Query, allow: Sequence[str] = ()) -> pystac.ItemCollection:
    """Search an opened local catalog; the items found must pass its access policy (plus ``allow``)."""
    from orbitcube.catalog.policy import check_items

    found = cat.materialise(select_rows(cat, q))
    check_items(found, cat.policy.allowing(allow) if allow and cat.policy else cat.policy)
    return pystac.ItemCollection(found, clone_items=False)


def search_items(items: list[pystac.Item], q: Query, *, strict: bool = True) -> pystac.ItemCollection:
    """Apply ``q`` to items in memory (same semantics as the index search); returns the original objects.
    ``strict=False``: a filter may name properties none of the items has (for results a server filtered)."""
    if not items:
        return pystac.ItemCollection([])
    from orbitcube.catalog.index import ItemIndex, index_table
    from orbitcube.catalog.store import item_records

    index = ItemIndex(table=index_table(item_records(items)))
    return pystac.ItemCollection([items[i] for i in select_rows(index, q, strict=strict)], clone_items=False)


def _columns(index: ItemIndex) -> dict[str, Any]:
    """Numpy arrays of the columns every search reads (bbox, time, cloud cover), cached on the index."""
    cache = index._cache
    if "xmin" not in cache:
        n = index.num_rows
        if n == 0:
            cache.update(n=0)
            return cache
        names = index.schema.names
        b = index.column("bbox")
        for k in ("xmin", "ymin", "xmax", "ymax"):
            cache[k] = pc.fill_null(pc.cast(b.field(k), pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        start, end = _time_columns(index)
        cache.update(start=start, end=end, n=n)
        cc = index.column("eo:cloud_cover") if "eo:cloud_cover" in names else None
        cache["cloud"] = (
            np.full(n, np.nan)
            if cc is None
            else pc.cast(pc.fill_null(cc, np.nan), pa.float64()).to_numpy(zero_copy_only=False)
        )
    return cache


def _as_us(col: pa.Array) -> np.ndarray:
    """A timestamp column as int64 microseconds since the epoch (UTC), nulls as the int64 minimum."""
    arr = pc.cast(col, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return pc.fill_null(arr, np.iinfo(np.int64).min).to_numpy(zero_copy_only=False)


def _time_columns(index: ItemIndex) -> tuple[np.ndarray, np.ndarray]:
    names = index.schema.names
    null = np.full(index.num_rows, np.iinfo(np.int64).min)
    dtime = _as_us(index.column("datetime")) if "datetime" in names else null
    start = _as_us(index.column("start_datetime")) if "start_datetime" in names else null
    end = _as_us(index.column("end_datetime")) if "end_datetime" in names else null
    nul = np.iinfo(np.int64).min
    lo = np.where(dtime != nul, dtime, start)
    hi = np.where(dtime != nul, dtime, np.where(end != nul, end, np.iinfo(np.int64).max))
    return lo, hi


def _us(t: dt.datetime) -> int:
    return int((t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) / dt.timedelta(microseconds=1))


def select_rows(index: ItemIndex, q: Query, *, strict: bool = True) -> np.ndarray:
    """Row numbers of ``index`` matching ``q``, sorted by ``q.sortby`` (then id) and cut to ``q.limit``.

    Reads only the index columns the query needs (bbox, time, cloud cover, collection/id, the filter's
    properties, the geometry of the candidates). ``strict``: CatalogError when the filter compares a property
    no item has (:func:`orbitcube.catalog.filters.check_properties`)."""
    if strict and q.filter is not None and index.num_rows:
        from orbitcube.catalog.filters import check_properties

        check_properties(q.filter, index.schema)
    if strict and q.collections is not None and index.num_rows:
        _check_collections(index, q.collections)
    c = _columns(index)
    if c["n"] == 0:
        return np.zeros(0, np.int64)
    mask = np.ones(c["n"], bool)
    t0, t1 = q.interval
    if t0 is not None:
        mask &= c["end"] >= _us(t0)
    if t1 is not None:
        mask &= (c["start"] <= _us(t1)) & (c["start"] != np.iinfo(np.int64).min)
    if q.max_cloud_cover is not None:
        mask &= c["cloud"] <= q.max_cloud_cover  # NaN (missing) compares False
    if q.aoi_bbox is not None:
        mask &= _bbox_hits(c, q.aoi_bbox)
    if q.collections is not None:
        if "collection" not in index.schema.names:
            mask[:] = False
        else:
            mask &= pc.fill_null(
                pc.is_in(index.column("collection"), pa.array(q.collections, pa.string())), False
            ).to_numpy(zero_copy_only=False)
    if q.ids is not None:
        mask &= pc.is_in(index.column("id"), pa.array(q.ids, pa.string())).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(mask)
    if q.filter is not None and rows.size:
        from orbitcube.catalog.filters import apply_filter, filter_properties

        names = ["id", *(n for n in filter_properties(q.filter) if n in index.schema.names)]
        rows = rows[apply_filter(index.take(rows, names), q.filter)]
    if q.aoi is not None and rows.size:
        wkb = index.take(rows, ["geometry"]).column(0).to_numpy(zero_copy_only=False)
        geoms = shapely.from_wkb(wkb)
        # footprints that may cross the antimeridian (bbox west > east, or a ring read as a band round the
        # globe) are split at +-180 first, so that a query inside the item finds it
        wide = (c["xmin"][rows] > c["xmax"][rows]) | (c["xmax"][rows] - c["xmin"][rows] > 180)
        for k in np.flatnonzero(wide):
            geoms[k] = normalize_lonlat(geoms[k])
        shapely.prepare(q.aoi)
        rows = rows[shapely.intersects(q.aoi, geoms)]
    return _sort(index, rows, q)


def _bbox_hits(c: dict, bbox: tuple[float, float, float, float]) -> np.ndarray:
    """Rows whose bbox overlaps ``bbox`` (lon/lat); either may cross the antimeridian (west > east)."""
    _, s, _, n = bbox
    lat = (c["ymin"] <= n) & (c["ymax"] >= s)
    cross = c["xmin"] > c["xmax"]
    lon = np.zeros(lat.shape, bool)
    for w, _, e, _ in bbox_parts(bbox):
        normal = (c["xmin"] <= e) & (c["xmax"] >= w)
        split = (c["xmin"] <= e) | (c["xmax"] >= w)  # the item's parts [xmin, 180] and [-180, xmax]
        lon |= np.where(cross, split, normal)
    return lat & lon


def _check_collections(index: ItemIndex, wanted: Sequence[str]) -> None:
    """CatalogError when a requested collection has no item in ``index`` (most likely a typo), naming the
    collections that exist."""
    names = index.schema.names
    have = (
        set(pc.unique(index.column("collection")).drop_null().to_pylist()) if "collection" in names else set()
    )
    unknown = [c for c in wanted if c not in have]
    if unknown:
        raise CatalogError(
            f"collection {unknown[0]!r} has no items here; check the spelling (collections: "
            f"{', '.join(sorted(have)) or 'none: the items carry no collection id'})"
        )


def _sort(index: ItemIndex, rows: np.ndarray, q: Query) -> np.ndarray:
    if rows.size == 0:
        return rows
    keys = [k for k in q.sortby if k[0] != "id"] + [("id", True)]
    sub = {"__row": pa.array(rows)}
    sort_keys = []
    names = index.schema.names
    for i, (name, asc) in enumerate(keys):
        if name not in names:
            raise CatalogError(
                f"cannot sort by {name!r}: no such property in the index; use one of "
                f"{sorted(n for n in names if n not in ('assets', 'links', 'geometry', 'bbox'))}"
            )
        sub[f"k{i}"] = index.take(rows, [name]).column(0)
        sort_keys.append((f"k{i}", "ascending" if asc else "descending"))
    order = pc.sort_indices(pa.table(sub), sort_keys=sort_keys).to_numpy()
    out = rows[order]
    return out[: q.limit] if q.limit else out
