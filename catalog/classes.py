"""Built-in knowledge of quality layers, and the mask-name vocabulary that maps user names onto their classes.

The single source of what orbitcube knows about the quality layers of the products it meets:

* Sentinel-2 L2A scene classification (``SCL``): one class value per pixel (:class:`SCL`);
* Landsat Collection 2 ``QA_PIXEL``: single-bit flags (:class:`QABit`) and two-bit confidence fields
  (:data:`QA_CONFIDENCE_BITS`);
* HLS v2.0 ``Fmask`` (Harmonized Landsat Sentinel-2): single-bit flags (:class:`FmaskBit`) and a two-bit aerosol
  level at bits 6-7 (HLS User Guide v2.0, table 9: bit 0 cirrus (reserved, not used), 1 cloud, 2 adjacent to
  cloud/shadow, 3 cloud shadow, 4 snow/ice, 5 water, 6-7 aerosol level).

Each layer is also given in the shape of the STAC classification extension (``classification:classes`` /
``classification:bitfields``), which is what the simulator writes into its items and what the loader falls back
to when a real item's quality asset carries no classification metadata: decoding always goes through one path,
from metadata.

Mask names (:data:`MASK_NAMES`) are a small vocabulary; :data:`MASK_SYNONYMS` lists, for each, the class names
(normalised by :func:`normalise_name`: lower case, runs of other characters as ``_``) that products use for it,
e.g. ``shadow`` is Landsat's ``cloud_shadow`` / ``shadow``, SCL's ``cloud_shadows`` and HLS Fmask's
``cloud_shadow``; ``cloud_high`` is SCL's ``cloud_high_probability`` and QA_PIXEL's cloud confidence ``high``
(bits 8-9 = 3). ``nodata`` and ``saturated`` are masked where a layer has such a class and otherwise ignored
(:data:`OPTIONAL_MASK_NAMES`: fill is also removed through the layer's nodata value, and QA_PIXEL keeps
saturation in another layer); every other name must be decodable by the product or loading stops with an error.
This module has no dependency on :mod:`pipeline`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import IntEnum
from typing import Literal, get_args


class SCL(IntEnum):
    """ESA Sentinel-2 L2A scene classification classes (pixel values of the ``SCL`` layer)."""

    NO_DATA = 0
    SATURATED_OR_DEFECTIVE = 1
    DARK_AREA_PIXELS = 2
    CLOUD_SHADOWS = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM_PROBABILITY = 8
    CLOUD_HIGH_PROBABILITY = 9
    THIN_CIRRUS = 10
    SNOW = 11


class QABit(IntEnum):
    """Landsat Collection 2 QA_PIXEL single-bit flags (bit positions)."""

    FILL = 0
    DILATED_CLOUD = 1
    CIRRUS = 2
    CLOUD = 3
    CLOUD_SHADOW = 4
    SNOW = 5
    CLEAR = 6
    WATER = 7


#: QA_PIXEL two-bit confidence fields (lowest bit position); values 0 not set, 1 low, 2 medium, 3 high.
QA_CONFIDENCE_BITS = {"cloud": 8, "cloud_shadow": 10, "snow_ice": 12, "cirrus": 14}
QA_CONFIDENCE_LEVELS = ("not_set", "low", "medium", "high")


class FmaskBit(IntEnum):
    """HLS v2.0 Fmask single-bit flags (bit positions); fill is the value 255."""

    CIRRUS = 0  # reserved, not used since HLS v2.0 (always 0)
    CLOUD = 1
    ADJACENT_TO_CLOUD_OR_SHADOW = 2
    CLOUD_SHADOW = 3
    SNOW_ICE = 4
    WATER = 5


#: HLS Fmask aerosol level: (bit offset, length) and the level names by value
FMASK_AEROSOL = (6, 2)
FMASK_AEROSOL_LEVELS = ("climatology", "low", "moderate", "high")


def scl_classes() -> list[dict]:
    """``classification:classes`` of the Sentinel-2 SCL layer (value, name, description)."""
    return [
        {"value": int(c), "name": c.name.lower(), "description": c.name.replace("_", " ").capitalize()}
        for c in SCL
    ]


def _flag_fields(bits: type[IntEnum]) -> list[dict]:
    return [
        {
            "offset": int(b),
            "length": 1,
            "name": b.name.lower(),
            "classes": [{"value": 1, "name": b.name.lower()}],
        }
        for b in bits
    ]


def qa_pixel_bitfields() -> list[dict]:
    """``classification:bitfields`` of the Landsat Collection 2 QA_PIXEL layer."""
    conf = [
        {
            "offset": off,
            "length": 2,
            "name": f"{name}_confidence",
            "classes": [{"value": v, "name": n} for v, n in enumerate(QA_CONFIDENCE_LEVELS)],
        }
        for name, off in QA_CONFIDENCE_BITS.items()
    ]
    return _flag_fields(QABit) + conf


def fmask_bitfields() -> list[dict]:
    """``classification:bitfields`` of the HLS v2.0 Fmask layer."""
    offset, length = FMASK_AEROSOL
    aerosol = {
        "offset": offset,
        "length": length,
        "name": "aerosol_level",
        "classes": [{"value": v, "name": n} for v, n in enumerate(FMASK_AEROSOL_LEVELS)],
    }
    return [*_flag_fields(FmaskBit), aerosol]


#: built-in layers by normalised asset key, as the STAC classification fields an asset would carry
BUILTIN_LAYERS: dict[str, tuple[str, str]] = {
    "scl": ("Sentinel-2 L2A SCL", "classification:classes"),
    "qa_pixel": ("Landsat Collection 2 QA_PIXEL", "classification:bitfields"),
    "fmask": ("HLS v2.0 Fmask", "classification:bitfields"),
}


def builtin_layer(key: str) -> tuple[str, dict] | None:
    """(product name, classification fields) of the built-in layer for asset key ``key`` (any case), or None."""
    k = normalise_name(key)
    if k not in BUILTIN_LAYERS:
        return None
    product, field = BUILTIN_LAYERS[k]
    make = {"scl": scl_classes, "qa_pixel": qa_pixel_bitfields, "fmask": fmask_bitfields}[k]
    return product, {field: make()}


#: mask name -> normalised class names that products use for it (STAC items of USGS, Planetary Computer, Earth
#: Search, HLS, ESA SCL, Impact Observatory land cover ...)
MASK_SYNONYMS: dict[str, tuple[str, ...]] = {
    "nodata": ("nodata", "no_data", "fill", "fill_data"),
    "saturated": ("saturated", "saturated_or_defective", "defective"),
    "dark": ("dark", "dark_area_pixels", "dark_area", "dark_features"),
    "shadow": ("shadow", "shadows", "cloud_shadow", "cloud_shadows"),
    "cloud": ("cloud", "clouds", "cloud_medium_probability", "cloud_high_probability"),
    "cloud_medium": ("cloud_medium", "cloud_medium_probability", "cloud_confidence_medium"),
    "cloud_high": ("cloud_high", "cloud_high_probability", "cloud_confidence_high"),
    "cirrus": ("cirrus", "thin_cirrus"),
    "dilated_cloud": ("dilated_cloud", "dilated", "cloud_dilation"),
    "adjacent": ("adjacent", "adjacent_to_cloud_or_shadow", "adjacent_to_cloud_shadow", "adjacent_to_cloud"),
    "snow": ("snow", "snow_ice", "ice", "snow_and_ice"),
    "water": ("water",),
    "vegetation": ("vegetation",),
    "not_vegetated": ("not_vegetated",),
    "unclassified": ("unclassified",),
}

#: user spellings accepted for a mask name: ``fill``, and the names the Landsat C2 / Earth Search / Planetary
#: Computer classification metadata declare for a mask name (so a user may copy them from a STAC item)
MASK_ALIASES: dict[str, str] = {
    "fill": "nodata",
    "no_data": "nodata",
    "cloud_shadow": "shadow",
    "snow_ice": "snow",
}
#: every accepted mask name: the keys of MASK_SYNONYMS and MASK_ALIASES, sorted (tests/catalog/test_classes.py)
MaskName = Literal[
    "adjacent",
    "cirrus",
    "cloud",
    "cloud_high",
    "cloud_medium",
    "cloud_shadow",
    "dark",
    "dilated_cloud",
    "fill",
    "no_data",
    "nodata",
    "not_vegetated",
    "saturated",
    "shadow",
    "snow",
    "snow_ice",
    "unclassified",
    "vegetation",
    "water",
]
MASK_NAMES: tuple[MaskName, ...] = get_args(MaskName)
#: masked where the layer has such a class, silently skipped where it has none
OPTIONAL_MASK_NAMES = frozenset({"nodata", "saturated"})
#: what is masked unless the caller says otherwise
DEFAULT_MASK: tuple[MaskName, ...] = ("nodata", "saturated", "cloud", "shadow", "cirrus")


def normalise_name(name: str) -> str:
    """A class name as the vocabulary compares it: lower case, runs of non-alphanumerics as one ``_``
    (``"Snow/ice"`` -> ``snow_ice``, ``"No Data"`` -> ``no_data``)."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def unknown_mask_names(names: Iterable[str]) -> list[str]:
    """The names among ``names`` that are not in :data:`MASK_NAMES`."""
    return [n for n in names if n not in MASK_NAMES]


def canonical_mask_name(name: str) -> str:
    """``name`` with aliases resolved (``fill`` -> ``nodata``); the caller checked it is in :data:`MASK_NAMES`."""
    return MASK_ALIASES.get(name, name)


__all__ = [
    "BUILTIN_LAYERS",
    "DEFAULT_MASK",
    "FMASK_AEROSOL",
    "FMASK_AEROSOL_LEVELS",
    "FmaskBit",
    "MASK_ALIASES",
    "MASK_NAMES",
    "MASK_SYNONYMS",
    "MaskName",
    "OPTIONAL_MASK_NAMES",
    "QABit",
    "QA_CONFIDENCE_BITS",
    "QA_CONFIDENCE_LEVELS",
    "SCL",
    "builtin_layer",
    "canonical_mask_name",
    "fmask_bitfields",
    "normalise_name",
    "qa_pixel_bitfields",
    "scl_classes",
    "unknown_mask_names",
]
