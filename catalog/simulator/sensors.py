"""Sensor definitions of the simulated mission: bands, resolutions, encodings and quality layers.

Two product families are modelled on the real ones:

* Sentinel-2 L2A (processing baseline >= 04.00): uint16 digital numbers, reflectance = DN * 0.0001 - 0.1, nodata 0,
  10 m bands B02 B03 B04 B08, 20 m bands B05 B06 B07 B8A B11 B12 and the scene classification layer SCL (20 m).
* Landsat Collection 2 Level-2: uint16, reflectance = DN * 2.75e-05 - 0.2, nodata 0, 30 m bands SR_B2..SR_B7 and the
  QA_PIXEL bit-flag layer.

The quality layers' classes and bits come from :mod:`orbitcube.catalog.classes` (re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orbitcube.catalog.classes import QA_CONFIDENCE_BITS, SCL, QABit  # re-exported: the simulator's names

#: the simulated sensors (the keys of :data:`SENSORS`)
SensorName = Literal["sentinel-2", "landsat"]


@dataclass(frozen=True)
class BandSpec:
    """One band of a product: file/asset key, STAC common name, centre wavelength (micrometres), resolution (m)."""

    key: str
    common_name: str | None
    center_wavelength: float | None
    full_width_half_max: float | None
    resolution: float
    scale: float
    offset: float
    nodata: int | None = 0
    data_type: str = "uint16"
    role: str = "data"  # "data" for reflectance, "mask" for SCL / QA_PIXEL

    @property
    def is_reflectance(self) -> bool:
        return self.role == "data"


@dataclass(frozen=True)
class SensorSpec:
    """A sensor family: its platforms, revisit, bands and the STAC collection it publishes to."""

    name: SensorName
    collection_id: str
    title: str
    instrument: str
    platforms: tuple[str, ...]
    revisit_days: int
    platform_offsets_days: tuple[int, ...]
    bands: tuple[BandSpec, ...]
    mask_band: str

    def band(self, key: str) -> BandSpec:
        """The band with asset key ``key``."""
        for b in self.bands:
            if b.key == key:
                return b
        raise KeyError(key)

    @property
    def reflectance_bands(self) -> tuple[BandSpec, ...]:
        return tuple(b for b in self.bands if b.is_reflectance)

    @property
    def resolutions(self) -> tuple[float, ...]:
        return tuple(sorted({b.resolution for b in self.bands}))


_S2_SCALE, _S2_OFFSET = 0.0001, -0.1
_LS_SCALE, _LS_OFFSET = 2.75e-05, -0.2


def _s2(key: str, common: str | None, wl: float | None, fwhm: float | None, res: float) -> BandSpec:
    return BandSpec(key, common, wl, fwhm, res, _S2_SCALE, _S2_OFFSET)


SENTINEL2 = SensorSpec(
    name="sentinel-2",
    collection_id="sentinel-2-l2a-sim",
    title="Simulated Sentinel-2 Level-2A",
    instrument="msi",
    platforms=("sentinel-2a", "sentinel-2b"),
    revisit_days=10,
    platform_offsets_days=(0, 5),
    bands=(
        _s2("B02", "blue", 0.49, 0.098, 10),
        _s2("B03", "green", 0.56, 0.045, 10),
        _s2("B04", "red", 0.665, 0.038, 10),
        _s2("B08", "nir", 0.842, 0.145, 10),
        _s2("B05", "rededge071", 0.704, 0.019, 20),
        _s2("B06", "rededge075", 0.74, 0.018, 20),
        _s2("B07", "rededge078", 0.783, 0.028, 20),
        _s2("B8A", "nir08", 0.865, 0.033, 20),
        _s2("B11", "swir16", 1.61, 0.143, 20),
        _s2("B12", "swir22", 2.19, 0.242, 20),
        BandSpec("SCL", None, None, None, 20, 1.0, 0.0, nodata=0, data_type="uint8", role="mask"),
    ),
    mask_band="SCL",
)


def _ls(key: str, common: str, wl: float, fwhm: float) -> BandSpec:
    return BandSpec(key, common, wl, fwhm, 30, _LS_SCALE, _LS_OFFSET)


LANDSAT = SensorSpec(
    name="landsat",
    collection_id="landsat-c2-l2-sim",
    title="Simulated Landsat Collection 2 Level-2",
    instrument="oli",
    platforms=("landsat-8", "landsat-9"),
    revisit_days=16,
    platform_offsets_days=(0, 8),
    bands=(
        _ls("SR_B2", "blue", 0.48, 0.06),
        _ls("SR_B3", "green", 0.56, 0.06),
        _ls("SR_B4", "red", 0.655, 0.04),
        _ls("SR_B5", "nir08", 0.865, 0.03),
        _ls("SR_B6", "swir16", 1.61, 0.09),
        _ls("SR_B7", "swir22", 2.2, 0.19),
        BandSpec("QA_PIXEL", None, None, None, 30, 1.0, 0.0, nodata=1, data_type="uint16", role="mask"),
    ),
    mask_band="QA_PIXEL",
)

SENSORS: dict[SensorName, SensorSpec] = {SENTINEL2.name: SENTINEL2, LANDSAT.name: LANDSAT}


def sensor(name: SensorName) -> SensorSpec:
    """The sensor called ``name`` ("sentinel-2" or "landsat")."""
    from orbitcube.catalog.errors import SimulatorError

    if name not in SENSORS:
        raise SimulatorError(f"unknown sensor {name!r}; choose one of {sorted(SENSORS)}")
    return SENSORS[name]


__all__ = [
    "QA_CONFIDENCE_BITS",
    "SCL",
    "QABit",
    "BandSpec",
    "LANDSAT",
    "SENSORS",
    "SENTINEL2",
    "SensorName",
    "SensorSpec",
    "sensor",
]
