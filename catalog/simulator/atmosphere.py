"""Clouds, cloud shadows and haze of one satellite pass.

Clouds are a thresholded smooth random field in the truth CRS, seeded by the pass (platform and day), so the two
tiles of one pass, in two UTM zones, see the same clouds. The threshold is set from a fixed sample over the AOI
so that the cloudy fraction matches the pass's draw. A pixel is *cloud* where the field exceeds the threshold;
its opacity ramps from thin (cirrus) to opaque. Shadows are the cloud field displaced away from the sun, minus
cloud. Haze is a smooth additive term that grows towards blue.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from orbitcube.catalog.simulator.landscape import BANDS, GridPoints, PlaneWaves
from orbitcube.catalog.simulator.plan import Acquisition, MissionConfig

_HAZE_PER_BAND = dict(
    zip(BANDS, (0.010, 0.007, 0.005, 0.004, 0.003, 0.002, 0.002, 0.002, 0.0, 0.0), strict=True)
)
CLOUD_REFLECTANCE = 0.55
SHADOW_FACTOR = 0.35
THIN_CLOUD = 0.3  # opacity below this is thin cirrus
MEDIUM_CLOUD = 0.7  # below this medium probability, above high probability


def pass_seed(config: MissionConfig, acquisition: Acquisition, salt: str) -> list[int]:
    """A seed for ``np.random.default_rng`` unique to the mission, the pass and ``salt``."""
    key = f"{acquisition.platform}/{acquisition.datetime.date().isoformat()}/{salt}".encode()
    return [config.seed, int.from_bytes(hashlib.sha256(key).digest()[:8], "little")]


@dataclass
class PassAtmosphere:
    """The atmosphere of one pass: cloud fraction drawn, cloud field and threshold, shadow offset, haze."""

    cloud_fraction: float
    field: PlaneWaves
    threshold: float
    ramp: float
    shadow_dx: float
    shadow_dy: float
    haze_field: PlaneWaves
    haze_level: float
    sun_azimuth: float
    sun_elevation: float

    @classmethod
    def draw(cls, config: MissionConfig, acquisition: Acquisition) -> PassAtmosphere:
        """Draw the atmosphere of ``acquisition``'s pass (identical for every tile of the pass)."""
        rng = np.random.default_rng(pass_seed(config, acquisition, "atmosphere"))
        w = config.tile_width_m
        clear = rng.uniform() < 0.35
        frac = (
            0.0
            if clear
            else float(
                np.clip(
                    rng.beta(2.0, 2.0 * (1 - config.cloudiness) / max(config.cloudiness, 0.05)), 0.03, 0.9
                )
            )
        )
        # cloud cells of at least ~400 m however small the AOI, as real convective clouds are
        field = PlaneWaves(rng, 14, max(0.06 * w, 400.0), max(1.2 * w, 4000.0))
        # threshold from a fixed 96 x 96 sample over the AOI (truth CRS), so all tiles agree
        x0, y0, x1, y1 = config.aoi_truth_bounds
        ox, oy = config.centre_truth_xy
        sx, sy = np.meshgrid(np.linspace(x0 - ox, x1 - ox, 96), np.linspace(y0 - oy, y1 - oy, 96))
        sample = field((sx, sy))
        threshold = float(np.quantile(sample, 1 - frac)) if frac > 0 else float(sample.max() + 10.0)
        doy = acquisition.datetime.timetuple().tm_yday
        sun_elev = float(45 + 20 * np.cos(2 * np.pi * (doy - 172) / 365.25) - 0.3 * (config.center_lat - 45))
        sun_az = float(150 + 10 * rng.uniform(-1, 1))
        shadow_len = max(0.05 * w, 150.0) * (1 + 0.3 * rng.uniform())
        away = np.deg2rad(sun_az + 180)
        return cls(
            cloud_fraction=frac,
            field=field,
            threshold=threshold,
            ramp=float(0.35 * sample.std()),
            shadow_dx=float(shadow_len * np.sin(away)),
            shadow_dy=float(shadow_len * np.cos(away)),
            haze_field=PlaneWaves(rng, 6, 0.3 * w, 2.0 * w),
            haze_level=float(rng.uniform(0.0, 1.0)),
            sun_azimuth=sun_az,
            sun_elevation=sun_elev,
        )

    def opacity(self, points: GridPoints) -> np.ndarray:
        """Cloud opacity in [0, 1] per pixel, 0 where clear; cloud is exactly ``opacity > 0``. Dims (y, x)."""
        f = self.field(points)
        return np.clip((f - self.threshold) / self.ramp, 0.0, 1.0).astype(np.float32) * (f > self.threshold)

    def shadow(self, points: GridPoints, cloud: np.ndarray) -> np.ndarray:
        """True where a cloud's shadow falls on clear ground, dims (y, x)."""
        displaced = self.field(points.shifted(-self.shadow_dx, -self.shadow_dy)) > self.threshold
        return displaced & ~cloud

    def haze_base(self, points: GridPoints) -> np.ndarray:
        """Spatial pattern of the haze in [0, 1], dims (y, x); scale per band with :meth:`haze`."""
        return (0.5 + 0.5 * np.tanh(self.haze_field(points))).astype(np.float32)

    def haze(self, base: np.ndarray, band: str) -> np.ndarray | float:
        """Additive haze reflectance for common band ``band`` given :meth:`haze_base`, dims (y, x)."""
        k = _HAZE_PER_BAND.get(band, 0.0) * self.haze_level
        return np.float32(k) * base if k else 0.0


__all__ = [
    "CLOUD_REFLECTANCE",
    "MEDIUM_CLOUD",
    "PassAtmosphere",
    "SHADOW_FACTOR",
    "THIN_CLOUD",
    "pass_seed",
]
