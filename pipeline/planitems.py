"""A plan's items as rows of a local catalog's index: planning a continent without a pystac Item per scene.

:func:`orbitcube.pipeline.plan.plan_run` on a local catalog searches its stac-geoparquet index for row numbers
(:func:`orbitcube.catalog.query.select_rows`) and plans from index columns: the access policy checked on the
distinct asset hrefs, the screening of :func:`orbitcube.pipeline.preflight.screen_items` (its exact checks run on
the few rows a vectorised test cannot clear), footprints from the WKB column, the time axis from the time
columns. Items become pystac Items only where one is needed: the tile the template is built on, a tile being
executed (:meth:`ItemRows.materialise` decodes only the row groups that hold them). The results equal those of the
pystac path (tests/pipeline/test_planitems.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pystac
import shapely

log = logging.getLogger(__name__)

__all__ = [
    "ItemList",
    "ItemRows",
    "RowsFound",
    "check_rows_policy",
    "find_rows",
    "lonlat_from_wkb",
    "plan_rows",
    "rows_anchor",
    "solar_days",
    "time_labels",
]


@contextmanager
def timed(phase: str) -> Iterator[None]:
    """Log (INFO) how long ``phase`` of planning took: ``orbitcube run --dry-run`` prints it on stderr."""
    t0 = time.perf_counter()
    yield
    log.info("plan: %s in %.2f s", phase, time.perf_counter() - t0)


@dataclass(frozen=True, eq=False)
class ItemList:
    """A plan's items held as pystac Items (STAC APIs, static catalogs over HTTP, items given in memory)."""

    items: tuple[pystac.Item, ...]

    def materialise(self, ids: Sequence[str]) -> list[pystac.Item]:
        """The items with ``ids``, in that order."""
        by_id = {it.id: it for it in self.items}
        return [by_id[i] for i in ids]

    def hrefs(self) -> list[str]:
        """Every asset href (absolute)."""
        return [a.get_absolute_href() or a.href for it in self.items for a in it.assets.values()]


@dataclass(frozen=True, eq=False)
class ItemRows:
    """A plan's items held as rows of a local catalog's index: the catalog (folder or catalog.json, opened with
    ``allow`` added to its policy), the row numbers and their ids (aligned). Picklable: the opened catalog is
    not part of the state."""

    catalog: str
    allow: tuple[str, ...]
    rows: np.ndarray
    ids: tuple[str, ...]
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {
            "catalog": self.catalog,
            "allow": self.allow,
            "rows": self.rows,
            "ids": self.ids,
            "_cache": {},
        }

    def __setstate__(self, state: dict) -> None:
        for k, v in state.items():
            object.__setattr__(self, k, v)

    def _open(self):
        if "cat" not in self._cache:
            from orbitcube.catalog.store import open_catalog

            self._cache["cat"] = open_catalog(self.catalog, allow=list(self.allow))
        return self._cache["cat"]

    def materialise(self, ids: Sequence[str]) -> list[pystac.Item]:
        """The items with ``ids`` (in that order) decoded from the index, asset hrefs absolute, checked against
        the catalog's access policy as a search checks them."""
        from orbitcube.catalog.policy import check_items

        if "pos" not in self._cache:
            self._cache["pos"] = {i: n for n, i in enumerate(self.ids)}
        pos = self._cache["pos"]
        cat = self._open()
        found = cat.materialise(self.rows[[pos[i] for i in ids]])
        check_items(found, cat.policy)
        return found

    def hrefs(self) -> list[str]:
        """The distinct asset hrefs of the rows (absolute)."""
        cat = self._open()
        out: set[str] = set()
        for key in _asset_keys(cat):
            col = _fields(cat, self.rows, [f"assets.{key}.href"])[f"assets.{key}.href"]
            out.update(h for h in pc.unique(col).to_pylist() if h is not None)
        return sorted(cat.absolute_href(h) for h in out)


@dataclass
class RowsFound:
    """What :func:`find_rows` found: the rows kept (search order) and their ids, the skipped ids and why, and
    the opened catalog."""

    rows: np.ndarray
    ids: list[str]
    skipped: dict[str, str]
    catalog: Any
    #: per kept row its layout, and per layout (keys read, keys holding the bands): see :func:`_layouts`
    group: np.ndarray
    layouts: list[tuple]


def _asset_keys(cat) -> list[str]:
    t = cat.schema.field("assets").type if "assets" in cat.schema.names else None
    return [f.name for f in t] if t is not None else []


def _fields(cat, rows: np.ndarray, paths: Sequence[str]) -> dict[str, pa.Array]:
    """Columns or nested struct fields (``assets.B04.href``) of index ``rows``: taken from what
    :func:`_prefetch` decoded when it holds them, else only those leaves decoded."""
    pre = cat._cache.get("planitems")
    if pre is not None and all(p in pre[1] for p in paths):
        pos = pre[0][rows]
        if pos.size == 0 or pos.min() >= 0:
            idx = pa.array(pos)
            return {p: pre[1][p].take(idx) for p in paths}
    return cat.take_fields(rows, paths)


def _prefetch(cat, rows: np.ndarray, keys: Sequence[str] | None = None) -> None:
    """Decode, in one pass over the row groups holding ``rows``, the leaves the plan reads of them: ids, times,
    footprints, bboxes, collection, item projection fields and every asset's href; with ``keys``, add the
    projection fields of those assets (the bands') to what was decoded."""
    names = cat.schema.names
    if keys is None:
        paths = [n for n in ("id", "collection", "datetime", "start_datetime", "end_datetime") if n in names]
        paths += ["geometry", *(f"bbox.{k}" for k in ("xmin", "ymin", "xmax", "ymax") if "bbox" in names)]
        paths += [n for n in ("proj:code", "proj:epsg", "proj:transform") if n in names]
        paths += [f"assets.{key}.href" for key in _asset_keys(cat)]
        pos = np.full(cat.num_rows, -1, np.int64)
        pos[rows] = np.arange(len(rows))
        cat._cache["planitems"] = (pos, cat.take_fields(rows, paths), rows)
        cat._cache.pop("shapes", None)
        cat._cache.pop("points", None)
        return
    paths = []
    for key in keys:
        have = {f.name for f in cat.schema.field("assets").type.field(key).type}
        proj = ("proj:transform", "proj:shape", "proj:code", "proj:epsg")
        paths += [f"assets.{key}.{n}" for n in proj if n in have]
    cat._cache["planitems"][1].update(cat.take_fields(rows, paths))


def find_rows(recipe, storage, bands: Sequence[str], mask: bool) -> RowsFound | None:
    """The recipe's search on a local catalog's index, policy-checked and screened as
    :func:`orbitcube.pipeline.plan.search_items` + :func:`orbitcube.pipeline.preflight.screen_items` would do
    on pystac Items; None when the catalog is not a local folder (the caller searches with pystac)."""
    from orbitcube.catalog.query import make_query, select_rows
    from orbitcube.catalog.store import open_catalog
    from orbitcube.pipeline.plan import catalog_policy, search_args

    source = str(recipe.catalog.source)
    if "://" in source and not source.startswith("file://"):
        return None
    q = make_query(**search_args(recipe))
    with timed("index search"):
        cat = open_catalog(source, allow=[str(e) for e in catalog_policy(recipe).allow])
        rows = select_rows(cat, q)
    with timed(f"index columns of {len(rows)} rows"):
        _prefetch(cat, rows)
        ids = _fields(cat, rows, ["id"])["id"].to_pylist()
    with timed("access policy and screening"):
        check_rows_policy(cat, rows, ids)
        group, layouts = _layouts(cat, rows, bands, mask)
        _prefetch(cat, rows, sorted({k for _, band_keys in layouts for k in band_keys}))
        keep, skipped = _screen(cat, rows, bands, mask, group, layouts)
    return RowsFound(rows[keep], [ids[i] for i in np.flatnonzero(keep)], skipped, cat, group[keep], layouts)


def check_rows_policy(cat, rows: np.ndarray, ids: list[str]) -> None:
    """CatalogError naming the first item (search order) and asset whose href the catalog's policy refuses, as
    :func:`orbitcube.catalog.policy.check_items` on the found items; each distinct href checked once."""
    from orbitcube.catalog.policy import check_href, violation

    if cat.policy is None or not rows.size:
        return
    keys = _asset_keys(cat)
    cols = _fields(cat, rows, [f"assets.{k}.href" for k in keys])
    bad_rows = np.full(len(rows), len(keys))  # the first refused asset (position in keys) of each row
    for n, key in enumerate(keys):
        col = cols[f"assets.{key}.href"]
        uniq = pc.unique(col).drop_null().to_pylist()
        refused = [h for h in uniq if violation(cat.absolute_href(h), cat.policy) is not None]
        if refused:
            hit = pc.fill_null(pc.is_in(col, pa.array(refused, pa.string())), False).to_numpy(
                zero_copy_only=False
            )
            bad_rows = np.where(hit & (bad_rows == len(keys)), n, bad_rows)
    first = np.flatnonzero(bad_rows < len(keys))
    if first.size:
        r, key = first[0], keys[bad_rows[first[0]]]
        href = cols[f"assets.{key}.href"][int(r)].as_py()
        check_href(cat.absolute_href(href), cat.policy, what=f"item {ids[r]!r} asset {key!r}")


def _screen(cat, rows: np.ndarray, bands: Sequence[str], mask: bool, group: np.ndarray, layouts: list[tuple]):
    """Which rows a run can load (bool array) and ``{id: reason}`` of the others, exactly as
    :func:`orbitcube.pipeline.preflight.screen_items`: rows that a vectorised test cannot clear (no time,
    a missing asset file, a raster whose extent may miss the footprint) are decoded and screened by it."""
    from orbitcube.pipeline.preflight import screen_items

    keep = np.ones(len(rows), bool)
    if not rows.size:
        return keep, {}
    suspect = _suspects(cat, rows, group, layouts)
    idx = np.flatnonzero(suspect)
    if not idx.size:
        return keep, {}
    items = cat.materialise(rows[idx])
    _, skipped = screen_items(items, bands, mask)
    keep[idx] = [it.id not in skipped for it in items]
    return keep, skipped


def _layouts(cat, rows: np.ndarray, bands: Sequence[str], mask: bool) -> tuple[np.ndarray, list[tuple]]:
    """Rows grouped by layout (collection and the asset keys present): the group of each row, and per group the
    asset keys a load reads (:func:`orbitcube.pipeline.load.requested_keys`) and the keys holding ``bands``
    (by key or eo:bands common name, as the screening matches them), from one decoded item of the group."""
    from orbitcube.pipeline.load import requested_keys

    keys = _asset_keys(cat)
    cols = _fields(cat, rows, [f"assets.{k}.href" for k in keys])
    sig = np.zeros((len(rows), len(keys) + 1), np.int64)
    for n, k in enumerate(keys):
        sig[:, n] = cols[f"assets.{k}.href"].is_valid().to_numpy(zero_copy_only=False)
    if "collection" in cat.schema.names:
        coll = pc.fill_null(_fields(cat, rows, ["collection"])["collection"], "")
        sig[:, -1] = pc.dictionary_encode(coll).indices.to_numpy(zero_copy_only=False)
    _, first, group = np.unique(sig, axis=0, return_index=True, return_inverse=True)
    out = []
    for it in cat.materialise(rows[first]):
        want = set(bands)
        band_keys = [
            k
            for k, a in it.assets.items()
            if {k, *(b.get("common_name") for b in a.extra_fields.get("eo:bands", []) or [])} & want
        ]
        out.append((tuple(requested_keys(it, list(bands), mask)), tuple(band_keys)))
    return group.ravel(), out


def _suspects(cat, rows: np.ndarray, group: np.ndarray, layouts: list[tuple]) -> np.ndarray:
    """Rows the screening might skip: no datetime and no start_datetime, a local file of an asset the load
    reads that does not exist, or a raster of ``bands`` whose extent (proj:transform, proj:shape, proj:code or
    proj:epsg) does not clearly hold a point of the footprint (rows grouped by :func:`_layouts`). Every row the
    screening skips is among them."""
    from orbitcube.pipeline.load import local_path

    names = cat.schema.names
    out = np.zeros(len(rows), bool)
    times = _fields(cat, rows, [n for n in ("datetime", "start_datetime") if n in names])
    no_time = np.ones(len(rows), bool)
    for col in times.values():
        no_time &= col.is_null().to_numpy(zero_copy_only=False)
    out |= no_time
    exists: dict[str, bool] = {}
    for g, (read_keys, band_keys) in enumerate(layouts):
        sel = np.flatnonzero(group == g)
        for key in read_keys:
            col = _fields(cat, rows[sel], [f"assets.{key}.href"])[f"assets.{key}.href"]
            dic = pc.dictionary_encode(col)
            ok = []
            for h in dic.dictionary.to_pylist():
                path = local_path(cat.absolute_href(h))
                if path is not None and path not in exists:
                    exists[path] = os.path.exists(path)
                ok.append(path is None or exists[path])
            idx = pc.fill_null(dic.indices, 0).to_numpy(zero_copy_only=False)
            out[sel] |= ~np.asarray(ok, bool)[idx] if ok else False
        for key in band_keys:
            out[sel] |= ~_holds_footprint(cat, rows[sel], key)
    return out


def _holds_footprint(cat, rows: np.ndarray, key: str) -> np.ndarray:
    """Whether asset ``key``'s raster extent of each row clearly meets the row's footprint: the footprint's
    centroid lies in the footprint and, projected to the raster's CRS, inside its extent less 1 % and a pixel
    (True also where the metadata is missing or rotated: the screening checks nothing there)."""
    from pyproj import Transformer

    sub = cat.schema.field("assets").type.field(key).type
    have = {f.name for f in sub}
    if not {"proj:transform", "proj:shape"} <= have:
        return np.ones(len(rows), bool)
    paths = [f"assets.{key}.proj:transform", f"assets.{key}.proj:shape", "geometry"]
    paths += [f"assets.{key}.{n}" for n in ("proj:code", "proj:epsg") if n in have]
    paths += [n for n in ("proj:code", "proj:epsg") if n in cat.schema.names]
    cols = _fields(cat, rows, paths)
    tr, shape = cols[paths[0]], cols[paths[1]]
    code = _codes(cols, key)
    ok = np.ones(len(rows), bool)
    full = tr.is_valid().to_numpy(zero_copy_only=False) & shape.is_valid().to_numpy(zero_copy_only=False)
    full &= (pc.list_value_length(tr).to_numpy(zero_copy_only=False) >= 6) & (code != None)  # noqa: E711
    idx = np.flatnonzero(full)
    if not idx.size:
        return ok
    t, sh = _matrix(tr.take(pa.array(idx)), 6), _matrix(shape.take(pa.array(idx)), 2)
    north_up = (t[:, 1] == 0) & (t[:, 3] == 0)
    cx, cy, inside = _points(cat, rows[idx])
    x0, y0 = t[:, 2], t[:, 5]
    x1, y1 = x0 + t[:, 0] * sh[:, 1], y0 + t[:, 4] * sh[:, 0]
    res = np.maximum(np.abs(t[:, 0]), np.abs(t[:, 4]))
    margin = 0.01 * np.maximum(np.abs(x1 - x0), np.abs(y1 - y0)) + res
    held = np.zeros(len(idx), bool)
    for c in np.unique(code[idx]):
        sel = code[idx] == c
        try:
            px, py = Transformer.from_crs("EPSG:4326", c, always_xy=True).transform(cx[sel], cy[sel])
        except Exception:  # noqa: BLE001,S112 (an unknown CRS: the screening decides)
            continue
        held[sel] = (
            (px > np.minimum(x0, x1)[sel] + margin[sel])
            & (px < np.maximum(x0, x1)[sel] - margin[sel])
            & (py > np.minimum(y0, y1)[sel] + margin[sel])
            & (py < np.maximum(y0, y1)[sel] - margin[sel])
        )
    ok[idx] = ~north_up | (inside & held)
    return ok


def _shapes(cat, rows: np.ndarray) -> np.ndarray:
    """The rows' WKB footprints as shapely geometries (parsed once for the prefetched rows)."""
    pre = cat._cache.get("planitems")
    if pre is not None and "shapes" not in cat._cache:
        cat._cache["shapes"] = shapely.from_wkb(pre[1]["geometry"].to_numpy(zero_copy_only=False))
    if pre is not None:
        pos = pre[0][rows]
        if pos.size == 0 or pos.min() >= 0:
            return cat._cache["shapes"][pos]
    return shapely.from_wkb(_fields(cat, rows, ["geometry"])["geometry"].to_numpy(zero_copy_only=False))


def _points(cat, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row the centroid (lon, lat) of its footprint and whether the footprint holds it (computed once for
    the prefetched rows)."""
    if "points" not in cat._cache and "planitems" in cat._cache:
        g = _shapes(cat, cat._cache["planitems"][2])
        cx, cy = shapely.get_coordinates(shapely.centroid(g)).T
        cat._cache["points"] = (cx, cy, shapely.contains_xy(g, cx, cy))
    if "points" in cat._cache:
        pos = cat._cache["planitems"][0][rows]
        if pos.size == 0 or pos.min() >= 0:
            return tuple(a[pos] for a in cat._cache["points"])
    g = _shapes(cat, rows)
    cx, cy = shapely.get_coordinates(shapely.centroid(g)).T
    return cx, cy, shapely.contains_xy(g, cx, cy)


def _matrix(lists: pa.Array, width: int) -> np.ndarray:
    """The first ``width`` values of each (non-null, at least ``width`` long) list as an (n, width) float
    array."""
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(float)
    if (lengths == width).all():
        return values.reshape(-1, width)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    return values[starts[:, None] + np.arange(width)]


def _codes(cols: dict[str, pa.Array], key: str) -> np.ndarray:
    """Per row the CRS code of asset ``key`` (object array, None where unknown), with the precedence of
    :func:`orbitcube.pipeline.bands.asset_crs`: asset-level fields win over item-level ones (the asset's
    ``proj:code``, else ``EPSG:`` + its ``proj:epsg``, else the item's ``proj:code``, else its ``proj:epsg``)."""
    n = len(next(iter(cols.values())))
    code = np.full(n, None, dtype=object)
    for p in ("proj:epsg", "proj:code", f"assets.{key}.proj:epsg", f"assets.{key}.proj:code"):  # last wins
        if p in cols:
            enc = pc.dictionary_encode(cols[p].cast(pa.string()) if p.endswith("epsg") else cols[p])
            words = [
                None if x is None else (x if p.endswith("code") else f"EPSG:{x}")
                for x in enc.dictionary.to_pylist()
            ]
            idx = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)
            fmt = np.array(words + [None], dtype=object)[idx]
            code = np.where(fmt != None, fmt, code)  # noqa: E711 (element-wise)
    return code


def plan_rows(recipe, storage, found: RowsFound):
    """:func:`orbitcube.pipeline.plan.plan_run` from index rows (the recipe gives the grid's CRS, resolution
    and AOI): grid, tiles and their items, time axis from index columns; the template's tile decoded."""
    from orbitcube.pipeline.footprints import footprints_from_shapes
    from orbitcube.pipeline.grid import output_grid
    from orbitcube.pipeline.plan import _tile_plans, _tiles, catalog_policy, finish_plan

    cat, rows, g = found.catalog, found.rows, recipe.grid
    bands = recipe.load.bands
    with timed("grid"):
        anchor = rows_anchor(cat, rows, found.group, found.layouts, g.crs, float(g.resolution)) or "edge"
        geobox = output_grid(
            [], crs=g.crs, resolution=g.resolution, aoi=recipe.search.aoi, bands=bands, anchor=anchor
        )
        tiles = _tiles(recipe, geobox)
    names = cat.schema.names
    tcols = [n for n in ("datetime", "start_datetime", "end_datetime") if n in names]
    cols = _fields(cat, rows, ["geometry", *(f"bbox.{k}" for k in ("xmin", "ymin", "xmax", "ymax")), *tcols])
    skipped = dict(found.skipped)
    with timed(f"footprints of {len(rows)} items on the grid"):
        bbox = [
            pc.fill_null(cols[f"bbox.{k}"], np.nan).to_numpy(zero_copy_only=False)
            for k in ("xmin", "ymin", "xmax", "ymax")
        ]
        shapes, lons = lonlat_from_wkb(_shapes(cat, rows), bbox)
        footprints = footprints_from_shapes(shapes, geobox)
    with timed(f"items of {tiles.shape.y * tiles.shape.x} tiles"):
        pos, plans = _tile_plans(found.ids, footprints, geobox, tiles, skipped)
    with timed("time axis"):
        nat = np.full(len(rows), np.datetime64("NaT"), "datetime64[us]")
        t = {n: (_us(cols[n]) if n in cols else nat) for n in ("datetime", "start_datetime", "end_datetime")}
        ids = [found.ids[n] for n in pos.tolist()]
        times = time_labels(*(t[n][pos] for n in t), ids, lons[pos], recipe.load.groupby)
    allow = tuple(str(e) for e in catalog_policy(recipe).allow)
    source = ItemRows(str(recipe.catalog.source), allow, rows[pos], tuple(ids), {"cat": cat})
    with timed("template and bytes"):
        return finish_plan(recipe, storage, geobox, tiles, plans, source, ids, skipped, times)


def _us(col: pa.Array) -> np.ndarray:
    """A timestamp column as datetime64[us] (UTC, naive), NaT where null."""
    return pc.cast(col, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us")).to_numpy(zero_copy_only=False)


def rows_anchor(cat, rows: np.ndarray, group: np.ndarray, layouts: list[tuple], crs: Any, res: float):
    """:func:`orbitcube.pipeline.grid.items_anchor` of the rows' assets that hold the bands (``layouts``), from
    the index columns: the assets in a north-up grid at ``res`` are reduced to their distinct (CRS code,
    transform), which alone decide the anchor."""
    from types import SimpleNamespace

    from orbitcube.pipeline.grid import ALIGN_TOL, items_anchor

    reps: dict[tuple, SimpleNamespace] = {}
    for g, (_, band_keys) in enumerate(layouts):
        sel = rows[group == g]
        for key in band_keys:
            sub = {f.name for f in cat.schema.field("assets").type.field(key).type}
            paths = [f"assets.{key}.{n}" for n in ("proj:transform", "proj:code", "proj:epsg") if n in sub]
            paths += [n for n in ("proj:transform", "proj:code", "proj:epsg") if n in cat.schema.names]
            cols = _fields(cat, sel, paths)
            tr = cols.get(f"assets.{key}.proj:transform")
            if "proj:transform" in cols:
                tr = (
                    cols["proj:transform"]
                    if tr is None
                    else pc.if_else(tr.is_valid(), tr, cols["proj:transform"])
                )
            if tr is None:
                continue
            ok = np.flatnonzero(
                tr.is_valid().to_numpy(zero_copy_only=False)
                & (pc.fill_null(pc.list_value_length(tr), 0).to_numpy(zero_copy_only=False) >= 6)
            )
            if not ok.size:
                continue
            m = _matrix(tr.take(pa.array(ok)), 6)
            near = (np.abs(np.abs(m[:, 0]) - res) <= ALIGN_TOL * res) & (
                np.abs(np.abs(m[:, 4]) - res) <= ALIGN_TOL * res
            )
            near &= (m[:, 1] == 0) & (m[:, 3] == 0)
            code = _codes(cols, key)[ok]
            near &= np.isin(code, [c for c in set(code[near].tolist()) if _same_crs(c, crs)])
            for c, row in zip(code[near].tolist(), m[near].tolist(), strict=True):
                k = (c, *row)
                if k not in reps:
                    reps[k] = SimpleNamespace(
                        properties={},
                        assets={key: SimpleNamespace(extra_fields={"proj:code": c, "proj:transform": row})},
                    )
    return items_anchor(list(reps.values()), None, crs, res)


def _same_crs(code: str | None, crs: Any) -> bool:
    """Whether ``code`` names the CRS ``crs`` (False for None or an unknown code)."""
    from odc.geo.crs import CRS, norm_crs

    try:
        return code is not None and CRS(code) == norm_crs(crs)
    except Exception:  # noqa: BLE001 (pyproj raises several types)
        return False


def lonlat_from_wkb(wkb: np.ndarray, bbox: Sequence[np.ndarray]) -> tuple[list, np.ndarray]:
    """The index's WKB footprints as :func:`orbitcube.pipeline.footprints.shapes_and_centroids` gives the same
    items' GeoJSON: shapes normalised at the antimeridian and poles (only single-ring polygons inside +-180
    without a jump of 180 degrees pass as they are), and the centre of each longitude span (for solar days;
    antimeridian-safe from :func:`orbitcube.catalog.antimeridian.centre_lon` where a shape was normalised)."""
    from orbitcube.catalog.antimeridian import centre_lon, normalize_lonlat
    from orbitcube.pipeline.footprints import _centre_lons

    geoms = wkb if wkb.size and not isinstance(wkb[0], bytes | bytearray) else shapely.from_wkb(wkb)
    n = len(geoms)
    xy, which = shapely.get_coordinates(geoms, return_index=True)
    simple = (shapely.get_type_id(geoms) == 3) & (shapely.get_num_interior_rings(geoms) == 0)
    bad = np.zeros(n, bool)
    jump = np.r_[False, (np.abs(np.diff(xy[:, 0])) >= 180.0) & (which[1:] == which[:-1])]
    np.logical_or.at(bad, which, jump | (np.abs(xy[:, 0]) > 180.0) | ~np.isfinite(xy).all(axis=1))
    given = simple & ~bad
    lons = np.full(n, np.nan)
    if given.any():
        lons[given] = _centre_lons(geoms[given])
    out = list(geoms)
    w, e = bbox[0], bbox[2]
    for k in np.flatnonzero(~given | np.isnan(lons)).tolist():
        if not given[k]:
            out[k] = normalize_lonlat(geoms[k])
        lons[k] = centre_lon(geoms[k], [w[k], bbox[1][k], e[k], bbox[3][k]])
    return out, lons


def time_labels(
    when: np.ndarray, start: np.ndarray, end: np.ndarray, ids: Sequence[str], lons: np.ndarray, groupby: str
) -> np.ndarray:
    """The run's time axis (datetime64[ns], UTC) from the items' ``datetime``, ``start_datetime`` and
    ``end_datetime`` (datetime64[us], NaT where missing) and longitude-span centres, as
    :func:`orbitcube.pipeline.plan.time_axis` gives it from the same pystac Items: sorted distinct solar days
    (``"solar_day"``, :func:`solar_days`) or every acquisition time in (time, id) order (``"time"``)."""
    t = np.where(np.isnat(when), start, when)
    if groupby == "solar_day":
        return np.unique(solar_days(when, start, end, lons)).astype("datetime64[ns]")
    order = sorted(range(len(ids)), key=lambda n: (t[n], ids[n]))
    return t[order].astype("datetime64[ns]")


def solar_days(when: np.ndarray, start: np.ndarray, end: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """:func:`orbitcube.pipeline.timeaxis.solar_day` on arrays (datetime64[us] in, datetime64[D] out): the UTC
    time (``datetime``, else ``start_datetime``) shifted by longitude / 15 h, unless the item gives only a day
    (an interval of at least :data:`~orbitcube.pipeline.timeaxis.UNKNOWN_TIME_SPAN` holding its datetime)."""
    from orbitcube.pipeline.timeaxis import UNKNOWN_TIME_SPAN

    t = np.where(np.isnat(when), start, when)
    span = ~np.isnat(start) & ~np.isnat(end)
    long = span & ((end - start) >= np.timedelta64(UNKNOWN_TIME_SPAN))
    unknown = long & (np.isnat(when) | ((start <= when) & (when <= end)))
    shift = np.round(np.nan_to_num(lons) / 15.0 * 3600e6).astype("int64").astype("timedelta64[us]")
    return np.where(unknown, t, t + shift).astype("datetime64[D]")
