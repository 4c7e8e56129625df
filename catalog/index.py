"""The stac-geoparquet item index: built from item dicts, written sorted in small row groups, read column by column.

Search reads only what it filters on: an :class:`ItemIndex` opened on ``items.parquet`` reads the parquet footer,
then single columns on demand (``bbox``, ``datetime``, ``eo:cloud_cover``, ``collection``, ``id``, ``geometry``,
the properties a CQL2 filter names), caching each. Whole items are decoded only for the matching rows, from the
few row groups that hold them. The index is written sorted by place (a coarse lon/lat cell), then datetime, in
row groups of :data:`ROW_GROUP_ROWS` rows, so that the matches of an area + time search sit in a few neighbouring
row groups and materialising them decodes a few small groups instead of the whole file (a 1,000,000-item index
of Sentinel-2-like items is ~4 GB of Arrow memory; its light columns are ~200 MB).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orbitcube.catalog.errors import CatalogError

#: rows per parquet row group of a written index (decoding one group of S2-like items takes ~5-10 ms)
ROW_GROUP_ROWS = 512
#: size in degrees of the lon/lat cells that order the index (see :func:`sort_table`)
CELL_DEGREES = 2.0
_STATS_COLUMNS = ("id", "collection", "datetime", "start_datetime", "end_datetime", "eo:cloud_cover")


def index_table(dicts: Sequence[dict]) -> pa.Table:
    """stac-geoparquet Arrow table of item dicts (one row per item, properties as columns), one chunk."""
    import stac_geoparquet.arrow as sga

    if not dicts:
        return pa.table({"id": pa.array([], pa.string())})
    no_geometry = [d.get("id") for d in dicts if d.get("geometry") is None]
    if no_geometry:
        raise CatalogError(
            f"item {no_geometry[0]!r} has geometry null ({len(no_geometry)} such item(s)); orbitcube indexes "
            "items by footprint: add the geometry and bbox of each scene, or remove such items"
        )
    reader = sga.parse_stac_items_to_arrow(dicts)
    table = reader.read_all() if hasattr(reader, "read_all") else reader
    return table.combine_chunks()


def _cell_keys(bbox: pa.Array) -> np.ndarray:
    """Z-order (Morton) number of the :data:`CELL_DEGREES` lon/lat cell holding each bbox centre."""
    xy = [
        pc.fill_null(bbox.field(k), 0.0).to_numpy(zero_copy_only=False).astype(np.float64)
        for k in ("xmin", "ymin", "xmax", "ymax")
    ]
    cx, cy = np.nan_to_num((xy[0] + xy[2]) / 2), np.nan_to_num((xy[1] + xy[3]) / 2)
    ix = np.clip((cx + 180) // CELL_DEGREES, 0, 0xFFFF).astype(np.uint64)
    iy = np.clip((cy + 90) // CELL_DEGREES, 0, 0xFFFF).astype(np.uint64)
    key = np.zeros(len(ix), np.uint64)
    for bit in range(16):
        key |= ((ix >> np.uint64(bit)) & np.uint64(1)) << np.uint64(2 * bit)
        key |= ((iy >> np.uint64(bit)) & np.uint64(1)) << np.uint64(2 * bit + 1)
    return key


def sort_table(table: pa.Table) -> pa.Table:
    """Rows in the order the index is written in: by :data:`CELL_DEGREES` cell of the bbox centre (cells in
    Z-order), then datetime (nulls last), then id. Items of one place over any time span, and of one place and
    month, sit in neighbouring rows, so an area + time search decodes few row groups."""
    if table.num_rows < 2:
        return table
    return table.take(sort_order(table)).combine_chunks()


def sort_order(table: pa.Table) -> pa.Array:
    """Row order of :func:`sort_table` (reads only ``bbox``, ``datetime`` and ``id``)."""
    names = table.schema.names
    keys = pa.table(
        {
            "cell": _cell_keys(table.column("bbox").combine_chunks())
            if "bbox" in names
            else np.zeros(table.num_rows, np.uint64),
            "datetime": table.column("datetime") if "datetime" in names else pa.nulls(table.num_rows),
            "id": table.column("id"),
        }
    )
    return pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in keys.column_names])  # nulls last


def write_index(table: pa.Table, path: str | Path) -> None:
    """Write ``table`` as stac-geoparquet (GeoParquet metadata) to ``path`` in row groups of
    :data:`ROW_GROUP_ROWS`; the table is expected to be sorted (:func:`sort_table`)."""
    import stac_geoparquet.arrow as sga

    batches = table.combine_chunks().to_batches(max_chunksize=ROW_GROUP_ROWS)
    reader = pa.RecordBatchReader.from_batches(table.schema, batches)
    # statistics only for the columns search reads (with ~150 leaf columns of assets, per-row-group statistics
    # of every column would make the footer, which every open parses, tens of MB)
    stats = [n for n in table.schema.names if n in _STATS_COLUMNS]
    stats += [f"bbox.{k}" for k in ("xmin", "ymin", "xmax", "ymax")] if "bbox" in table.schema.names else []
    sga.to_parquet(reader, path, compression="zstd", write_statistics=stats)


class ItemIndex:
    """Rows of a stac-geoparquet index, either an in-memory table or an ``items.parquet`` file read lazily.

    ``column(name)`` / ``columns(names)`` return whole columns (cached), ``take(rows)`` decodes complete rows.
    Nothing here knows about the catalog folder; :class:`orbitcube.catalog.store.Catalog` builds on it.
    """

    def __init__(self, table: pa.Table | None = None, path: str | Path | None = None) -> None:
        if (table is None) == (path is None):
            raise ValueError("give exactly one of table or path")
        self._table = table.combine_chunks() if table is not None else None
        self._path = None if path is None else Path(path)
        self._file: pq.ParquetFile | None = None
        self._cols: dict[str, pa.Array] = {}
        self._cache: dict[str, object] = {}  # derived numpy arrays of orbitcube.catalog.query

    def _pf(self) -> pq.ParquetFile:
        if self._file is None:
            self._file = pq.ParquetFile(self._path)
        return self._file

    @property
    def schema(self) -> pa.Schema:
        """Arrow schema of the index (top-level columns: id, geometry, bbox, assets, properties...)."""
        return self._table.schema if self._table is not None else self._pf().schema_arrow

    @property
    def num_rows(self) -> int:
        """Number of items."""
        return self._table.num_rows if self._table is not None else self._pf().metadata.num_rows

    def __len__(self) -> int:
        return self.num_rows

    @property
    def table(self) -> pa.Table:
        """The whole index in memory (every column decoded; for writes, not for search)."""
        if self._table is None:
            self._table = self._pf().read(use_threads=True).combine_chunks()
        return self._table

    def column(self, name: str) -> pa.Array:
        """One top-level column as a single Arrow array (KeyError if the index has no such column)."""
        return self.columns([name]).column(name).chunk(0) if self.num_rows else pa.array([])

    def columns(self, names: Iterable[str]) -> pa.Table:
        """A table of the named top-level columns (read from the file once each, then cached)."""
        names = list(dict.fromkeys(names))
        missing = [n for n in names if n not in self._cols]
        if missing:
            unknown = [n for n in missing if n not in self.schema.names]
            if unknown:
                raise KeyError(unknown[0])
            if self._table is not None:
                got = self._table.select(missing)
            else:
                got = self._pf().read(columns=missing, use_threads=True).combine_chunks()
            for n in missing:
                col = got.column(n)
                self._cols[n] = col.chunk(0) if col.num_chunks == 1 else pa.concat_arrays(col.chunks)
        return pa.table({n: self._cols[n] for n in names})

    def take(self, rows: Sequence[int] | np.ndarray, columns: Sequence[str] | None = None) -> pa.Table:
        """Rows ``rows`` (in that order) of every column, or of ``columns``. Columns already in memory are taken
        from there; from the file, only the row groups holding the rows are decoded (and not cached)."""
        rows = np.asarray(rows, dtype=np.int64)
        names = list(dict.fromkeys(self.schema.names if columns is None else columns))
        if self._table is not None:
            return self._table.select(names).take(pa.array(rows))
        if all(n in self._cols for n in names) or rows.size == 0:
            return (
                self.columns(names).take(pa.array(rows))
                if rows.size
                else self.schema.empty_table().select(names)
            )
        starts = self._group_starts()
        if rows.min() < 0 or rows.max() >= starts[-1]:
            raise IndexError(f"row numbers must be in [0, {starts[-1]})")
        group = np.searchsorted(starts, rows, side="right") - 1
        used = np.unique(group)
        sub = self._pf().read_row_groups(used.tolist(), columns=names, use_threads=True).combine_chunks()
        offset = np.concatenate([[0], np.cumsum(np.diff(starts)[used])])[np.searchsorted(used, group)]
        return sub.take(pa.array(offset + rows - starts[group]))

    def take_fields(self, rows: Sequence[int] | np.ndarray, paths: Sequence[str]) -> dict[str, pa.Array]:
        """Rows ``rows`` (in that order) of columns or nested struct fields named by dotted ``paths``
        (``"id"``, ``"assets.B04.href"``): path -> Arrow array (null where a parent struct is null). From the
        file only those leaves of the row groups holding the rows are decoded; cached columns are reused."""
        rows = np.asarray(rows, dtype=np.int64)
        cached = [p for p in paths if p.split(".")[0] in self._cols or self._table is not None]
        other = [p for p in paths if p not in cached]
        tables = []
        if cached:
            tables.append(self.take(rows, list(dict.fromkeys(p.split(".")[0] for p in cached))))
        if other and rows.size:
            tables.append(self.take(rows, other))
        elif other:
            tables.append(
                self.schema.empty_table().select(list(dict.fromkeys(p.split(".")[0] for p in other)))
            )
        out: dict[str, pa.Array] = {}
        whole: dict[tuple[int, str], pa.Array] = {}
        for p in paths:
            top, *rest = p.split(".")
            n = next(
                n for n, t in enumerate(tables) if top in t.column_names and _has(t.schema.field(top), rest)
            )
            if (n, top) not in whole:
                whole[(n, top)] = tables[n].column(top).combine_chunks()
            arr = whole[(n, top)]
            for name in rest:
                arr = pc.struct_field(arr, name)
            out[p] = arr
        return out

    def _group_starts(self) -> np.ndarray:
        if "group_starts" not in self._cache:
            meta = self._pf().metadata
            sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            self._cache["group_starts"] = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        return self._cache["group_starts"]

    def close(self) -> None:
        """Release the open index file (column caches stay)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _has(f: pa.Field, names: Sequence[str]) -> bool:
    """Whether the struct field ``f`` holds the nested field ``names`` (a path below it)."""
    for name in names:
        if not pa.types.is_struct(f.type) or f.type.get_field_index(name) < 0:
            return False
        f = f.type.field(name)
    return True


def atomic_write_index(table: pa.Table, path: Path) -> None:
    """:func:`write_index` to a temporary file beside ``path``, then rename over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_index(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


__all__ = [
    "CELL_DEGREES",
    "ItemIndex",
    "ROW_GROUP_ROWS",
    "atomic_write_index",
    "index_table",
    "sort_order",
    "sort_table",
    "write_index",
]
