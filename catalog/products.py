"""What real products encode but their STAC items do not always say: one small table of product knowledge.

Real catalogs are often silent about radiometry: the Planetary Computer serves Sentinel-2 L2A with no
``raster:bands`` (so the BOA offset of processing baseline >= 04.00 is never stated), USGS serves Landsat
Collection 2 Level-2 with no ``raster:bands`` at all. This table fills in *only where the item says nothing*
(``raster:bands`` scale/offset on the asset win), and it is the single source of these numbers: the ingest
patterns (:mod:`orbitcube.catalog.patterns`) and the loader (:mod:`orbitcube.pipeline.load`) both read it.

Products are recognised by collection id (Planetary Computer, Earth Search, USGS, the orbitcube simulator),
else by platform and properties. Bands are recognised by asset key or eo common name.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pystac

#: Sentinel-2 L2A: reflectance = DN / 10000 (baselines < 04.00), DN / 10000 - 0.1 from baseline 04.00 on
S2_L2A_SCALE = 1e-4
S2_L2A_BOA_OFFSET = -0.1
#: the first day products of processing baseline 04.00 were distributed (ESA, 25 January 2022)
S2_BASELINE_0400_DATE = dt.date(2022, 1, 25)
#: Landsat Collection 2 Level-2 surface reflectance and surface temperature (kelvin)
LANDSAT_C2_SR = (2.75e-05, -0.2)
LANDSAT_C2_ST = (0.00341802, 149.0)

S2_L2A_COLLECTIONS = frozenset({"sentinel-2-l2a", "sentinel-2-l2a-sim", "sentinel-2-c1-l2a"})
LANDSAT_C2_L2_COLLECTIONS = frozenset(
    {"landsat-c2-l2", "landsat-c2-l2-sim", "landsat-c2l2-sr", "landsat-c2l2-st"}
)
#: products whose values are physical units or plain digital numbers as stored (no warning, no scaling)
AS_STORED_COLLECTIONS = frozenset({"cop-dem-glo-30", "cop-dem-glo-90", "nasadem", "sentinel-1-rtc", "naip"})
#: integer class layers (land cover): nearest (or mode when coarser), never averaged
CLASS_COLLECTIONS = frozenset({"io-lulc", "io-lulc-9-class", "io-lulc-annual-v02", "esa-worldcover"})

_S2_REFLECTANCE = re.compile(r"^B(0[1-9]|1[0-2]|8A)$")
_S2_COMMON = frozenset(
    {
        "coastal",
        "blue",
        "green",
        "red",
        "rededge",
        "rededge1",
        "rededge2",
        "rededge3",
        "nir",
        "nir08",
        "nir09",
    }
    | {"swir16", "swir22", "rededge071", "rededge075", "rededge078"}
)
_LS_SR = re.compile(r"^(SR_B[1-7])$", re.IGNORECASE)
_LS_SR_COMMON = frozenset({"coastal", "blue", "green", "red", "nir08", "swir16", "swir22"})
_LS_ST = re.compile(r"^(ST_B(6|10)|lwir11|lwir)$", re.IGNORECASE)


@dataclass(frozen=True)
class Encoding:
    """How stored values of one band become physical values: ``value = stored * scale + offset``.

    ``source`` says where the numbers come from: ``"item"`` (the asset's raster:bands), ``"product-table"``
    (this module), ``"user"`` (a load parameter) or ``"none"`` (nothing known: loaded as stored).
    """

    scale: float = 1.0
    offset: float = 0.0
    source: str = "none"
    note: str = ""


def _baseline(props: Mapping) -> float | None:
    raw = props.get("s2:processing_baseline") or props.get("processing:version")
    try:
        return float(str(raw).strip().lstrip("Nn"))
    except (TypeError, ValueError):
        return None


def s2_l2a_offset(props: Mapping, date: dt.date | None) -> tuple[float, str]:
    """The BOA offset of one Sentinel-2 L2A item and why: -0.1 from processing baseline 04.00 (or, without a
    baseline property, from 25 January 2022), 0 before, 0 when the catalog says it already applied it
    (``earthsearch:boa_offset_applied: true``)."""
    if props.get("earthsearch:boa_offset_applied") is True:
        return 0.0, "BOA offset already applied (earthsearch:boa_offset_applied)"
    base = _baseline(props)
    if base is not None:
        return (
            (S2_L2A_BOA_OFFSET, f"baseline {base:05.2f} >= 04.00")
            if base >= 4.0
            else (0.0, f"baseline {base:05.2f} < 04.00")
        )
    if date is not None:
        after = date >= S2_BASELINE_0400_DATE
        return (
            S2_L2A_BOA_OFFSET if after else 0.0
        ), f"no s2:processing_baseline; acquired {date} ({'on/after' if after else 'before'} 2022-01-25)"
    return S2_L2A_BOA_OFFSET, "no s2:processing_baseline nor date; assumed >= 04.00"


def product_of(collection: str | None, props: Mapping) -> str | None:
    """``"s2-l2a"``, ``"landsat-c2-l2"``, ``"as-stored"``, ``"classes"`` or None (unknown product)."""
    coll = (collection or "").lower()
    if coll in S2_L2A_COLLECTIONS:
        return "s2-l2a"
    if coll in LANDSAT_C2_L2_COLLECTIONS:
        return "landsat-c2-l2"
    if coll in AS_STORED_COLLECTIONS:
        return "as-stored"
    if coll in CLASS_COLLECTIONS or coll.startswith("io-lulc"):
        return "classes"
    platform = str(props.get("platform", "")).lower()
    if platform.startswith("sentinel-2") and ("s2:processing_baseline" in props or "l2a" in coll):
        return "s2-l2a"
    if (
        platform.startswith("landsat")
        and str(props.get("landsat:collection_number", "")) == "02"
        and str(props.get("landsat:correction", "")).upper().startswith("L2")
    ):
        return "landsat-c2-l2"
    return None


def band_encoding(
    collection: str | None,
    props: Mapping,
    date: dt.date | None,
    key: str,
    common_name: str | None = None,
) -> Encoding | None:
    """The table's scale/offset for band ``key`` (asset key; ``common_name`` from eo:bands) of an item of
    ``collection`` with properties ``props`` acquired on ``date``; None when the table knows nothing."""
    product = product_of(collection, props)
    names = {key, common_name} - {None}
    if product == "s2-l2a":
        if any(_S2_REFLECTANCE.match(n) for n in names) or (
            common_name in _S2_COMMON and key not in ("visual",)
        ):
            offset, why = s2_l2a_offset(props, date)
            return Encoding(S2_L2A_SCALE, offset, "product-table", f"Sentinel-2 L2A, {why}")
        return None
    if product == "landsat-c2-l2":
        if any(_LS_ST.match(n) for n in names):
            return Encoding(*LANDSAT_C2_ST, "product-table", "Landsat C2 L2 surface temperature (kelvin)")
        if any(_LS_SR.match(n) for n in names) or (
            common_name in _LS_SR_COMMON and key.lower() not in ("qa",)
        ):
            return Encoding(*LANDSAT_C2_SR, "product-table", "Landsat C2 L2 surface reflectance")
        return None
    if product == "as-stored":
        return Encoding(1.0, 0.0, "product-table", f"{collection}: values are stored in their units")
    return None


def is_class_product(collection: str | None, props: Mapping) -> bool:
    """True for products whose data assets hold integer classes (land cover), which must never be averaged."""
    return product_of(collection, props) == "classes"


def item_encoding(item: pystac.Item, key: str, common_name: str | None = None) -> Encoding | None:
    """:func:`band_encoding` for asset ``key`` of a pystac ``item``."""
    when = item.datetime or item.common_metadata.start_datetime
    return band_encoding(item.collection_id, item.properties, when.date() if when else None, key, common_name)


__all__ = [
    "AS_STORED_COLLECTIONS",
    "CLASS_COLLECTIONS",
    "Encoding",
    "LANDSAT_C2_L2_COLLECTIONS",
    "LANDSAT_C2_SR",
    "LANDSAT_C2_ST",
    "S2_BASELINE_0400_DATE",
    "S2_L2A_BOA_OFFSET",
    "S2_L2A_COLLECTIONS",
    "S2_L2A_SCALE",
    "band_encoding",
    "is_class_product",
    "item_encoding",
    "product_of",
    "s2_l2a_offset",
]
