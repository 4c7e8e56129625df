"""Mission configuration and acquisition plan: where the tiles are and when each satellite passes.

Geometry: the area of interest (AOI) is centred on a UTM zone boundary (12 degrees E by default), so the two
Sentinel-2-like tiles sit in different zones (EPSG:326zz) and overlap across the boundary, as MGRS tiles do. The
planted ground truth lives in the western zone's CRS (the "truth CRS"); every grid samples it at its pixel centres.
Landsat-like scenes use one WRS-2-like footprint in the western zone, rotated like a descending path, at 30 m.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from odc.geo import xy_
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry, polygon
from pyproj import Transformer

from orbitcube.catalog.errors import SimulatorError
from orbitcube.catalog.simulator.sensors import SENSORS, SensorName, SensorSpec

#: grids are snapped to this many metres so that 10, 20 and 30 m pixels share edges
GRID_SNAP_M = 60.0


@dataclass(frozen=True)
class MissionConfig:
    """Everything that determines a simulated mission; the same config always gives the same bytes.

    Attributes:
        seed: seed of every random draw (``np.random.default_rng``).
        start, end: first and last day of the mission (UTC dates, inclusive).
        sensors: any of ``"sentinel-2"`` and ``"landsat"``.
        tile_size: Sentinel-2 tile width and height in 10 m pixels (a real MGRS tile has 10980); the AOI and the
            planted features scale with it.
        center_lon, center_lat: AOI centre in degrees (WGS84). The default sits on the UTM 32/33 boundary.
        cloudiness: mean cloud fraction of the cloudy passes (0..1); about a third of the passes are clear.
        partial_swath: give some passes nodata edges, as at the edge of a real swath.
        landsat_odd_grid: put Landsat pixel corners at odd multiples of 15 m, as on real Landsat (WRS-2 scenes in
            UTM: 694005 = 46267 x 15), instead of multiples of 60 m shared with Sentinel-2. Loaders that snap a
            30 m grid to multiples of 30 m then shift Landsat by half a pixel; the default exposes that.
        events: plant the deforestation, burn scar and flood.
        write_truth_reflectance: write the clear-sky reflectance per date beside the scenes (``truth/``).
        workers: processes used to render scenes (1 renders in this process).
        nodata_in_files: tag the files and the STAC raster:bands with nodata (0 for reflectance); False writes
            files and items with no nodata at all, as some real products are (the fill outside the swath stays 0).
        s2_baseline_change: encode Sentinel-2 scenes as the real products were: before 25 January 2022
            (processing baseline 03.01) DN = reflectance * 10000 with no offset, from then on (baseline 04.00)
            with the +1000 DN BOA offset; each item states its own ``s2:processing_baseline`` and raster:bands
            offset (0 or -0.1). False (default): every scene is baseline 04.00 and items carry no baseline.
    """

    seed: int = 0
    start: dt.date = dt.date(2023, 1, 1)
    end: dt.date = dt.date(2023, 12, 31)
    sensors: tuple[SensorName, ...] = ("sentinel-2",)
    tile_size: int = 512
    center_lon: float = 12.0
    center_lat: float = 45.5
    cloudiness: float = 0.35
    partial_swath: bool = True
    landsat_odd_grid: bool = True
    events: bool = True
    write_truth_reflectance: bool = True
    workers: int = 1
    nodata_in_files: bool = True
    s2_baseline_change: bool = False

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    object.__setattr__(self, name, dt.date.fromisoformat(value))
                except ValueError as exc:
                    raise SimulatorError(
                        f"MissionConfig.{name}={value!r} is not an ISO date; use YYYY-MM-DD"
                    ) from exc
        if isinstance(self.sensors, str):
            object.__setattr__(self, "sensors", (self.sensors,))
        else:
            object.__setattr__(self, "sensors", tuple(self.sensors))
        if self.end < self.start:
            raise SimulatorError(f"MissionConfig: end {self.end} is before start {self.start}; swap them")
        for s in self.sensors:
            if s not in SENSORS:
                raise SimulatorError(
                    f"MissionConfig.sensors: unknown sensor {s!r}; choose from {sorted(SENSORS)}"
                )
        if not self.sensors:
            raise SimulatorError(f"MissionConfig.sensors is empty; give at least one of {sorted(SENSORS)}")
        if not 32 <= self.tile_size <= 10980 or self.tile_size % 2:
            raise SimulatorError(
                f"MissionConfig.tile_size={self.tile_size} must be an even number of 10 m pixels between 32 and "
                "10980 (even, so that the 20 m bands tile it exactly), e.g. 128, 512, 2048"
            )
        if not 0.0 <= self.cloudiness <= 0.95:
            raise SimulatorError(f"MissionConfig.cloudiness={self.cloudiness} must be within [0, 0.95]")
        if not -170 <= self.center_lon <= 170 or not -75 <= self.center_lat <= 75:
            raise SimulatorError(
                "MissionConfig centre must be within lon [-170, 170] and lat [-75, 75] degrees"
            )
        if self.workers < 1:
            raise SimulatorError(f"MissionConfig.workers={self.workers} must be >= 1")

    # ----- geometry -------------------------------------------------------------------------------------------
    @property
    def west_zone(self) -> int:
        """UTM zone whose eastern edge is nearest the AOI centre (the truth CRS zone)."""
        return int(np.floor((self.center_lon + 180.0) / 6.0 + 0.5))  # boundary at centre_lon -> west zone

    @property
    def truth_epsg(self) -> int:
        return self._utm_epsg(self.west_zone)

    def _utm_epsg(self, zone: int) -> int:
        return (32600 if self.center_lat >= 0 else 32700) + zone

    @property
    def tile_width_m(self) -> float:
        """Sentinel-2 tile width in metres (``tile_size`` 10 m pixels)."""
        return self.tile_size * 10.0

    @cached_property
    def centre_truth_xy(self) -> tuple[float, float]:
        """AOI centre in the truth CRS, metres (x, y)."""
        tr = Transformer.from_crs(4326, self.truth_epsg, always_xy=True)
        return tr.transform(self.center_lon, self.center_lat)

    @cached_property
    def aoi_truth_bounds(self) -> tuple[float, float, float, float]:
        """AOI as (left, bottom, right, top) in the truth CRS, metres, snapped to the 60 m grid."""
        w = self.tile_width_m
        cx, cy = self.centre_truth_xy
        return _snap((cx - 0.7 * w, cy - 0.45 * w, cx + 0.7 * w, cy + 0.45 * w))

    @cached_property
    def aoi_bbox(self) -> tuple[float, float, float, float]:
        """AOI as a WGS84 bbox (west, south, east, north) in degrees."""
        return tuple(self.aoi_geometry.to_crs(4326).boundingbox)  # type: ignore[return-value]

    @property
    def aoi_geometry(self) -> Geometry:
        """AOI polygon in the truth CRS."""
        x0, y0, x1, y1 = self.aoi_truth_bounds
        return polygon([(x0, y0), (x0, y1), (x1, y1), (x1, y0), (x0, y0)], crs=self.truth_epsg)

    def truth_geobox(self, resolution: float = 10.0) -> GeoBox:
        """The AOI grid in the truth CRS at ``resolution`` metres: where ground-truth rasters are written."""
        x0, y0, x1, y1 = self.aoi_truth_bounds
        return GeoBox.from_bbox((x0, y0, x1, y1), crs=f"EPSG:{self.truth_epsg}", resolution=resolution)

    @cached_property
    def tiles(self) -> tuple[Tile, ...]:
        """Scene tiles of every sensor in the mission."""
        out: list[Tile] = []
        if "sentinel-2" in self.sensors:
            out.extend(self._s2_tiles())
        if "landsat" in self.sensors:
            out.append(self._landsat_tile())
        return tuple(out)

    def _s2_tiles(self) -> list[Tile]:
        w = self.tile_width_m
        tiles = []
        for zone, (f0, _f1), name in (
            (self.west_zone, (-0.8, 0.2), f"{self.west_zone}TQR"),
            (self.west_zone + 1, (-0.2, 0.8), f"{self.west_zone + 1}TUL"),
        ):
            epsg = self._utm_epsg(zone)
            cx, cy = Transformer.from_crs(4326, epsg, always_xy=True).transform(
                self.center_lon, self.center_lat
            )
            x0 = _snap1(cx + f0 * w)
            y1 = _snap1(cy + 0.5 * w)
            tiles.append(Tile("sentinel-2", name, epsg, x0, y1, w, w, footprint=None))
        return tiles

    def _landsat_tile(self) -> Tile:
        x0, y0, x1, y1 = self.aoi_truth_bounds
        mx, my = 0.08 * (x1 - x0), 0.08 * (y1 - y0)
        left, bottom, right, top = _snap((x0 - mx, y0 - my, x1 + mx, y1 + my))
        if self.landsat_odd_grid:  # 60 m multiples + 15: odd multiples of 15 m, as real Landsat corners
            left, bottom, right, top = left + 15.0, bottom + 15.0, right + 15.0, top + 15.0
        cx, cy = (left + right) / 2, (bottom + top) / 2
        # a descending path's footprint is rotated about 12 degrees; it leaves nodata corners
        hw, hh, ang = 0.5 * (right - left) * 0.98, 0.5 * (top - bottom) * 0.98, np.deg2rad(12.0)
        corners = [(-hw, -hh), (-hw, hh), (hw, hh), (hw, -hh), (-hw, -hh)]
        rot = [
            (cx + x * np.cos(ang) - y * np.sin(ang), cy + x * np.sin(ang) + y * np.cos(ang))
            for x, y in corners
        ]
        return Tile(
            "landsat", "192028", self.truth_epsg, left, top, right - left, top - bottom, footprint=tuple(rot)
        )


@dataclass(frozen=True)
class Tile:
    """A scene footprint on its native grid: top-left corner (x0, y1) and size in metres in EPSG ``epsg``.

    ``footprint`` is the valid-data polygon in the tile CRS when it is smaller than the tile (Landsat paths).
    """

    sensor: SensorName
    tile_id: str
    epsg: int
    x0: float
    y1: float
    width_m: float
    height_m: float
    footprint: tuple[tuple[float, float], ...] | None = None

    def geobox(self, resolution: float) -> GeoBox:
        """The tile's pixel grid at ``resolution`` metres (north-up, y decreasing)."""
        bbox = (self.x0, self.y1 - self.height_m, self.x0 + self.width_m, self.y1)
        # pixel corners where the tile's corners are (Landsat: odd multiples of 15 m)
        anchor = xy_((self.x0 / resolution) % 1.0, (self.y1 / resolution) % 1.0)
        return GeoBox.from_bbox(bbox, crs=f"EPSG:{self.epsg}", resolution=resolution, anchor=anchor)


@dataclass(frozen=True)
class Acquisition:
    """One scene: a sensor's platform over one tile at one time (UTC)."""

    sensor: SensorName
    platform: str
    tile: Tile
    datetime: dt.datetime
    relative_orbit: int
    swath_cut: float | None = field(
        default=None
    )  # fraction of the tile width lost to a swath edge (west side)

    @property
    def spec(self) -> SensorSpec:
        return SENSORS[self.sensor]

    @property
    def pass_key(self) -> tuple[str, str]:
        """Scenes of one pass (same platform and day) share clouds."""
        return (self.platform, self.datetime.date().isoformat())

    @property
    def item_id(self) -> str:
        d = self.datetime.strftime("%Y%m%d")
        if self.sensor == "sentinel-2":
            return f"S2{self.platform[-1].upper()}_{self.tile.tile_id}_{d}_0_L2A"
        return f"LC0{self.platform[-1]}_L2SP_{self.tile.tile_id}_{d}_02_T1"


def acquisition_plan(config: MissionConfig) -> list[Acquisition]:
    """Every scene of the mission, sorted by time then tile.

    Sentinel-2A passes every 10 days from ``start``, 2B five days later; Landsat 8 every 16 days, Landsat 9 eight
    days later. Both tiles of a pass are acquired seconds apart (one solar day). With ``partial_swath`` the
    Sentinel-2B passes clip the western 30 % of the western tile and every other Landsat 9 pass clips 20 %.
    """
    out: list[Acquisition] = []
    for tile in config.tiles:
        spec = SENSORS[tile.sensor]
        for p_idx, (platform, offset) in enumerate(
            zip(spec.platforms, spec.platform_offsets_days, strict=True)
        ):
            day = config.start + dt.timedelta(days=offset)
            k = 0
            while day <= config.end:
                hour = (10, 17, 21) if tile.sensor == "sentinel-2" else (9, 58, 3)
                t = dt.datetime(day.year, day.month, day.day, *hour, tzinfo=dt.UTC)
                if tile.sensor == "sentinel-2" and tile.tile_id.startswith(str(config.west_zone + 1)):
                    t += dt.timedelta(seconds=4)
                cut = None
                if config.partial_swath:
                    if (
                        tile.sensor == "sentinel-2"
                        and p_idx == 1
                        and tile.tile_id.startswith(str(config.west_zone))
                    ):
                        cut = 0.3
                    elif tile.sensor == "landsat" and p_idx == 1 and k % 2 == 1:
                        cut = 0.2
                orbit = 22 + 50 * p_idx if tile.sensor == "sentinel-2" else 192
                out.append(Acquisition(tile.sensor, platform, tile, t, orbit, cut))
                day += dt.timedelta(days=spec.revisit_days)
                k += 1
    out.sort(key=lambda a: (a.datetime, a.tile.tile_id))
    return out


def _snap1(v: float) -> float:
    return float(np.round(v / GRID_SNAP_M) * GRID_SNAP_M)


def _snap(b: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    return (_snap1(b[0]), _snap1(b[1]), _snap1(b[2]), _snap1(b[3]))


__all__ = [
    "Acquisition",
    "GRID_SNAP_M",
    "MissionConfig",
    "Tile",
    "acquisition_plan",
]
