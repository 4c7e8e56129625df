"""Ground truth of a simulated mission, evaluable on any grid: what tests score analytics and loaders against."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from orbitcube.catalog.simulator.atmosphere import PassAtmosphere, pass_seed
from orbitcube.catalog.simulator.landscape import BANDS, Event, EventKind, Landscape
from orbitcube.catalog.simulator.plan import Acquisition, MissionConfig, acquisition_plan
from orbitcube.catalog.simulator.scenes import NOISE_SIGMA, coverage
from orbitcube.catalog.simulator.sensors import SensorName


class Truth:
    """The planted truth of the mission defined by ``config``.

    All arrays are evaluated at the pixel centres of the given odc-geo ``GeoBox`` (any CRS) with dims (y, x), or
    (time, y, x) for cubes. Reflectance is surface reflectance (unitless, 0..1) by STAC common band name.
    """

    def __init__(self, config: MissionConfig) -> None:
        self.config = config
        self.landscape = Landscape(config)
        self.acquisitions: list[Acquisition] = acquisition_plan(config)

    @property
    def events(self) -> tuple[Event, ...]:
        """The planted events (deforestation, burn, flood) with WGS84 polygons and dates."""
        return self.landscape.events

    def event(self, kind: EventKind) -> Event:
        """The planted event of ``kind``."""
        for ev in self.events:
            if ev.kind == kind:
                return ev
        raise KeyError(f"no planted event of kind {kind!r}; planted: {[e.kind for e in self.events]}")

    def landcover(self, geobox: GeoBox) -> np.ndarray:
        """Land cover class per pixel (``LandCover`` values, uint8)."""
        return self.landscape.landcover(geobox)

    def event_mask(self, geobox: GeoBox, kind: EventKind) -> np.ndarray:
        """True where the planted event ``kind`` covers the pixel centre."""
        return self.landscape.event_masks(geobox, kind)

    def reflectance(
        self, geobox: GeoBox, day: dt.date, bands: Sequence[str] = BANDS
    ) -> dict[str, np.ndarray]:
        """Clear-sky surface reflectance per common band name on ``day`` (no haze, no noise), float32."""
        return self.landscape.reflectance(geobox, day, bands)

    def passes(self, sensor: SensorName = "sentinel-2") -> dict[dt.date, list[Acquisition]]:
        """Acquisitions of ``sensor`` grouped by solar day (the two tiles of one pass share a day)."""
        out: dict[dt.date, list[Acquisition]] = {}
        for a in self.acquisitions:
            if a.sensor == sensor:
                out.setdefault(a.datetime.date(), []).append(a)
        return out

    def atmosphere(self, acquisition: Acquisition) -> PassAtmosphere:
        """The clouds, shadows and haze of ``acquisition``'s pass."""
        return PassAtmosphere.draw(self.config, acquisition)

    def masks(self, geobox: GeoBox, acquisition: Acquisition) -> dict[str, np.ndarray]:
        """Planted ``cloud``, ``shadow`` and ``covered`` (inside the swath) masks of one acquisition on ``geobox``."""
        atm = self.atmosphere(acquisition)
        pts = self.landscape.points(geobox)
        cloud = atm.opacity(pts) > 0
        return {"cloud": cloud, "shadow": atm.shadow(pts, cloud), "covered": coverage(acquisition, geobox)}

    def clear_sky_cube(
        self, geobox: GeoBox, times: Sequence[dt.date] | None = None, bands: Sequence[str] = ("red", "nir")
    ) -> xr.Dataset:
        """Clear-sky truth as a cube (time, y, x) of float32 per band; ``times`` default to the Sentinel-2 days."""
        days = (
            list(times) if times is not None else sorted(self.passes("sentinel-2") or self.passes("landsat"))
        )
        st = self.landscape.static_layers(geobox)
        data = {b: np.empty((len(days), *geobox.shape.yx), dtype=np.float32) for b in bands}
        for i, d in enumerate(days):
            for b, arr in self.landscape.reflectance(geobox, d, bands, static=st).items():
                data[b][i] = arr
        return _cube(geobox, days, data, "clear-sky surface reflectance (simulator truth)")

    def observed_cube(
        self,
        geobox: GeoBox,
        bands: Sequence[str] = ("red", "nir"),
        sensor: SensorName = "sentinel-2",
        *,
        noise: bool = True,
    ) -> xr.Dataset:
        """What a perfect loader returns: per solar day, truth (+ haze and noise) where some scene of the pass
        covers the pixel and it is neither cloud nor shadow; NaN elsewhere. Dims (time, y, x), float32."""
        passes = self.passes(sensor)
        days = sorted(passes)
        st = self.landscape.static_layers(geobox)
        data = {b: np.full((len(days), *geobox.shape.yx), np.nan, dtype=np.float32) for b in bands}
        for i, d in enumerate(days):
            acqs = passes[d]
            atm = self.atmosphere(acqs[0])
            cloud = atm.opacity(st.points) > 0
            bad = cloud | atm.shadow(st.points, cloud)
            covered = np.zeros(geobox.shape.yx, dtype=bool)
            for a in acqs:
                covered |= coverage(a, geobox)
            ok = covered & ~bad
            rng = np.random.default_rng(pass_seed(self.config, acqs[0], "observed-cube"))
            haze = atm.haze_base(st.points)
            for b, arr in self.landscape.reflectance(geobox, d, bands, static=st).items():
                if noise:
                    arr = arr + atm.haze(haze, b) + rng.normal(0, NOISE_SIGMA, arr.shape).astype(np.float32)
                data[b][i][ok] = arr[ok]
        return _cube(geobox, days, data, f"simulated {sensor} observations (clouds, shadows, nodata as NaN)")


def _cube(geobox: GeoBox, days: Sequence[dt.date], data: dict[str, np.ndarray], title: str) -> xr.Dataset:
    coords = {"time": np.array([np.datetime64(d, "ns") for d in days]), **xr_coords(geobox, dims=("y", "x"))}
    ds = xr.Dataset(
        {b: (("time", "y", "x"), a) for b, a in data.items()}, coords=coords, attrs={"title": title}
    )
    for v in ds.data_vars:
        ds[v].attrs.update(units="1", grid_mapping="spatial_ref")
    return ds


__all__ = [
    "Truth",
]
