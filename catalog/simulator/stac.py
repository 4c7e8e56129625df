"""STAC Items and Collections for simulated scenes (STAC 1.1 with proj, eo, raster, view, sat, grid, classification)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pystac
from odc.geo.geom import Geometry

from orbitcube.catalog.classes import qa_pixel_bitfields, scl_classes
from orbitcube.catalog.extensions import COG, EXT
from orbitcube.catalog.simulator.plan import MissionConfig
from orbitcube.catalog.simulator.scenes import SceneRecord
from orbitcube.catalog.simulator.sensors import BandSpec, SensorSpec


def _asset_fields(spec: SensorSpec, key: str, band: BandSpec | None = None) -> dict:
    b = band or spec.band(key)
    raster = {"nodata": b.nodata, "data_type": b.data_type, "spatial_resolution": b.resolution}
    if b.nodata is None:
        del raster["nodata"]
    fields: dict = {"gsd": b.resolution}
    if b.is_reflectance:
        raster.update(scale=b.scale, offset=b.offset, unit="1")
        fields["eo:bands"] = [
            {
                "name": b.key,
                "common_name": b.common_name,
                "center_wavelength": b.center_wavelength,
                "full_width_half_max": b.full_width_half_max,
            }
        ]
        roles = ["data", "reflectance"]
        title = f"{b.key} ({b.common_name}) surface reflectance, {int(b.resolution)} m"
    elif key == "SCL":
        fields["classification:classes"] = scl_classes()
        roles = ["data", "cloud", "classification"]
        title = f"Scene classification map (SCL), {int(b.resolution)} m"
    else:
        fields["classification:bitfields"] = qa_pixel_bitfields()
        roles = ["data", "cloud", "saturation"]
        title = "Pixel quality assessment (QA_PIXEL) bit flags"
    fields["raster:bands"] = [raster]
    return {"title": title, "roles": roles, **fields}


def scene_item(config: MissionConfig, rec: SceneRecord, item_dir: Path) -> pystac.Item:
    """The STAC Item of one rendered scene; asset hrefs are absolute paths (made relative when saved)."""
    acq = rec.acquisition
    spec = acq.spec
    gb = next(iter(rec.geoboxes.values()))
    from orbitcube.catalog.simulator.scenes import coverage_geometry

    footprint: Geometry = coverage_geometry(acq).to_crs(4326)
    props = {
        "platform": acq.platform,
        "constellation": "sentinel-2" if acq.sensor == "sentinel-2" else "landsat",
        "instruments": [spec.instrument],
        "eo:cloud_cover": rec.cloud_cover,
        "proj:code": f"EPSG:{gb.crs.epsg}",
        "view:sun_azimuth": round(rec.sun_azimuth, 3),
        "view:sun_elevation": round(rec.sun_elevation, 3),
        "sat:orbit_state": "descending",
        "sat:relative_orbit": acq.relative_orbit,
        "orbitcube:simulated": True,
        "orbitcube:valid_fraction": round(rec.valid_fraction, 6),
    }
    from orbitcube.catalog.simulator.scenes import s2_processing_baseline, scene_band

    if baseline := s2_processing_baseline(config, acq):
        props["s2:processing_baseline"] = baseline
    if acq.sensor == "sentinel-2":
        props["grid:code"] = f"MGRS-{acq.tile.tile_id}"
        props["s2:mgrs_tile"] = acq.tile.tile_id
    else:
        props["grid:code"] = f"WRS2-{acq.tile.tile_id}"
        props["landsat:wrs_path"], props["landsat:wrs_row"] = acq.tile.tile_id[:3], acq.tile.tile_id[3:]
    item = pystac.Item(
        id=acq.item_id,
        geometry=footprint.json,
        bbox=list(footprint.boundingbox),
        datetime=acq.datetime,
        properties=props,
        collection=spec.collection_id,
        stac_extensions=[EXT[k] for k in ("eo", "raster", "proj", "view", "sat", "grid", "classification")],
    )
    for key, path in rec.files.items():
        g = rec.geoboxes[key]
        extra = _asset_fields(spec, key, scene_band(config, acq, spec.band(key)))
        title, roles = extra.pop("title"), extra.pop("roles")
        extra["proj:shape"] = list(g.shape.yx)
        extra["proj:transform"] = list(g.transform)[:6]
        item.add_asset(
            key,
            pystac.Asset(
                href=str(path.resolve()), media_type=COG, title=title, roles=roles, extra_fields=extra
            ),
        )
    return item


def sensor_collection(config: MissionConfig, spec: SensorSpec, items: list[pystac.Item]) -> pystac.Collection:
    """The STAC Collection of one simulated sensor, with extents from ``items`` and ``item_assets``."""
    from odc.geo.geom import unary_union

    geoms = [Geometry(it.geometry, crs=4326) for it in items]
    bbox = list(unary_union(geoms).boundingbox) if geoms else list(config.aoi_bbox)
    times = sorted(it.datetime for it in items if it.datetime) or [
        dt.datetime.combine(config.start, dt.time(), dt.UTC)
    ]
    coll = pystac.Collection(
        id=spec.collection_id,
        title=spec.title,
        description=(
            f"{spec.title}: scenes rendered by the orbitcube mission simulator (seed {config.seed}) with planted "
            "ground truth (land cover, clear-sky reflectance, clouds, shadows, events). Not real data."
        ),
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[times[0], times[-1]]])),
        license="CC0-1.0",
        stac_extensions=[EXT["eo"], EXT["raster"], EXT["proj"]],
        summaries=pystac.Summaries(
            {
                "platform": list(spec.platforms),
                "instruments": [spec.instrument],
                "gsd": list(spec.resolutions),
            }
        ),
    )
    ia = {}
    for b in spec.bands:
        extra = _asset_fields(spec, b.key)
        title, roles = extra.pop("title"), extra.pop("roles")
        ia[b.key] = pystac.ItemAssetDefinition.create(
            title=title, description=None, media_type=COG, roles=roles
        )
        ia[b.key].properties.update(extra)
    coll.item_assets = ia
    return coll


__all__ = [
    "scene_item",
    "sensor_collection",
]
