"""Render one acquisition into Cloud-Optimized GeoTIFFs, one file per band, with its quality layer.

Per resolution of the sensor: clear-sky truth + haze, blended with cloud by opacity, darkened under shadow, plus
sensor noise, encoded to uint16 with the product's scale and offset (nodata 0 outside the swath), then the
quality layer (Sentinel-2 SCL or Landsat QA_PIXEL) from the same cloud, shadow and land cover.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry, polygon
from rasterio.features import rasterize

from orbitcube.catalog.classes import QA_CONFIDENCE_BITS, SCL, QABit
from orbitcube.catalog.products import S2_BASELINE_0400_DATE
from orbitcube.catalog.simulator.atmosphere import (
    CLOUD_REFLECTANCE,
    MEDIUM_CLOUD,
    SHADOW_FACTOR,
    THIN_CLOUD,
    PassAtmosphere,
    pass_seed,
)
from orbitcube.catalog.simulator.landscape import LandCover, Landscape, StaticLayers
from orbitcube.catalog.simulator.plan import Acquisition, MissionConfig
from orbitcube.catalog.simulator.sensors import BandSpec

NOISE_SIGMA = 0.003


@dataclass
class SceneRecord:
    """What was written for one acquisition: band files, grids, measured cloud cover, sun angles."""

    acquisition: Acquisition
    files: dict[str, Path] = field(default_factory=dict)
    geoboxes: dict[str, GeoBox] = field(default_factory=dict)
    cloud_cover: float = 0.0
    valid_fraction: float = 1.0
    sun_azimuth: float = 0.0
    sun_elevation: float = 0.0


def coverage_geometry(acquisition: Acquisition) -> Geometry:
    """The scene's valid-data polygon in the tile CRS: the tile or path footprint, minus the swath cut."""
    t = acquisition.tile
    x0, y1, x1, y0 = t.x0, t.y1, t.x0 + t.width_m, t.y1 - t.height_m
    rect = [(x0, y0), (x0, y1), (x1, y1), (x1, y0), (x0, y0)]
    geom = polygon(list(t.footprint) if t.footprint else rect, crs=t.epsg)
    if acquisition.swath_cut:
        # the swath edge runs slightly oblique to the tile grid, as real swath edges do
        xt = x0 + t.width_m * (acquisition.swath_cut - 0.04)
        xb = x0 + t.width_m * (acquisition.swath_cut + 0.04)
        geom = geom & polygon([(xt, y1), (x1, y1), (x1, y0), (xb, y0), (xt, y1)], crs=t.epsg)
    return geom


def coverage(acquisition: Acquisition, geobox: GeoBox) -> np.ndarray:
    """True where ``geobox``'s pixel centres fall inside the scene's valid data, dims (y, x); any grid and CRS."""
    geom = coverage_geometry(acquisition).to_crs(geobox.crs)
    return rasterize(
        [(geom.geom, 1)], out_shape=geobox.shape.yx, transform=geobox.transform, fill=0, dtype="uint8"
    ).astype(bool)


def encode(reflectance: np.ndarray, band: BandSpec, valid: np.ndarray) -> np.ndarray:
    """Reflectance (float) to the product's uint16 digital numbers; nodata (0 when it has none) where not
    ``valid``."""
    dn = np.round((reflectance - band.offset) / band.scale)
    dn = np.clip(dn, 1, np.iinfo(np.uint16).max).astype(np.uint16)
    dn[~valid] = band.nodata or 0
    return dn


def scene_band(config: MissionConfig, acquisition: Acquisition, band: BandSpec) -> BandSpec:
    """``band`` as this scene encodes it: with ``config.s2_baseline_change``, Sentinel-2 reflectance before
    25 January 2022 has no BOA offset (processing baseline 03.01); with ``nodata_in_files=False`` reflectance
    bands declare no nodata (files and items)."""
    if not band.is_reflectance:
        return band
    if config.s2_baseline_change and acquisition.sensor == "sentinel-2":
        if acquisition.datetime.date() < S2_BASELINE_0400_DATE:
            band = replace(band, offset=0.0)
    if not config.nodata_in_files:
        band = replace(band, nodata=None)
    return band


def s2_processing_baseline(config: MissionConfig, acquisition: Acquisition) -> str | None:
    """The ``s2:processing_baseline`` a scene's item states (only with ``config.s2_baseline_change``)."""
    if not (config.s2_baseline_change and acquisition.sensor == "sentinel-2"):
        return None
    return "03.01" if acquisition.datetime.date() < S2_BASELINE_0400_DATE else "04.00"


def scl_layer(
    static: StaticLayers, opacity: np.ndarray, shadow: np.ndarray, valid: np.ndarray, ndvi: np.ndarray
) -> np.ndarray:
    """ESA scene classification from the planted cloud, shadow and land cover (uint8, dims (y, x))."""
    scl = np.full(valid.shape, SCL.NOT_VEGETATED, dtype=np.uint8)
    scl[ndvi > 0.3] = SCL.VEGETATION
    scl[(static.landcover == LandCover.WATER) | (ndvi < -0.05)] = SCL.WATER
    scl[shadow] = SCL.CLOUD_SHADOWS
    cloud = opacity > 0
    scl[cloud & (opacity < THIN_CLOUD)] = SCL.THIN_CIRRUS
    scl[cloud & (opacity >= THIN_CLOUD) & (opacity < MEDIUM_CLOUD)] = SCL.CLOUD_MEDIUM_PROBABILITY
    scl[cloud & (opacity >= MEDIUM_CLOUD)] = SCL.CLOUD_HIGH_PROBABILITY
    scl[~valid] = SCL.NO_DATA
    return scl


def qa_pixel_layer(
    opacity: np.ndarray, shadow: np.ndarray, valid: np.ndarray, water: np.ndarray
) -> np.ndarray:
    """Landsat C2 QA_PIXEL bit flags from the planted cloud and shadow (uint16, dims (y, x))."""
    cloud = opacity > 0
    thin = cloud & (opacity < THIN_CLOUD)
    opaque = cloud & ~thin
    clear = ~cloud & ~shadow
    qa = np.zeros(valid.shape, dtype=np.int64)
    conf = QA_CONFIDENCE_BITS
    qa |= opaque << QABit.CLOUD | (opaque * 3) << conf["cloud"]  # cloud, high confidence
    qa |= thin << QABit.CIRRUS | (thin * 3) << conf["cirrus"]  # cirrus, high confidence
    qa |= shadow << QABit.CLOUD_SHADOW | (shadow * 3) << conf["cloud_shadow"]
    qa |= clear << QABit.CLEAR | (water & clear) << QABit.WATER
    qa |= (~cloud).astype(np.int64) << conf["cloud"]  # low cloud confidence where no cloud
    qa[~valid] = 1 << QABit.FILL
    return qa.astype(np.uint16)


def write_cog(path: Path, data: np.ndarray, geobox: GeoBox, *, nodata: int | None, resampling: str) -> None:
    """Write a single-band COG: 256 px tiles, ZSTD + predictor, internal overviews (``resampling``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # 256 px blocks (128 for small rasters: GDAL's COG driver accepts no less), and at least one overview level
    blocksize = 256 if min(data.shape) >= 512 else 128
    profile = {
        "driver": "COG",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": geobox.crs.to_wkt(),
        "transform": geobox.transform,
        "nodata": nodata,
        "compress": "ZSTD",
        "level": 3,
        "predictor": 2,
        "blocksize": blocksize,
        "overview_resampling": resampling,
        "overviews": "AUTO",
        **({"overview_count": 1} if min(data.shape) <= blocksize else {}),
        "num_threads": 1,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def render_scene(
    config: MissionConfig,
    acquisition: Acquisition,
    landscape: Landscape,
    out_dir: Path,
    statics: dict[tuple[str, float], StaticLayers],
) -> SceneRecord:
    """Render and write every band of ``acquisition`` under ``out_dir``; ``statics`` caches per-grid layers."""
    spec = acquisition.spec
    atm = PassAtmosphere.draw(config, acquisition)
    rec = SceneRecord(acquisition, sun_azimuth=atm.sun_azimuth, sun_elevation=atm.sun_elevation)
    day = acquisition.datetime.date()
    for res in spec.resolutions:
        gbox = acquisition.tile.geobox(res)
        key = (acquisition.tile.tile_id, res)
        if key not in statics:
            statics[key] = landscape.static_layers(gbox)
        st = statics[key]
        valid = coverage(acquisition, gbox)
        opacity = atm.opacity(st.points)
        cloud = opacity > 0
        shadow = atm.shadow(st.points, cloud)
        haze = atm.haze_base(st.points)
        bands = [b for b in spec.bands if b.resolution == res]
        reflect = [b for b in bands if b.is_reflectance]
        truth = landscape.reflectance(gbox, day, [b.common_name for b in reflect], static=st)
        for b in reflect:
            rng = np.random.default_rng(pass_seed(config, acquisition, f"{acquisition.tile.tile_id}/{b.key}"))
            r = truth[b.common_name] + atm.haze(haze, b.common_name)
            r = np.where(shadow, r * SHADOW_FACTOR, r)
            r = (1 - opacity) * r + opacity * CLOUD_REFLECTANCE
            r = r + rng.normal(0.0, NOISE_SIGMA, r.shape).astype(np.float32)
            path = out_dir / f"{b.key}.tif"
            sb = scene_band(config, acquisition, b)
            write_cog(path, encode(r, sb, valid), gbox, nodata=sb.nodata, resampling="average")
            rec.files[b.key] = path
            rec.geoboxes[b.key] = gbox
        mask_band = [b for b in bands if b.role == "mask"]
        if mask_band:
            mb = mask_band[0]
            if mb.key == "SCL":
                nir, red = landscape.reflectance(gbox, day, ["nir08", "red"], static=st).values()
                ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
                layer = scl_layer(st, opacity, shadow, valid, ndvi)
            else:
                layer = qa_pixel_layer(opacity, shadow, valid, st.landcover == LandCover.WATER)
            path = out_dir / f"{mb.key}.tif"
            write_cog(path, layer, gbox, nodata=mb.nodata, resampling="nearest")
            rec.files[mb.key] = path
            rec.geoboxes[mb.key] = gbox
            n_valid = int(valid.sum())
            rec.valid_fraction = n_valid / valid.size
            rec.cloud_cover = round(100.0 * int((cloud & valid).sum()) / max(n_valid, 1), 4)
    # keep band order as the sensor lists it
    rec.files = {b.key: rec.files[b.key] for b in spec.bands}
    rec.geoboxes = {b.key: rec.geoboxes[b.key] for b in spec.bands}
    return rec


__all__ = [
    "NOISE_SIGMA",
    "SceneRecord",
    "coverage",
    "coverage_geometry",
    "encode",
    "qa_pixel_layer",
    "render_scene",
    "s2_processing_baseline",
    "scene_band",
    "scl_layer",
    "write_cog",
]
