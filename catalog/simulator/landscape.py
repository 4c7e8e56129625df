"""The planted ground truth: land cover, surface reflectance through the seasons, and dated events.

Everything here is a deterministic function of the mission config and a position, evaluated at pixel centres
of any odc-geo ``GeoBox`` (any CRS): fields are sums of random plane waves in the truth CRS (metres), so two grids
that share a pixel centre see the same value there, and truth on the output grid of the pipeline is exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal, get_args

import numpy as np
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry, polygon
from pyproj import Transformer
from rasterio.features import rasterize

from orbitcube.catalog.simulator.plan import MissionConfig


class LandCover(IntEnum):
    """Land cover classes of the simulated landscape (values of ``truth/landcover.tif``)."""

    WATER = 0
    FOREST = 1
    CROPLAND = 2
    GRASSLAND = 3
    URBAN = 4
    BARE = 5


#: surface reflectance spectra by STAC common band name
BANDS = ("blue", "green", "red", "rededge071", "rededge075", "rededge078", "nir", "nir08", "swir16", "swir22")
_SPECTRA = {
    "vegetation": (0.030, 0.075, 0.035, 0.110, 0.280, 0.360, 0.400, 0.410, 0.200, 0.100),
    "soil": (0.090, 0.130, 0.170, 0.200, 0.220, 0.240, 0.260, 0.270, 0.330, 0.290),
    "water": (0.060, 0.050, 0.030, 0.020, 0.015, 0.012, 0.010, 0.010, 0.005, 0.003),
    "urban": (0.120, 0.130, 0.140, 0.150, 0.160, 0.170, 0.180, 0.180, 0.220, 0.200),
    "char": (0.040, 0.050, 0.060, 0.070, 0.080, 0.090, 0.100, 0.100, 0.180, 0.160),
}
SPECTRA = {k: np.asarray(v, dtype=np.float32) for k, v in _SPECTRA.items()}

# phenology per class: vegetation fraction fv(t) = base + amp * season(t, peak_doy) ** sharpness
_PHENOLOGY = {
    LandCover.FOREST: (0.78, 0.14, 200, 1.0),
    LandCover.CROPLAND: (0.08, 0.80, 190, 2.0),
    LandCover.GRASSLAND: (0.35, 0.35, 150, 1.0),
    LandCover.URBAN: (0.15, 0.10, 180, 1.0),
    LandCover.BARE: (0.02, 0.0, 180, 1.0),
    LandCover.WATER: (0.0, 0.0, 180, 1.0),
}
_CLASS_BIAS = {  # added to each class field before the arg-max: sets how common each class is
    LandCover.WATER: -0.55,
    LandCover.FOREST: 0.25,
    LandCover.CROPLAND: 0.30,
    LandCover.GRASSLAND: 0.10,
    LandCover.URBAN: -0.25,
    LandCover.BARE: -0.40,
}


#: the planted changes
EventKind = Literal["deforestation", "burn", "flood"]
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)


@dataclass(frozen=True)
class Event:
    """A planted change: ``kind`` in {"deforestation", "burn", "flood"}, a polygon in WGS84, and its dates.

    ``start`` is the first day the change is visible; ``end`` is the last day for transient events (flood),
    ``None`` for permanent ones.
    """

    kind: EventKind
    geometry: Geometry
    start: dt.date
    end: dt.date | None
    land_cover: LandCover

    def active(self, day: dt.date) -> bool:
        return day >= self.start and (self.end is None or day <= self.end)

    def to_feature(self) -> dict:
        """A GeoJSON Feature (WGS84) with the event's kind and dates."""
        return {
            "type": "Feature",
            "geometry": self.geometry.to_crs(4326).json,
            "properties": {
                "kind": self.kind,
                "start": self.start.isoformat(),
                "end": self.end.isoformat() if self.end else None,
                "land_cover_before": self.land_cover.name.lower(),
            },
        }


@dataclass(frozen=True)
class GridPoints:
    """Pixel centres of a grid in truth-CRS metres relative to the AOI centre, as piecewise-affine blocks.

    Within a block, position = origin + col * step_col + row * step_row (x and y in the truth CRS). Exact when the
    grid is in the truth CRS; between UTM zones the per-block affine fit is off by millimetres. This lets smooth
    fields be evaluated with two small matrix products per block instead of a cosine per pixel and wave.
    """

    shape: tuple[int, int]
    blocks: tuple[
        tuple[int, int, int, int, tuple[float, ...]], ...
    ]  # (r0, r1, c0, c1, (x0, xc, xr, y0, yc, yr))

    def shifted(self, dx: float, dy: float) -> GridPoints:
        """The same grid displaced by (dx, dy) metres."""
        return GridPoints(
            self.shape,
            tuple(
                (r0, r1, c0, c1, (a[0] + dx, a[1], a[2], a[3] + dy, a[4], a[5]))
                for r0, r1, c0, c1, a in self.blocks
            ),
        )

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Full (x, y) coordinate arrays, dims (y, x), float64."""
        x = np.empty(self.shape)
        y = np.empty(self.shape)
        for r0, r1, c0, c1, a in self.blocks:
            cc, rr = np.meshgrid(np.arange(c1 - c0), np.arange(r1 - r0))
            x[r0:r1, c0:c1] = a[0] + a[1] * cc + a[2] * rr
            y[r0:r1, c0:c1] = a[3] + a[4] * cc + a[5] * rr
        return x, y


class PlaneWaves:
    """A smooth random field: a sum of plane waves with wavelengths in [lo, hi] metres and a 1/f spectrum."""

    def __init__(self, rng: np.random.Generator, n: int, lo: float, hi: float) -> None:
        wl = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
        theta = rng.uniform(0, np.pi, n)
        self.kx = 2 * np.pi / wl * np.cos(theta)
        self.ky = 2 * np.pi / wl * np.sin(theta)
        self.phase = rng.uniform(0, 2 * np.pi, n)
        amp = wl / wl.max()
        self.amp = amp / np.sqrt(np.sum(amp**2) / 2)  # unit variance

    def __call__(self, points: GridPoints | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Field value at ``points`` (float32), dims of the points."""
        if not isinstance(points, GridPoints):
            x, y = points
            ph = x[..., None] * self.kx + y[..., None] * self.ky + self.phase
            return (np.cos(ph) @ self.amp).astype(np.float32)
        out = np.empty(points.shape, dtype=np.float32)
        for r0, r1, c0, c1, (x0, xc, xr, y0, yc, yr) in points.blocks:
            base = self.kx * x0 + self.ky * y0 + self.phase  # (K,)
            u = self.kx * xc + self.ky * yc  # per column
            v = self.kx * xr + self.ky * yr  # per row
            rows = base + np.arange(r1 - r0)[:, None] * v  # (R, K)
            cols = np.arange(c1 - c0)[None, :] * u[:, None]  # (K, C)
            a_c, a_s = np.cos(rows) * self.amp, np.sin(rows) * self.amp
            out[r0:r1, c0:c1] = a_c @ np.cos(cols) - a_s @ np.sin(cols)
        return out


class Landscape:
    """Land cover, phenology and events of one mission; evaluate with a GeoBox."""

    def __init__(self, config: MissionConfig) -> None:
        self.config = config
        rng = np.random.default_rng([config.seed, 1])
        w = config.tile_width_m
        # fields and parcels of at least ~250 m across, however small the AOI
        self._class_fields = [
            PlaneWaves(rng, 12, max(0.08 * w, 250.0), max(0.9 * w, 2500.0)) for _ in LandCover
        ]
        self._texture = PlaneWaves(rng, 10, 40.0, 0.1 * w)
        self._origin = config.centre_truth_xy
        self._to_truth: dict[int, Transformer] = {}
        self.events: tuple[Event, ...] = self._plant_events(rng) if config.events else ()

    # ----- positions ------------------------------------------------------------------------------------------
    def points(self, geobox: GeoBox, block: int = 512) -> GridPoints:
        """Pixel centres of ``geobox`` in truth-CRS metres relative to the AOI centre (see :class:`GridPoints`)."""
        ny, nx = geobox.shape.yx
        aff = geobox.transform
        epsg = geobox.crs.epsg
        same = epsg == self.config.truth_epsg
        if not same and epsg not in self._to_truth:
            self._to_truth[epsg] = Transformer.from_crs(
                geobox.crs.to_wkt(), self.config.truth_epsg, always_xy=True
            )
        step = max(ny, nx) if same else block
        ox, oy = self._origin
        blocks = []
        for r0 in range(0, ny, step):
            r1 = min(ny, r0 + step)
            for c0 in range(0, nx, step):
                c1 = min(nx, c0 + step)
                # three pixel centres of the block (origin, +1 column, +1 row at the far edges) fix the affine map
                cols = np.array([c0, c1, c0], dtype=np.float64) + 0.5
                rows = np.array([r0, r0, r1], dtype=np.float64) + 0.5
                gx = aff.c + aff.a * cols + aff.b * rows
                gy = aff.f + aff.d * cols + aff.e * rows
                if not same:
                    gx, gy = self._to_truth[epsg].transform(gx, gy)
                nc, nr = max(c1 - c0, 1), max(r1 - r0, 1)
                coef = (
                    gx[0] - ox, (gx[1] - gx[0]) / nc, (gx[2] - gx[0]) / nr,
                    gy[0] - oy, (gy[1] - gy[0]) / nc, (gy[2] - gy[0]) / nr,
                )  # fmt: skip
                blocks.append((r0, r1, c0, c1, tuple(float(v) for v in coef)))
        return GridPoints((ny, nx), tuple(blocks))

    # ----- land cover -----------------------------------------------------------------------------------------
    def landcover(self, geobox: GeoBox, points: GridPoints | None = None) -> np.ndarray:
        """Land cover class per pixel (uint8 ``LandCover`` values), dims (y, x); events keep their "before" class."""
        pts = points if points is not None else self.points(geobox)
        scores = np.stack(
            [f(pts) + _CLASS_BIAS[c] for f, c in zip(self._class_fields, LandCover, strict=True)]
        )
        lc = np.argmax(scores, axis=0).astype(np.uint8)
        for ev in self.events:
            lc[self.event_mask(geobox, ev)] = ev.land_cover
        return lc

    def texture(self, points: GridPoints) -> np.ndarray:
        """Multiplicative brightness texture, about 1 +- 0.04, stable in time."""
        return (1.0 + 0.04 * np.tanh(self._texture(points))).astype(np.float32)

    def event_mask(self, geobox: GeoBox, event: Event) -> np.ndarray:
        """True where ``event``'s polygon covers the pixel centre, dims (y, x)."""
        geom = event.geometry.to_crs(geobox.crs)
        return rasterize(
            [(geom.geom, 1)], out_shape=geobox.shape.yx, transform=geobox.transform, fill=0, dtype="uint8"
        ).astype(bool)

    def event_masks(self, geobox: GeoBox, kind: EventKind) -> np.ndarray:
        """True where any event of ``kind`` ("deforestation", "burn", "flood") covers the pixel, dims (y, x)."""
        out = np.zeros(geobox.shape.yx, dtype=bool)
        for ev in self.events:
            if ev.kind == kind:
                out |= self.event_mask(geobox, ev)
        return out

    # ----- reflectance ----------------------------------------------------------------------------------------
    def vegetation_fraction(self, day: dt.date) -> np.ndarray:
        """Vegetation fraction of each land cover class on ``day``, indexed by ``LandCover`` value."""
        doy = day.timetuple().tm_yday
        out = np.zeros(len(LandCover), dtype=np.float32)
        for c, (base, amp, peak, sharp) in _PHENOLOGY.items():
            season = 0.5 * (1 + np.cos(2 * np.pi * (doy - peak) / 365.25))
            out[c] = base + amp * season**sharp
        return out

    def reflectance(
        self,
        geobox: GeoBox,
        day: dt.date,
        bands: Sequence[str] = BANDS,
        *,
        static: StaticLayers | None = None,
    ) -> dict[str, np.ndarray]:
        """Clear-sky surface reflectance (0..1, float32) per common band name on ``day``, dims (y, x).

        ``static`` reuses land cover, texture and event masks computed by :meth:`static_layers` for the same grid.
        """
        st = static if static is not None else self.static_layers(geobox)
        lc = st.landcover
        fv = self.vegetation_fraction(day)[lc]
        idx = [BANDS.index(b) for b in bands]
        out: dict[str, np.ndarray] = {}
        veg, soil, water, urban, char = (
            SPECTRA[k][idx] for k in ("vegetation", "soil", "water", "urban", "char")
        )
        is_water = lc == LandCover.WATER
        is_urban = lc == LandCover.URBAN
        overrides = []  # (mask, spectrum-per-band or callable weight)
        for ev, mask in zip(self.events, st.event_masks, strict=True):
            if day < ev.start:
                continue
            if ev.kind == "deforestation":
                overrides.append((mask, soil * np.float32(0.95), None))
            elif ev.kind == "burn":
                recovered = min(1.0, (day - ev.start).days / 730.0)  # half-recovered after a year
                overrides.append((mask, char, recovered))
            elif ev.kind == "flood" and ev.active(day):
                overrides.append((mask, water, None))
        for j, b in enumerate(bands):
            r = soil[j] + fv * (veg[j] - soil[j])
            r = np.where(is_urban, 0.65 * urban[j] + 0.35 * r, r)
            r = r * st.texture
            r = np.where(is_water, water[j] * (2.0 - st.texture), r)
            for mask, spec, recovered in overrides:
                new = spec[j] * st.texture
                if recovered is not None:
                    new = (1 - recovered) * new + recovered * r
                r = np.where(mask, new, r)
            out[b] = r.astype(np.float32)
        return out

    def static_layers(self, geobox: GeoBox) -> StaticLayers:
        """Land cover, texture and event masks of ``geobox``: the parts of the truth that do not change by date."""
        pts = self.points(geobox)
        return StaticLayers(
            points=pts,
            landcover=self.landcover(geobox, pts),
            texture=self.texture(pts),
            event_masks=tuple(self.event_mask(geobox, ev) for ev in self.events),
        )

    # ----- events ---------------------------------------------------------------------------------------------
    def _plant_events(self, rng: np.random.Generator) -> tuple[Event, ...]:
        c = self.config
        w = c.tile_width_m
        span = (c.end - c.start).days
        ox, oy = self._origin
        specs = [  # kind, centre (fraction of tile width from AOI centre), radius, start fraction, duration days
            ("deforestation", (-0.45, 0.15), 0.08, 0.35, None, LandCover.FOREST),
            ("burn", (0.0, -0.18), 0.10, 0.55, None, LandCover.FOREST),
            ("flood", (0.42, 0.12), 0.08, 0.72, max(20, span // 12), LandCover.CROPLAND),
        ]
        out = []
        for kind, (fx, fy), fr, fs, dur, lc in specs:
            n = 14
            ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
            rad = fr * w * (1 + 0.18 * rng.uniform(-1, 1, n))
            pts = [
                (ox + fx * w + r * np.cos(a), oy + fy * w + r * np.sin(a))
                for r, a in zip(rad, ang, strict=True)
            ]
            pts.append(pts[0])
            start = c.start + dt.timedelta(days=int(round(fs * span)))
            end = start + dt.timedelta(days=dur) if dur else None
            out.append(Event(kind, polygon(pts, crs=c.truth_epsg), start, end, lc))
        return tuple(out)


@dataclass(frozen=True)
class StaticLayers:
    """Per-grid layers that do not change with the date (computed once per scene tile and resolution)."""

    points: GridPoints
    landcover: np.ndarray
    texture: np.ndarray
    event_masks: tuple[np.ndarray, ...]


__all__ = [
    "EVENT_KINDS",
    "EventKind",
    "BANDS",
    "Event",
    "GridPoints",
    "LandCover",
    "Landscape",
    "PlaneWaves",
    "SPECTRA",
    "StaticLayers",
]
