"""Band resolution once per item layout: the items of one collection and asset layout resolve every band alike.

A load of 100,000 items resolved each requested band, the quality layer and its decoder for every item (several
times over: checking files, projection metadata, then the scenes). What :func:`orbitcube.pipeline.bands.
locate_band` and :mod:`orbitcube.pipeline.quality` read from an item is its *layout* (:func:`item_layout`):
the collection, the few properties the product table reads, and the band and class metadata of its assets --
not hrefs, footprints or ``proj:*``, which differ from scene to scene. :class:`BandResolver` resolves each
layout once (and the product table's scale/offset once per layout and date, Sentinel-2's offset depending on
the acquisition date); :class:`ResolvedCheck` applies the load's checks to the result in load order, so that
errors and warnings are those of the per-item resolution.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pystac

from orbitcube.pipeline.bands import (
    BandRef,
    _check_encoding,
    encoded,
    item_date,
    locate_band,
    with_user_encoding,
)
from orbitcube.pipeline.errors import LoadError
from orbitcube.pipeline.quality import QualityDecoder, quality_asset_key, quality_decoder

__all__ = [
    "BandResolver",
    "LAYOUT_FIELDS",
    "PRODUCT_PROPERTIES",
    "Resolved",
    "ResolvedCheck",
    "item_layout",
    "table_layouts",
]


#: the item properties the product table reads (:func:`orbitcube.catalog.products.product_of` and
#: ``s2_l2a_offset``): part of an item's layout (tests/pipeline/test_bands.py checks the list against that module)
PRODUCT_PROPERTIES = (
    "platform",
    "s2:processing_baseline",
    "processing:version",
    "earthsearch:boa_offset_applied",
    "landsat:collection_number",
    "landsat:correction",
)
#: the asset fields :func:`locate_band` and the quality layer's choice and decoding read (hrefs and ``proj:*``
#: differ from scene to scene and are not part of a layout)
LAYOUT_FIELDS = (
    "eo:bands",
    "bands",
    "raster:bands",
    "classification:bitfields",
    "classification:classes",
    "file:values",
)


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def item_layout(item: pystac.Item) -> tuple:
    """What band resolution reads from ``item`` apart from its date, as a hashable key: the collection, the
    :data:`PRODUCT_PROPERTIES` (absent or their values) and, per asset in order, its key, roles and
    :data:`LAYOUT_FIELDS` (absent or their values). Items with equal layouts resolve every band alike on the
    same date (:func:`locate_band`, :func:`~orbitcube.pipeline.quality.quality_asset_key`,
    :func:`~orbitcube.pipeline.quality.quality_decoder`)."""
    p = item.properties
    props = repr([p.get(k, _ABSENT) for k in PRODUCT_PROPERTIES])
    assets = tuple(
        (k, repr(a.roles), repr([a.extra_fields.get(f, _ABSENT) for f in LAYOUT_FIELDS]))
        for k, a in item.assets.items()
    )
    return (item.collection_id, props, assets)


class Resolved(NamedTuple):
    """The bands of one item as a load reads them: per requested band its BandRef (user's scale/offset applied)
    or the LoadError saying why the item lacks it; the quality layer (None: it has none; a LoadError: its metadata
    is wrong); with a mask, the quality layer's decoder or the LoadError saying why it cannot decode the mask."""

    refs: tuple[BandRef | None, ...]
    errors: tuple[LoadError | None, ...]
    quality: BandRef | LoadError | None
    decoder: QualityDecoder | LoadError | None


class _Layout:
    """One layout's resolution (from its first item), and its :class:`Resolved` per date when the product table
    decides a scale/offset (once otherwise)."""

    def __init__(self, item: pystac.Item, resolver: BandResolver) -> None:
        self.collection, self.props = item.collection_id, dict(item.properties)
        self.located: list = [_located(item, b) for b in resolver.bands]
        qkey = quality_asset_key(item)
        self.quality = None if qkey is None else _located(item, qkey)
        self.decoder: QualityDecoder | LoadError | None = None
        if resolver.mask and qkey is not None:
            try:
                self.decoder = quality_decoder(item, qkey, resolver.mask)
            except LoadError as exc:
                self.decoder = exc
        self.dated = any(isinstance(v, tuple) and v[1] is not None for v in [*self.located, self.quality])
        self.by_date: dict = {}

    def at(self, date: dt.date | None, scale_offset) -> Resolved:
        key = date if self.dated else None
        got = self.by_date.get(key)
        if got is None:
            refs, errors = [], []
            for v in self.located:
                ref = self._ref(v, date)
                refs.append(None if isinstance(ref, LoadError) else with_user_encoding(ref, scale_offset))
                errors.append(ref if isinstance(ref, LoadError) else None)
            q = None if self.quality is None else self._ref(self.quality, date)
            got = self.by_date[key] = Resolved(tuple(refs), tuple(errors), q, self.decoder)
        return got

    def _ref(self, v, date: dt.date | None) -> BandRef | LoadError:
        if isinstance(v, LoadError):
            return v
        ref, table = v
        return ref if table is None else encoded(ref, table, self.collection, self.props, date)


def _located(item: pystac.Item, name: str):
    try:
        return locate_band(item, name)
    except LoadError as exc:
        return exc


class BandResolver:
    """:func:`resolve_band` of ``bands`` (then the user's ``scale_offset``: :func:`with_user_encoding`), the
    quality layer and, with ``mask``, its decoder, for the items of one load: worked out once per item layout
    (:func:`item_layout`) from its first item, and the product table's scale/offset once per layout and date,
    instead of once per item and band (100,000 items of one collection: a few resolutions, not a million). A
    LoadError held in a :class:`Resolved` names the first item of its layout: the first item the per-item
    resolution would have stopped at, when items are resolved in load order."""

    def __init__(
        self,
        bands: Sequence[str],
        mask: Sequence[str] | None = None,
        scale_offset: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.bands, self.mask, self.scale_offset = tuple(bands), tuple(mask or ()), scale_offset
        self._layouts: dict[tuple, _Layout] = {}

    def __call__(self, item: pystac.Item, layout: tuple | None = None, date=_ABSENT) -> Resolved:
        """The :class:`Resolved` of ``item`` (of layout ``layout`` and product-table date ``date`` when the
        caller knows them; else :func:`item_layout` and :func:`item_date` of the item)."""
        key = item_layout(item) if layout is None else layout
        lay = self._layouts.get(key)
        if lay is None:
            lay = self._layouts[key] = _Layout(item, self)
        return lay.at(item_date(item) if date is _ABSENT else date, self.scale_offset)

    def depends_on_date(self, item: pystac.Item, layout: tuple) -> bool:
        """Whether the product table decides a scale/offset of items of layout ``layout`` (``item`` one of
        them), so that their resolution depends on the acquisition date."""
        if layout not in self._layouts:
            self._layouts[layout] = _Layout(item, self)
        return self._layouts[layout].dated

    def __len__(self) -> int:
        return len(self._layouts)


class ResolvedCheck:
    """What a load checks of each item's :class:`Resolved`, called in load order (``check(id, collection,
    resolved)``, then ``check.decoder(resolved)`` once the item's resampling is decided, then ``check.done()``):
    a band no item of a collection has is a wrong band name (LoadError once all items are seen; items of a mixed
    load may lack it); the encodings are checked once per resolution (:func:`check_encoding`); with ``mask``, an
    item without a quality layer, or whose layer cannot decode the mask, is a LoadError naming it."""

    def __init__(self, bands: Sequence[str], mask: Sequence[str] | None) -> None:
        self.bands, self.mask = tuple(bands), tuple(mask or ())
        self.per_coll: dict = {}  # (collection, band) -> True, or the first LoadError while no item has it
        self.warned: set = set()
        self._seen: set[int] = set()

    def __call__(self, item_id: str, collection: str | None, r: Resolved) -> BandRef | None:
        """The item's quality layer when the load masks (else None), after recording its bands."""
        for b, err in zip(self.bands, r.errors, strict=True):
            if err is not None:
                self.per_coll.setdefault((collection, b), err)
            else:
                self.per_coll[(collection, b)] = True
        if id(r) not in self._seen:
            self._seen.add(id(r))
            for ref in r.refs:
                if ref is not None:
                    _check_encoding(collection, ref, self.warned)
        if not self.mask:
            return None
        if isinstance(r.quality, LoadError):
            raise r.quality
        if r.quality is None:
            raise LoadError(
                f"item {item_id!r} of collection {collection!r} has no quality layer (SCL, QA_PIXEL, Fmask or "
                f"an asset with classification metadata) to apply mask={list(self.mask)}; pass mask=None"
            )
        return r.quality

    def decoder(self, r: Resolved) -> QualityDecoder | None:
        """The item's quality decoder when the load masks (LoadError, before any read, when it cannot)."""
        if not self.mask or r.quality is None:
            return None
        if isinstance(r.decoder, LoadError):
            raise r.decoder
        return r.decoder

    def done(self) -> None:
        """LoadError for a band that no item of a collection has (a wrong band name)."""
        for v in self.per_coll.values():
            if isinstance(v, LoadError):
                raise v


# ----- row codes: equal codes <=> equal values ----------------------------------------------------------------------
def _codes(arr: pa.Array) -> np.ndarray:
    """One int64 per row, equal for two rows exactly when their values are (nested types included; nulls equal
    to each other, unequal to every value)."""
    t = arr.type
    if pa.types.is_struct(t):
        cols = [_codes(pc.struct_field(arr, i)) for i in range(t.num_fields)]
        return _combine([np.asarray(arr.is_valid(), dtype=np.int64), *cols])
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        lengths = pc.fill_null(pc.list_value_length(arr), -1).to_numpy(zero_copy_only=False).astype(np.int64)
        elems = _codes(pc.list_flatten(arr)) if len(arr) else np.zeros(0, np.int64)
        width = int(max(lengths.max(initial=0), 0))
        mat = np.full((len(arr), width + 1), -2, np.int64)
        mat[:, 0] = lengths
        if elems.size:
            n = np.maximum(lengths, 0)
            rows = np.repeat(np.arange(len(arr)), n)
            cols = np.arange(elems.size) - np.repeat(np.cumsum(n) - n, n) + 1
            mat[rows, cols] = elems
        return _combine(list(mat.T))
    if pa.types.is_null(t):
        return np.zeros(len(arr), np.int64)
    enc = pc.dictionary_encode(arr).indices
    return pc.fill_null(enc, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _combine(cols: list[np.ndarray]) -> np.ndarray:
    """Codes of the rows of several code columns (each >= -2) taken together: pairs of codes folded into one
    number (below ``n**2``), renumbered after each column."""
    out = np.zeros(len(cols[0]) if cols else 0, np.int64)
    for c in cols:
        c = c + 2
        out = np.unique(out * (int(c.max(initial=0)) + 1) + c, return_inverse=True)[1].reshape(-1)
    return out


def table_layouts(table: pa.Table) -> np.ndarray:
    """Layout code of each row of a stac-geoparquet table (:func:`item_layout` from the columns: rows with
    equal codes have equal layouts): collection,
    :data:`PRODUCT_PROPERTIES` and, per asset, whether the row has it, its roles and :data:`LAYOUT_FIELDS`."""
    names = table.schema.names
    cols = [
        _codes(table.column(c).combine_chunks()) for c in ("collection", *PRODUCT_PROPERTIES) if c in names
    ]
    assets = table.column("assets").combine_chunks()
    for k in assets.type.names:
        a = pc.struct_field(assets, k)
        cols.append(np.asarray(a.is_valid(), dtype=np.int64))
        for f in ("roles", *LAYOUT_FIELDS):
            if f in a.type.names:
                cols.append(_codes(pc.struct_field(a, f)))
    return _combine(cols) if cols else np.zeros(table.num_rows, np.int64)
