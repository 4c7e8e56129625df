"""STAC extension schema URLs and media types used by every item orbitcube writes (one place, one version each).

The v1.x eo/raster schemas keep ``eo:bands`` / ``raster:bands`` arrays on assets, which odc-stac and stackstac read.
"""

EXT = {
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "view": "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "grid": "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v1.1.0/schema.json",
}
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
GTIFF = "image/tiff; application=geotiff"


__all__ = [
    "COG",
    "EXT",
    "GTIFF",
]
