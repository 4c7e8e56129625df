"""The scenes of a load from the columns of a stac-geoparquet table (orbitcube's item index), without a pystac
Item per row.

:func:`orbitcube.pipeline.load.load_cube` takes such a table (what
:meth:`orbitcube.catalog.index.ItemIndex.take` returns; :func:`index_rows` for a catalog's rows with its local
hrefs made absolute). Rows are grouped by layout -- collection, the product properties the product table reads
and the band/class metadata of every asset (:func:`orbitcube.pipeline.layouts.item_layout`) -- and ONE pystac Item
per layout is materialised to resolve the bands (:class:`orbitcube.pipeline.layouts.BandResolver`); hrefs,
projection fields, times and footprints are read from the columns, vectorised. The result is the same cube as
from the rows' pystac Items (same scenes, time steps, footprints and read tasks: tests/pipeline/test_scenes.py),
held as a :class:`orbitcube.pipeline.readtasks.SceneTable` (arrays) instead of one record per scene.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pystac
import shapely
from odc.geo.geobox import GeoBox

from orbitcube.pipeline.bands import coarsening_at, coarsenings, resampling_for
from orbitcube.pipeline.errors import LoadError
from orbitcube.pipeline.footprints import footprints_from_shapes
from orbitcube.pipeline.layouts import BandResolver, Resolved, ResolvedCheck, table_layouts
from orbitcube.pipeline.reader import AssetSpec
from orbitcube.pipeline.readtasks import SceneTable

__all__ = ["index_rows", "items_table", "table_scenes", "table_to_items"]

log = logging.getLogger(__name__)

_US_PER_DAY = 86_400_000_000
#: interval at least this long (microseconds) holding the datetime: time of day unknown (timeaxis)
_UNKNOWN_SPAN_US = 12 * 3_600_000_000


def items_table(items: Sequence[pystac.Item]) -> pa.Table:
    """The stac-geoparquet table of ``items`` with absolute asset hrefs (what a catalog's index holds, hrefs
    resolved), e.g. to load items kept as a table."""
    from orbitcube.catalog.index import index_table
    from orbitcube.catalog.store import absolute_item_dict

    return index_table([absolute_item_dict(it) for it in items])


def index_rows(index, rows: Sequence[int] | np.ndarray) -> pa.Table:
    """Rows ``rows`` of an :class:`~orbitcube.catalog.index.ItemIndex` as the table ``load_cube`` takes; for a
    :class:`~orbitcube.catalog.store.Catalog`, asset hrefs are checked against the catalog's access policy as a
    search checks them (CatalogError naming the item and asset) and relative local hrefs made absolute
    (:meth:`~orbitcube.catalog.store.Catalog.absolute_href`, as ``materialise`` does)."""
    from orbitcube.pipeline.planitems import check_rows_policy

    table = index.take(rows)
    if not hasattr(index, "absolute_href") or "assets" not in table.schema.names:
        return table
    check_rows_policy(index, np.asarray(rows), table.column("id").to_pylist())
    assets = table.column("assets").combine_chunks()
    fields = []
    for k in assets.type.names:
        a = pc.struct_field(assets, k)
        fixed = _absolute(pc.struct_field(a, "href"), index.absolute_href)
        fields.append(_with_field(a, "href", fixed))
    new = pa.StructArray.from_arrays(fields, names=assets.type.names, mask=pc.invert(assets.is_valid()))
    return table.set_column(table.schema.get_field_index("assets"), "assets", new)


def _absolute(href: pa.Array, absolute) -> pa.Array:
    """``absolute(h)`` of every href (computed once per distinct value)."""
    values = href.to_pylist()
    uniq = {h: absolute(h) for h in set(values) if h is not None}
    return pa.array([None if h is None else uniq[h] for h in values], pa.string())


def _with_field(struct: pa.Array, name: str, values: pa.Array) -> pa.Array:
    names = struct.type.names
    arrays = [values if n == name else pc.struct_field(struct, n) for n in names]
    return pa.StructArray.from_arrays(arrays, names=names, mask=pc.invert(struct.is_valid()))


def table_to_items(table: pa.Table) -> list[pystac.Item]:
    """One pystac Item per row of a stac-geoparquet table (null fields dropped)."""
    import stac_geoparquet.arrow as sga

    return [pystac.Item.from_dict(d, preserve_dict=False) for d in sga.stac_table_to_items(table)]


# ----- the load -----------------------------------------------------------------------------------------------------
def table_scenes(
    table: pa.Table,
    bands: Sequence[str],
    geobox: GeoBox,
    mask: Sequence[str] | None,
    resampling,
    groupby: str,
    on_error: str,
    scale_offset=None,
):
    """The :class:`orbitcube.pipeline.load.Scenes` of a load of ``table``'s rows on ``geobox`` (load_cube's
    arguments), or None when an asset of ``bands`` lacks projection metadata (the caller then decodes the rows to
    pystac Items, whose headers are read). Same checks, errors, warnings and order as the pystac path."""
    from orbitcube.pipeline.load import Scenes, check_load_args, no_item_on

    check_load_args(table.num_rows, bands, on_error, groupby)
    rows = _Rows(table)
    rows.require_times_and_footprints()
    res = _Resolutions(rows, BandResolver(bands, mask, scale_offset), bool(mask))
    if not res.has_proj():
        log.info(
            "some items lack projection metadata for %s: decoding the table to pystac Items", list(bands)
        )
        return None
    keep, skipped = res.check_files(on_error)
    fps, centres = rows.footprints(keep, geobox)
    on_grid = np.array([fp is not None for fp in fps], bool)
    if not on_grid.any():
        raise no_item_on(geobox)
    order = rows.acquisition_order(keep[on_grid])
    at = {int(r): n for n, r in enumerate(keep.tolist())}
    fps = [fps[at[r]] for r in order.tolist()]
    centres = centres[[at[r] for r in order.tolist()]]
    step_of, n_steps, coords = rows.time_steps(order, groupby, centres[:, 2])
    scenes, applied = res.scene_table(order, centres[:, :2], geobox, resampling)
    ids = rows.ids.take(pa.array(order)).to_pylist()
    return Scenes(ids, scenes, step_of, n_steps, coords, fps, skipped, applied)


def _truthy(arr: pa.Array | None) -> np.ndarray | None:
    """Where ``arr`` holds a value Python would find true (non-null, non-empty, non-zero); None: no column."""
    if arr is None:
        return None
    t = arr.type
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
    ):
        n = pc.list_value_length(arr) if not pa.types.is_string(t) else pc.utf8_length(arr)
        got = pc.greater(n, 0)
    elif pa.types.is_null(t):
        return np.zeros(len(arr), bool)
    else:
        got = (
            pc.not_equal(arr, pa.scalar(0, t))
            if pa.types.is_integer(t) or pa.types.is_floating(t)
            else arr.is_valid()
        )
    return np.asarray(pc.fill_null(got, False), dtype=bool)


class _Rows:
    """The columns of a stac-geoparquet table a load reads (item- and asset-level)."""

    def __init__(self, table: pa.Table) -> None:
        for c in ("id", "geometry", "assets"):
            if c not in table.schema.names:
                raise LoadError(
                    f"the item table has no column {c!r}; give a stac-geoparquet table (as "
                    "orbitcube.catalog.index.ItemIndex.take returns) or a list of pystac Items"
                )
        self.table, self.n = table, table.num_rows
        self.ids = table.column("id").combine_chunks()
        self.assets = table.column("assets").combine_chunks()
        self.times = {c: self._us(c) for c in ("datetime", "start_datetime", "end_datetime")}
        dt_, start = self.times["datetime"], self.times["start_datetime"]
        self.t_us = np.where(dt_ != _NULL, dt_, start)  # acquisition time: datetime, else start_datetime

    def column(self, name: str) -> pa.Array | None:
        return self.table.column(name).combine_chunks() if name in self.table.schema.names else None

    def asset_field(self, key: str, field: str) -> pa.Array | None:
        a = pc.struct_field(self.assets, key)
        return pc.struct_field(a, field) if field in a.type.names else None

    def _us(self, name: str) -> np.ndarray:
        col = self.column(name)
        if col is None:
            return np.full(self.n, _NULL, np.int64)
        if not pa.types.is_timestamp(col.type):
            col = pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.int64())
        else:
            col = pc.cast(pc.cast(col, pa.timestamp("us", tz=col.type.tz)), pa.int64())
        return pc.fill_null(col, _NULL).to_numpy(zero_copy_only=False)

    def require_times_and_footprints(self) -> None:
        """:func:`orbitcube.pipeline.preflight.require_times_and_footprints` on the columns."""
        no_geom = ~np.asarray(self.column("geometry").is_valid(), dtype=bool)
        start = _truthy(self.column("start_datetime"))
        no_time = (self.times["datetime"] == _NULL) & (~start if start is not None else True)
        bad = np.flatnonzero(no_geom | no_time)
        if bad.size:
            i = int(bad[0])
            item = self.ids[i].as_py()
            if no_geom[i]:
                raise LoadError(
                    f"item {item!r} has geometry null; add its footprint (geometry and bbox) or drop it"
                )
            raise LoadError(
                f"item {item!r} has datetime null and no start_datetime; set its datetime to the acquisition "
                "time (or start_datetime/end_datetime) or drop it"
            )

    def footprints(self, rows: np.ndarray, geobox: GeoBox) -> tuple[list, np.ndarray]:
        """Footprints of ``rows`` on ``geobox`` (None: off the grid; as :func:`footprints_from_shapes` of
        :func:`~orbitcube.pipeline.footprints.lonlat_shapes`) and per row (lon, lat) of the GeoJSON's
        centroid and the centre of its longitude span (antimeridian-safe)."""
        from orbitcube.catalog.antimeridian import centre_lon, normalize_lonlat

        raw = shapely.from_wkb(self.column("geometry").take(pa.array(rows)).to_numpy(zero_copy_only=False))
        given = _as_given(raw)
        shapes = list(raw)
        centres = np.full((len(raw), 3), np.nan)
        centres[:, :2] = shapely.get_coordinates(shapely.centroid(raw))
        centres[given, 2] = _span_centres(raw[given])
        for i in np.flatnonzero(~given).tolist():
            shapes[i] = normalize_lonlat(shapely.geometry.mapping(raw[i]))
        for i in np.flatnonzero(np.isnan(centres[:, 2])).tolist():  # as timeaxis.solar_day, from the item
            lon = centre_lon(shapely.geometry.mapping(raw[i]), self._bbox(int(rows[i])))
            centres[i, 2] = 0.0 if lon is None else lon
        return footprints_from_shapes(shapes, geobox), centres

    def _bbox(self, row: int) -> list[float] | None:
        col = self.column("bbox")
        d = None if col is None else col[row].as_py()
        if not d:
            return None
        keys = (
            ("xmin", "ymin", "zmin", "xmax", "ymax", "zmax")
            if "zmin" in d
            else ("xmin", "ymin", "xmax", "ymax")
        )
        return [d[k] for k in keys]

    def acquisition_order(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` sorted by acquisition time (UTC), then id."""
        keys = pa.table({"t": self.t_us[rows], "id": self.ids.take(pa.array(rows))})
        return rows[pc.sort_indices(keys, sort_keys=[("t", "ascending"), ("id", "ascending")]).to_numpy()]

    def time_steps(
        self, order: np.ndarray, groupby: str, centre_lons: np.ndarray
    ) -> tuple[np.ndarray, int, dict]:
        """:func:`orbitcube.pipeline.load.time_steps` of the rows ``order``: time step of each, count, coords."""
        t = self.t_us[order]
        if groupby != "solar_day":
            coords = {"time": t.astype("datetime64[us]").astype("datetime64[ns]"),
                      "item_id": ("time", self.ids.take(pa.array(order)).to_pylist())}  # fmt: skip
            return np.arange(len(order), dtype=np.int32), len(order), coords
        dt_ = self.times["datetime"][order]
        start, end = self.times["start_datetime"][order], self.times["end_datetime"][order]
        span = (start != _NULL) & (end != _NULL) & (end - start >= _UNKNOWN_SPAN_US)
        unknown = span & ((dt_ == _NULL) | ((start <= dt_) & (dt_ <= end)))
        shift = np.where(unknown, 0, np.round(centre_lons / 15.0 * 3_600_000_000)).astype(np.int64)
        days = (t + shift) // _US_PER_DAY
        time, step_of = np.unique(days, return_inverse=True)
        coords = {"time": time.astype("datetime64[D]").astype("datetime64[ns]")}
        return step_of.astype(np.int32).reshape(-1), len(time), coords


_NULL = np.iinfo(np.int64).min


def _as_given(raw: np.ndarray) -> np.ndarray:
    """Footprints that :func:`orbitcube.pipeline.footprints.lonlat_shapes` keeps as given: one closed ring of at
    least 4 finite 2D points inside +-180 degrees with no longitude step of 180 degrees or more."""
    ok = (shapely.get_type_id(raw) == 3) & ~shapely.has_z(raw)
    ok[ok] = shapely.get_num_interior_rings(raw[ok]) == 0
    idx = np.flatnonzero(ok)
    rings = shapely.get_exterior_ring(raw[idx])
    xy, which = shapely.get_coordinates(rings, return_index=True)
    counts = np.bincount(which, minlength=len(idx))
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    lon = xy[:, 0]
    step = np.zeros(len(lon), bool)
    step[1:] = np.abs(np.diff(lon)) >= 180.0
    step[starts[counts > 0]] = False
    bad = np.zeros(len(idx), bool)
    np.logical_or.at(bad, which, step | (lon < -180.0) | (lon > 180.0) | ~np.isfinite(xy).all(axis=1))
    ends = np.maximum(starts + counts - 1, 0)
    bad |= counts < 4
    has = counts > 0
    bad[has] |= np.any(xy[starts[has]] != xy[ends[has]], axis=1)
    ok[idx[bad]] = False
    return ok


def _span_centres(polys: np.ndarray) -> np.ndarray:
    """Centre of the longitude span of polygons inside +-180 that do not cross the antimeridian (NaN if they
    span 180 degrees or more), as :func:`orbitcube.catalog.antimeridian.centre_lon` computes it."""
    xy, which = shapely.get_coordinates(polys, return_index=True)
    wrapped = np.mod(xy[:, 0] + 180.0, 360.0) - 180.0
    lo = np.full(len(polys), np.inf)
    hi = np.full(len(polys), -np.inf)
    np.minimum.at(lo, which, wrapped)
    np.maximum.at(hi, which, wrapped)
    mid = ((lo + hi) / 2 + 180.0) % 360.0 - 180.0
    return np.where(hi - lo < 180.0, mid, np.nan)


class _Resolutions:
    """The bands of every row: one :class:`~orbitcube.pipeline.layouts.Resolved` per layout (and date, where the
    product table reads it), from one pystac Item per layout; ``rid`` is each row's."""

    def __init__(self, rows: _Rows, resolver: BandResolver, mask: bool) -> None:
        self.rows, self.resolver, self.mask = rows, resolver, mask
        layout = table_layouts(rows.table)
        _, first = np.unique(layout, return_index=True)
        reps = table_to_items(rows.table.take(pa.array(first)))
        day = rows.t_us // _US_PER_DAY
        self.rid = np.zeros(rows.n, np.int64)
        self.list: list[Resolved] = []
        self.reps: list[pystac.Item] = []
        self._index: dict[int, int] = {}
        self._coarse: dict[tuple, np.ndarray] = {}
        self._sizes_in: dict[tuple, np.ndarray] = {}  # coarsenings' memo: one projection per CRS and centres
        for code, rep in enumerate(reps):
            at = np.flatnonzero(layout == code)
            key = ("table", code)
            if resolver.depends_on_date(rep, key):
                days, inv = np.unique(day[at], return_inverse=True)
                got = [resolver(rep, key, _date(d)) for d in days.tolist()]
                ids = np.array([self._intern(r, rep) for r in got], np.int64)
                self.rid[at] = ids[inv.reshape(-1)]
            else:
                self.rid[at] = self._intern(resolver(rep, key, None), rep)

    def _intern(self, r: Resolved, rep: pystac.Item) -> int:
        if id(r) not in self._index:  # the resolver holds every Resolved: ids stay unique
            self._index[id(r)] = len(self.list)
            self.list.append(r)
            self.reps.append(rep)
        return self._index[id(r)]

    def _rows_of(self, n: int, among: np.ndarray | None = None) -> np.ndarray:
        hit = self.rid == n if among is None else self.rid[among] == n
        return np.flatnonzero(hit) if among is None else among[hit]

    def has_proj(self) -> bool:
        """Whether every row's assets of the requested bands carry a CRS and a transform (asset or item)."""
        crs_item = [_truthy(self.rows.column(f)) for f in _CRS_FIELDS]
        tr_item = _truthy(self.rows.column("proj:transform"))
        for n, r in enumerate(self.list):
            at = self._rows_of(n)
            for key in {ref.key for ref in r.refs if ref is not None}:
                crs = np.zeros(len(at), bool)
                for f, item_level in zip(_CRS_FIELDS, crs_item, strict=True):
                    for v in (_truthy(self.rows.asset_field(key, f)), item_level):
                        crs |= v[at] if v is not None else False
                tr = np.zeros(len(at), bool)
                for v in (_truthy(self.rows.asset_field(key, "proj:transform")), tr_item):
                    tr |= v[at] if v is not None else False
                if not (crs & tr).all():
                    return False
        return True

    def _requested(self, r: Resolved) -> list[str]:
        q = r.quality if self.mask else None
        return list(dict.fromkeys([ref.key for ref in r.refs if ref is not None] + ([q.key] if q else [])))

    def check_files(self, on_error: str) -> tuple[np.ndarray, list[str]]:
        """:func:`orbitcube.pipeline.load.check_items` on the columns: the rows kept and the ids skipped."""
        from orbitcube.pipeline.load import local_path

        if self.mask:  # requested_keys raises the quality layer's error at the first item of such a layout
            bad = [n for n, r in enumerate(self.list) if isinstance(r.quality, LoadError)]
            if bad:
                raise self.list[min(bad, key=lambda n: self._rows_of(n)[0])].quality
        exists: dict[str, bool] = {}
        missing: dict[str, np.ndarray] = {}
        for key in {k for r in self.list for k in self._requested(r)}:
            href = self.rows.asset_field(key, "href")
            enc = pc.dictionary_encode(href)
            ok = []
            for h in enc.dictionary.to_pylist():
                path = local_path(h)
                if path is not None and path not in exists:
                    exists[path] = Path(path).exists()
                ok.append(path is None or exists[path])
            idx = pc.fill_null(enc.indices, 0).to_numpy(zero_copy_only=False)
            missing[key] = ~np.asarray(ok, bool)[idx] if ok else np.zeros(self.rows.n, bool)
        bad = np.zeros(self.rows.n, bool)
        for n, r in enumerate(self.list):
            at = self._rows_of(n)
            for key in self._requested(r):
                bad[at] |= missing[key][at]
        skipped = []
        for i in np.flatnonzero(bad).tolist():
            keys = [k for k in self._requested(self.list[self.rid[i]]) if missing[k][i]]
            item = self.rows.ids[i].as_py()
            if on_error == "fail":
                href = self.rows.asset_field(keys[0], "href")[i].as_py()
                raise LoadError(
                    f"item {item!r} asset {keys[0]!r} cannot be opened: {href} does not exist; fix the href or "
                    "pass on_error='skip' to skip such scenes"
                )
            log.warning("skipping item %s: missing asset(s) %s", item, keys)
            skipped.append(item)
        if len(skipped) == self.rows.n:
            raise LoadError(f"every item was skipped ({len(skipped)}): none of their assets could be opened")
        return np.flatnonzero(~bad), skipped

    def scene_table(self, order: np.ndarray, lonlat: np.ndarray, geobox: GeoBox, resampling) -> tuple:
        """The :class:`SceneTable` of the rows ``order`` (acquisition order; ``lonlat``: their footprints'
        centroids) and the scale/offset applied (``attrs["scale_offset"]``), checked as the pystac path checks
        its items (:class:`~orbitcube.pipeline.layouts.ResolvedCheck`, resolutions in load order)."""
        bands = self.resolver.bands
        check = ResolvedCheck(bands, self.resolver.mask)
        rid = self.rid[order]
        used, first = np.unique(rid, return_index=True)
        names: dict[str, int] = {}
        codes = [np.zeros(len(order), np.int8) for _ in range(len(bands) + 1)]
        slots: list[list] = [[] for _ in range(len(bands) + 1)]  # (positions, asset key) per slot
        templates, coarse = [], {}
        remap = np.zeros(len(self.list), np.int32)
        for n in used[np.argsort(first)].tolist():
            r, rep, pos = self.list[n], self.reps[n], np.flatnonzero(rid == n)
            remap[n] = len(templates)
            q = check(self.rows.ids[int(order[pos[0]])].as_py(), rep.collection_id, r)
            assets = []
            for j, ref in enumerate(r.refs):
                if ref is None:
                    assets.append(None)
                    continue
                hi = resampling_for(resampling, ref, rep, geobox, lambda _i, _k: 2.0)
                lo = resampling_for(resampling, ref, rep, geobox, lambda _i, _k: None)
                codes[j][pos] = names.setdefault(lo, len(names))
                if hi != lo:
                    if ref.key not in coarse:
                        coarse[ref.key] = self._coarsening(ref.key, order, lonlat, geobox)
                    codes[j][pos[coarse[ref.key][pos] >= 1.5]] = names.setdefault(hi, len(names))
                slots[j].append((pos, ref.key))
                assets.append(_template(ref, lo))
            if q is not None:
                codes[-1][pos] = names.setdefault("nearest", len(names))
                slots[-1].append((pos, q.key))
            templates.append(
                (tuple(assets), None if q is None else _template(q, "nearest"), check.decoder(r))
            )
        check.done()
        hrefs = tuple(self._slot_hrefs(s, order) for s in slots)
        ids = self.rows.ids.take(pa.array(order))
        table = SceneTable(ids, remap[rid], hrefs, tuple(codes), tuple(names), tuple(templates))
        return table, self._applied(order, rid)

    def _slot_hrefs(self, pieces: list, order: np.ndarray) -> pa.Array:
        """GDAL paths of one slot's assets for the rows ``order`` (null where a row has no such asset)."""
        from orbitcube.pipeline.load import gdal_href

        pos = [p for p, _ in pieces]
        vals = []
        for p, key in pieces:
            enc = pc.dictionary_encode(self.rows.asset_field(key, "href").take(pa.array(order[p])))
            paths = pa.array([gdal_href(h) for h in enc.dictionary.to_pylist()], pa.string())
            vals.append(paths.take(enc.indices))
        free = np.ones(len(order), bool)
        for p in pos:
            free[p] = False
        rest = np.flatnonzero(free)
        pos.append(rest)
        vals.append(pa.nulls(len(rest), pa.string()))
        return pa.concat_arrays(vals).take(pa.array(np.argsort(np.concatenate(pos), kind="stable")))

    def _coarsening(self, key: str, order: np.ndarray, lonlat: np.ndarray, geobox: GeoBox) -> np.ndarray:
        """:class:`~orbitcube.pipeline.bands.Coarsening` of asset ``key`` for the rows ``order`` (NaN: unknown)."""
        rows = pa.array(order)

        def col(v: pa.Array | None):
            return None if v is None else v.take(rows)

        def first_truthy(sources: list) -> np.ndarray:
            """Per row ``fmt`` of the first source that holds a true value there (lists: of their first
            element), else None; ``fmt`` applied once per distinct value."""
            out = np.full(len(order), None, object)
            for v, fmt in reversed(sources):
                hit = _truthy(v)
                if hit is None or not hit.any():
                    continue
                v = v.filter(pa.array(hit))
                if pa.types.is_list(v.type) or pa.types.is_large_list(v.type):
                    v = pc.list_element(v, 0)
                enc = pc.dictionary_encode(v)
                values = np.array([*map(fmt, enc.dictionary.to_pylist()), None], object)
                out[hit] = values[pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False)]
            return out

        f = self.rows.asset_field
        crs_sources = []
        for level in (lambda name: col(f(key, name)), lambda name: col(self.rows.column(name))):
            crs_sources += [
                (level("proj:code"), str),
                (level("proj:epsg"), "EPSG:{}".format),
                (level("proj:wkt2"), str),
            ]
        crs = first_truthy(crs_sources)
        tr = first_truthy([(col(f(key, "proj:transform")), lambda a: abs(float(a))),
                           (col(self.rows.column("proj:transform")), lambda a: abs(float(a)))])  # fmt: skip
        gsd = first_truthy([(col(f(key, "gsd")), float), (col(self.rows.column("gsd")), float)])
        proj = np.not_equal(tr, None) & np.not_equal(crs, None)
        sizes = np.where(proj, tr, gsd)
        sizes = np.array([math.nan if v is None else v for v in sizes.tolist()], dtype="f8")
        crs = np.where(proj, crs, None)
        same = (sizes.tobytes(), tuple(crs.tolist()))  # assets of one grid (B04, B08): computed once
        if same in self._coarse:
            return self._coarse[same]

        def single(n: int) -> float | None:
            native = (float(sizes[n]), crs[n])
            return coarsening_at(native, tuple(lonlat[n]), geobox)

        got = self._coarse[same] = coarsenings(sizes, crs, lonlat, geobox, single, self._sizes_in)
        return got

    def _applied(self, order: np.ndarray, rid: np.ndarray) -> dict:
        """``attrs["scale_offset"]`` as :func:`orbitcube.pipeline.load._applied` writes it."""
        colls = np.array([self.reps[n].collection_id for n in range(len(self.list))], object)[rid]
        per_coll = {c: int(np.count_nonzero(colls == c)) for c in dict.fromkeys(colls.tolist())}
        used, first = np.unique(rid, return_index=True)
        ids = self.rows.ids.take(pa.array(order))
        out: dict = {}
        for b in range(len(self.resolver.bands)):
            groups: dict[tuple, list] = {}
            for n in used[np.argsort(first)].tolist():
                ref = self.list[n].refs[b]
                if ref is not None:
                    rec = (1.0, 0.0, "none") if ref.is_quality else (ref.scale, ref.offset, ref.source)
                    groups.setdefault((self.reps[n].collection_id, *rec), []).append(np.flatnonzero(rid == n))
            out[self.resolver.bands[b]] = [
                {"collection": c, "scale": sc, "offset": of, "source": src,
                 **({} if sum(map(len, pos)) == per_coll[c] else
                    {"items": ids.take(pa.array(np.sort(np.concatenate(pos)))).to_pylist()})}
                for (c, sc, of, src), pos in groups.items()
            ]  # fmt: skip
        return out


def _template(ref, resampling: str) -> AssetSpec:
    """The :class:`AssetSpec` of ``ref`` with an empty href (filled per scene by :class:`SceneTable`)."""
    return AssetSpec("", ref.nodata, ref.scale, ref.offset, ref.index, resampling, ref.is_quality, ref.key)


_CRS_FIELDS = ("proj:code", "proj:epsg", "proj:wkt2")


def _date(day: int):
    import datetime as dt

    return dt.date(1970, 1, 1) + dt.timedelta(days=day)
