"""Quality layers decoded from their STAC metadata: which asset is the quality layer, and which of its pixel values
or bit fields a list of mask names removes.

Client side, per item: :func:`quality_asset_key` picks the quality asset and :func:`quality_decoder` turns the
requested mask names (vocabulary in :mod:`orbitcube.catalog.classes`) into a :class:`QualityDecoder`, a small frozen,
hashable, picklable record that travels in the Dask graph inside :class:`orbitcube.pipeline.reader.SceneSpec`. Worker side,
:meth:`QualityDecoder.mask` turns the layer's pixels into a boolean mask.

Where the decoding comes from, in order: the asset's ``classification:bitfields`` (offset, length, classes with
value and name), ``classification:classes`` (value, name), ``file:values`` (values, summary) -- on the asset or
in its first ``raster:bands`` entry -- and else orbitcube's built-in knowledge by asset key (``SCL``,
``QA_PIXEL``, ``Fmask``: :mod:`orbitcube.catalog.classes`). A class matches a mask name when its normalised name (for a
one-bit field whose class value is 1, also the field's name; for a wider field, also ``<field>_<class>``, e.g.
``cloud_confidence_high``) is one of the name's synonyms
(:data:`orbitcube.catalog.classes.MASK_SYNONYMS`). A requested name the layer cannot decode is a :class:`LoadError`
naming the item, the collection and the classes the layer offers, raised before any pixel is read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import pystac

from orbitcube.catalog.classes import (
    BUILTIN_LAYERS,
    MASK_NAMES,
    MASK_SYNONYMS,
    OPTIONAL_MASK_NAMES,
    builtin_layer,
    canonical_mask_name,
    normalise_name,
    unknown_mask_names,
)
from orbitcube.pipeline.errors import LoadError

log = logging.getLogger(__name__)

CLASS_FIELDS = ("classification:bitfields", "classification:classes", "file:values")

__all__ = [
    "CLASS_FIELDS",
    "QualityDecoder",
    "check_mask_names",
    "decoder_from_fields",
    "layer_decoder",
    "quality_asset_key",
    "quality_decoder",
]


@dataclass(frozen=True)
class QualityDecoder:
    """Which pixels of a quality layer to mask: class values (``kind="values"``) or bit fields (``"bits"``).

    ``values``: the pixel values to mask. ``bits``: ``(offset, length, values)`` per bit field, masked where
    ``(pixel >> offset) & (2**length - 1)`` is one of ``values``. ``nodata``: also mask the layer's nodata value
    (the user asked for ``nodata``). ``names``: the mask names decoded (for messages and logs).
    """

    kind: Literal["values", "bits"]
    values: tuple[int, ...] = ()
    bits: tuple[tuple[int, int, tuple[int, ...]], ...] = ()
    nodata: bool = False
    names: tuple[str, ...] = ()

    def mask(self, q: np.ndarray) -> np.ndarray:
        """True where the layer ``q`` (any shape, integer or float class values) is to be masked."""
        q = np.asarray(q)
        if q.dtype == np.uint8:
            return _lut8(self)[q]  # a table lookup: several times faster than np.isin on uint8
        return self._decode(q)

    def _decode(self, q: np.ndarray) -> np.ndarray:
        finite = None
        if not np.issubdtype(q.dtype, np.integer):
            finite = np.isfinite(q)
            q = np.where(finite, q, 0)
        q = q.astype(np.int64, copy=False)
        if self.kind == "values":
            bad = np.isin(q, self.values)
        else:
            bad = np.zeros(q.shape, bool)
            flags = sum(1 << off for off, length, vals in self.bits if length == 1 and vals == (1,))
            if flags:
                bad |= (q & flags) != 0
            for off, length, vals in self.bits:
                if not (length == 1 and vals == (1,)):
                    bad |= np.isin((q >> off) & ((1 << length) - 1), vals)
        return bad if finite is None else bad & finite


@lru_cache(maxsize=64)
def _lut8(decoder: QualityDecoder) -> np.ndarray:
    return decoder._decode(np.arange(256, dtype=np.uint8))


def check_mask_names(mask: Sequence[str] | None) -> tuple[str, ...]:
    """``mask`` as canonical names (aliases resolved, order kept, no repeats); LoadError for unknown names."""
    if isinstance(mask, str):
        mask = [mask]
    bad = unknown_mask_names(mask or ())
    if bad:
        raise LoadError(f"unknown mask name(s) {bad}; choose from {list(MASK_NAMES)}")
    return tuple(dict.fromkeys(canonical_mask_name(n) for n in mask or ()))


def _class_fields(asset: pystac.Asset) -> dict:
    fields = {k: asset.extra_fields[k] for k in CLASS_FIELDS if asset.extra_fields.get(k)}
    if not fields:
        band = (asset.extra_fields.get("raster:bands") or asset.extra_fields.get("bands") or [{}])[0]
        fields = {k: band[k] for k in CLASS_FIELDS if isinstance(band, dict) and band.get(k)}
    return fields


def quality_asset_key(item: pystac.Item) -> str | None:
    """The asset key of ``item``'s quality layer, or None: a built-in quality key (SCL, QA_PIXEL, Fmask, any
    case) first, then an asset with classification metadata whose roles include ``cloud``, then the first asset
    with classification metadata (``classification:bitfields`` / ``classification:classes`` / ``file:values``)."""
    keys = list(item.assets)
    for k in keys:
        if normalise_name(k) in BUILTIN_LAYERS:  # builtin_layer(k) is not None, without building its classes
            return k
    classified = [k for k in keys if _class_fields(item.assets[k])]
    for k in classified:
        if "cloud" in (item.assets[k].roles or []):
            return k
    return classified[0] if classified else None


def quality_decoder(item: pystac.Item, key: str, mask: Sequence[str]) -> QualityDecoder:
    """The decoder of asset ``key`` of ``item`` for the mask names ``mask``: from the asset's classification
    metadata, else built-in knowledge of the key. LoadError (naming the item, collection and the classes the
    layer offers) when a name cannot be decoded or the layer is unknown."""
    names = check_mask_names(mask)  # unknown names fail first, whatever the layer
    fields = _class_fields(item.assets[key])
    source = f"the {' / '.join(fields)} of asset {key!r}"
    if not fields:
        builtin = builtin_layer(key)
        if builtin is None:
            raise LoadError(
                f"item {item.id!r} (collection {item.collection_id!r}): its quality layer {key!r} has no "
                "classification metadata (classification:bitfields, classification:classes or file:values) and "
                "orbitcube has no built-in knowledge of it; add the metadata to the asset or pass mask=None"
            )
        product, fields = builtin
        source = f"orbitcube's built-in {product} classes for asset {key!r}"
    return layer_decoder(fields, names, f"item {item.id!r} (collection {item.collection_id!r}), {source}")


def layer_decoder(fields: dict, names: Sequence[str], where: str) -> QualityDecoder:
    """The decoder of mask ``names`` for a layer described by STAC classification ``fields``
    (``{"classification:bitfields": [...]}`` or ``classes`` or ``file:values``); ``where`` names the layer in the
    LoadError raised for a name the layer cannot decode."""
    try:
        return decoder_from_fields(json.dumps(fields, sort_keys=True), check_mask_names(names))
    except _Undecodable as exc:
        missing, offered = exc.args
        raise LoadError(
            f"{where}: mask name(s) {list(missing)} cannot be decoded from this quality layer; this product "
            f"offers {offered}; choose among those or pass mask=None"
        ) from None


class _Undecodable(Exception):
    """(names that match no class, description of what the layer offers)"""


@lru_cache(maxsize=256)
def decoder_from_fields(fields_json: str, names: tuple[str, ...]) -> QualityDecoder:
    """The decoder of canonical mask ``names`` for a layer described by STAC classification fields (JSON text of
    ``{"classification:bitfields": [...]}``, ``{"classification:classes": [...]}`` or ``{"file:values": [...]}``).
    Raises ``_Undecodable`` when a required name matches no class. Cached: items of one product share it."""
    fields = json.loads(fields_json)
    entries = _entries(fields)  # (offset, length, value, {candidate names}, label)
    kind = "bits" if "classification:bitfields" in fields else "values"
    chosen: dict[tuple[int, int], set[int]] = {}
    missing = []
    for name in names:
        syn = set(MASK_SYNONYMS[name])
        hits = [e for e in entries if e[3] & syn]
        if not hits and name not in OPTIONAL_MASK_NAMES:
            missing.append(name)
        elif not hits:
            log.debug("mask name %r: the quality layer has no such class; ignored", name)
        for off, length, value, _, _ in hits:
            chosen.setdefault((off, length), set()).add(value)
    if missing:
        decodable = [n for n in MASK_SYNONYMS if any(e[3] & set(MASK_SYNONYMS[n]) for e in entries)]
        labels = [
            e[4] for e in entries if not (e[1] > 0 and e[2] == 0)
        ]  # bit fields: not the "not set" classes
        offered = f"mask names {decodable} (its classes: {', '.join(labels)})"
        raise _Undecodable(tuple(missing), offered)
    if kind == "values":
        return QualityDecoder(
            "values", values=tuple(sorted(chosen.get((0, 0), ()))), nodata="nodata" in names, names=names
        )
    bits = tuple((off, length, tuple(sorted(v))) for (off, length), v in sorted(chosen.items()))
    return QualityDecoder("bits", bits=bits, nodata="nodata" in names, names=names)


def _entries(fields: dict) -> list[tuple[int, int, int, frozenset[str], str]]:
    """Every class of the layer as (offset, length, value, normalised candidate names, label for messages);
    offset and length are 0 for value classes."""
    out = []
    for f in fields.get("classification:bitfields") or []:
        off, length, fname = int(f["offset"]), int(f["length"]), normalise_name(f.get("name", ""))
        for c in f.get("classes", []):
            cname = normalise_name(c.get("name") or c.get("description") or "")
            cands = {cname}
            if length == 1 and int(c["value"]) == 1 and fname:
                cands.add(fname)  # a flag: the field's own name says what a set bit means
            elif length > 1 and fname and cname:
                cands.add(f"{fname}_{cname}")  # a level: "cloud_confidence" + "high"
            label = f"{fname or off}={cname}" if fname and fname != cname else cname
            out.append((off, length, int(c["value"]), frozenset(cands - {""}), label))
    if out:
        return out
    for c in fields.get("classification:classes") or []:
        cname = normalise_name(c.get("name") or c.get("title") or c.get("description") or "")
        out.append((0, 0, int(c["value"]), frozenset({cname} - {""}), f"{c['value']}={cname}"))
    for entry in fields.get("file:values") or []:
        cname = normalise_name(entry.get("summary", ""))
        for v in entry.get("values", []):
            out.append((0, 0, int(v), frozenset({cname} - {""}), f"{v}={cname}"))
    return out
