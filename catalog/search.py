"""Search a STAC catalog by area, time, collection, cloud cover; the result is a ``pystac.ItemCollection``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pystac
from odc.geo.geom import Geometry, box

from catalog.errors import CatalogError

Interval = tuple[dt.datetime | None, dt.datetime | None]


def parse_datetime(value: str | dt.datetime | dt.date | Sequence | None) -> Interval:
    """A STAC datetime (``"2023-01-01/2023-03-31"``, ``"../2023-03"``, ``"2023-06"``, a date, or a pair) as a
    closed UTC interval; ``None`` ends are open."""
    if value is None:
        return (None, None)

    def one(v, end: bool) -> dt.datetime | None:
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
        return (one(parts[0], False), one(parts[1], True))
    if isinstance(value, dt.datetime | dt.date):
        return (one(value, False), one(value, True))
    start, end = value
    return (one(start, False), one(end, True))


def _load_items(source) -> list[pystac.Item]:
    if isinstance(source, pystac.ItemCollection):
        return list(source)
    if isinstance(source, list | tuple):
        return list(source)
    path = Path(source)
    if path.is_dir():
        path = path / "catalog.json"
    if not path.exists():
        raise CatalogError(
            f"no STAC catalog at {source}; give a catalog.json path or the folder that holds it"
        )
    try:
        cat = pystac.read_file(str(path))
    except Exception as exc:  # pystac raises several types on bad JSON
        raise CatalogError(f"cannot read STAC catalog {path}: {exc}") from exc
    items = list(cat.get_items(recursive=True)) if hasattr(cat, "get_items") else []
    for it in items:
        it.make_asset_hrefs_absolute()
    return items


def search(
    source,
    *,
    bbox: Sequence[float] | None = None,
    intersects: dict | Geometry | None = None,
    datetime=None,
    collections: Sequence[str] | None = None,
    max_cloud_cover: float | None = None,
    limit: int | None = None,
) -> pystac.ItemCollection:
    """Items of ``source`` (a catalog path or folder, or a list of items) matching every given filter.

    ``bbox`` is (west, south, east, north) in degrees (WGS84); ``intersects`` a GeoJSON geometry (WGS84) or an
    odc-geo Geometry in any CRS; ``datetime`` a STAC datetime or interval; ``max_cloud_cover`` in percent
    (``eo:cloud_cover``). Sorted by datetime, then id; at most ``limit`` items. Asset hrefs are absolute.
    """
    aoi = None
    if bbox is not None:
        w, s, e, n = (float(v) for v in bbox)
        if not (w < e and s < n):
            raise CatalogError(
                f"bbox {tuple(bbox)} must be (west, south, east, north) with west < east, south < north"
            )
        aoi = box(w, s, e, n, crs=4326)
    if intersects is not None:
        geom = intersects if isinstance(intersects, Geometry) else Geometry(intersects, crs=4326)
        geom = geom.to_crs(4326)
        aoi = geom if aoi is None else aoi & geom
    t0, t1 = parse_datetime(datetime)
    out = []
    for it in _load_items(source):
        if collections and it.collection_id not in collections:
            continue
        t = it.datetime
        if t is not None and ((t0 and t < t0) or (t1 and t > t1)):
            continue
        if max_cloud_cover is not None:
            cc = it.properties.get("eo:cloud_cover")
            if cc is None or cc > max_cloud_cover:
                continue
        if aoi is not None and not Geometry(it.geometry, crs=4326).intersects(aoi):
            continue
        out.append(it)
    out.sort(key=lambda i: (i.datetime, i.id))
    return pystac.ItemCollection(out[:limit] if limit else out)
