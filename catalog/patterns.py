"""Per-collection ingest configuration: file-name patterns, band maps, scale/offset.

What a GeoTIFF header does not say (datetime, platform, band common names, scale/offset) comes from the file
name. :data:`KNOWN` holds the patterns of Landsat Collection 1 L1 and Collection 2 L2, Sentinel-2 L2A (as
distributed per band, ``T32TQR_20230105T101411_B04_10m.tif``) and the orbitcube simulator; users add their own
with a :class:`CollectionConfig` (a dict or a YAML file)::

    collection_id: my-drone
    pattern: '(?P<id>flight(?P<date>\\d{8})_\\d+)_(?P<band>red|nir)\\.tif$'
    platform: my-drone
    bands: {red: [red, 0.665], nir: [nir, 0.842]}
    scale: 0.0001
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.products import LANDSAT_C2_SR, S2_L2A_BOA_OFFSET, S2_L2A_SCALE

OLI = {
    "B1": ("coastal", 0.44), "B2": ("blue", 0.48), "B3": ("green", 0.56), "B4": ("red", 0.655),
    "B5": ("nir08", 0.865), "B6": ("swir16", 1.61), "B7": ("swir22", 2.2), "B8": ("pan", 0.59),
    "B9": ("cirrus", 1.37), "B10": ("lwir11", 10.9), "B11": ("lwir12", 12.0),
}  # fmt: skip
MSI = {
    "B01": ("coastal", 0.443), "B02": ("blue", 0.49), "B03": ("green", 0.56), "B04": ("red", 0.665),
    "B05": ("rededge071", 0.704), "B06": ("rededge075", 0.74), "B07": ("rededge078", 0.783), "B08": ("nir", 0.842),
    "B8A": ("nir08", 0.865), "B09": ("nir09", 0.945), "B11": ("swir16", 1.61), "B12": ("swir22", 2.19),
}  # fmt: skip
QUALITY_KEYS = ("SCL", "QA_PIXEL", "BQA")


@dataclass(frozen=True)
class CollectionConfig:
    """How to turn the file names of one collection into items.

    ``pattern`` is a regex searched in the file path (``/`` separators) with named groups ``id`` (scene id; files
    sharing it form one item), ``band`` (asset key; without it the whole file is asset ``data``) and ``date``
    (``YYYYMMDD``) or ``datetime`` (``YYYYMMDDTHHMMSS``); optional groups ``sat``, ``path``/``row`` (WRS-2) and
    ``tile`` (MGRS) fill ``platform``, ``landsat:wrs_*`` and ``grid:code``. ``bands`` maps asset keys to
    (common name, centre wavelength in micrometres); ``scale``/``offset``/``nodata`` apply to every band unless
    ``per_band`` overrides them for a key.
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
    def from_mapping(cls, data: Mapping[str, Any]) -> CollectionConfig:
        """Build from a dict / YAML mapping; raise CatalogError naming a missing or unknown key."""
        if not isinstance(data, Mapping):
            raise CatalogError(f"collection config must be a mapping, got {type(data).__name__}: {data!r}")
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
            rx = re.compile(data["pattern"])
        except re.error as exc:
            raise CatalogError(
                f"collection config: pattern {data['pattern']!r} is not a valid regex: {exc}"
            ) from exc
        if "id" not in rx.groupindex:
            raise CatalogError(
                f"collection config {data['collection_id']!r}: pattern needs a named group (?P<id>...) "
                "holding the scene id"
            )
        if not {"date", "datetime"} & set(rx.groupindex):
            raise CatalogError(
                f"collection config {data['collection_id']!r}: pattern needs a named group (?P<date>YYYYMMDD) "
                "or (?P<datetime>YYYYMMDDTHHMMSS) so items get a time"
            )
        bands = {}
        for k, v in (data.get("bands") or {}).items():
            if not (isinstance(v, list | tuple) and len(v) == 2):
                raise CatalogError(
                    f"collection config: bands.{k} must be [common_name, center_wavelength_um], got {v!r}"
                )
            bands[k] = (str(v[0]), float(v[1]))
        return cls(**{**data, "bands": bands})


def load_configs(config: CollectionConfig | Mapping | list | str | Path | None) -> list[CollectionConfig]:
    """A user's config(s) -- a :class:`CollectionConfig`, a mapping, a list of them, or a YAML file holding
    one mapping or a list -- followed by the known patterns (user patterns win)."""
    if config is None:
        return list(KNOWN)
    if isinstance(config, str | Path):
        import yaml

        try:
            config = yaml.safe_load(Path(config).read_text())
        except (OSError, yaml.YAMLError) as exc:
            why = " ".join(str(exc).split())  # YAML errors span lines: one line for the message
            raise CatalogError(f"cannot read collection config {config}: {why}; give a YAML file") from exc
    raw = config if isinstance(config, list) else [config]
    mine = [c if isinstance(c, CollectionConfig) else CollectionConfig.from_mapping(c) for c in raw]
    return mine + list(KNOWN)


_SR = {f"SR_{k}": v for k, v in OLI.items()}
_QA = {"QA_PIXEL": {"scale": 1.0, "offset": 0.0, "nodata": 1}}
_SCL = {"SCL": {"scale": 1.0, "offset": 0.0, "nodata": 0}}

KNOWN: tuple[CollectionConfig, ...] = (
    CollectionConfig(
        "landsat-c2-l2",
        r"(?P<id>L[COTEM]0(?P<sat>\d)_L2S[PR]_(?P<path>\d{3})(?P<row>\d{3})_(?P<date>\d{8})_\d{8}_02_(T1|T2|RT))_(?P<band>SR_B\d+|QA_PIXEL)\.(TIF|tif)$",
        None, "oli", _SR, *LANDSAT_C2_SR, 0, _QA,
    ),
    CollectionConfig(
        "landsat-c1-l1",
        r"(?P<id>L[COTEM]0(?P<sat>\d)_L1(TP|GT|GS)_(?P<path>\d{3})(?P<row>\d{3})_(?P<date>\d{8})_\d{8}_01_(T1|T2|RT))_(?P<band>B\d+|BQA)\.(TIF|tif)$",
        None, "oli", OLI, None, None, 0,
    ),
    CollectionConfig(
        "sentinel-2-l2a",
        r"(?P<id>T(?P<tile>\d{2}[A-Z]{3})_(?P<datetime>\d{8}T\d{6}))_(?P<band>B\d[\dA]|SCL)(_\d+m)?\.(tif|TIF|tiff|jp2)$",
        None, "msi", MSI, S2_L2A_SCALE, S2_L2A_BOA_OFFSET, 0, _SCL,
    ),
    CollectionConfig(
        "sentinel-2-l2a-sim",
        r"(?P<id>S2(?P<sat>[AB])_(?P<tile>\d{2}[A-Z]{3})_(?P<date>\d{8})_0_L2A)/(?P<band>B\d[\dA]|SCL)\.tif$",
        None, "msi", MSI, S2_L2A_SCALE, S2_L2A_BOA_OFFSET, 0, _SCL,
    ),
    CollectionConfig(
        "landsat-c2-l2-sim",
        r"(?P<id>LC0(?P<sat>\d)_L2SP_(?P<path>\d{3})(?P<row>\d{3})_(?P<date>\d{8})_02_T1)/(?P<band>SR_B\d|QA_PIXEL)\.tif$",
        None, "oli", _SR, *LANDSAT_C2_SR, 0, _QA,
    ),
)  # fmt: skip


__all__ = [
    "CollectionConfig",
    "KNOWN",
    "MSI",
    "OLI",
    "QUALITY_KEYS",
    "load_configs",
]
