"""Analytics on the cube: band math, spectral indices, composites, temporal resampling and gap-filling, per-pixel
time series (trend, anomaly, seasons), change detection and zonal statistics.

Pure, dask-aware functions: they keep dims, coords, the ``spatial_ref`` CRS and attributes where they can, name
their outputs, stay lazy on dask-backed cubes and give the same numbers on numpy-backed ones.
"""

from orbitcube.pipeline.analytics.bandmath import band_math
from orbitcube.pipeline.analytics.change import detect_breaks, difference_change, dnbr_severity
from orbitcube.pipeline.analytics.composites import best_pixel_composite, cloud_fraction, composite
from orbitcube.pipeline.analytics.events import detect_events
from orbitcube.pipeline.analytics.indices import spectral_index
from orbitcube.pipeline.analytics.score import score_events
from orbitcube.pipeline.analytics.temporal import gap_fill, resample_time
from orbitcube.pipeline.analytics.timeseries import anomaly, linear_trend, seasonal_stats
from orbitcube.pipeline.analytics.zonal import zonal_stats

__all__ = [
    "anomaly",
    "band_math",
    "best_pixel_composite",
    "cloud_fraction",
    "composite",
    "detect_breaks",
    "detect_events",
    "difference_change",
    "dnbr_severity",
    "gap_fill",
    "linear_trend",
    "resample_time",
    "score_events",
    "seasonal_stats",
    "spectral_index",
    "zonal_stats",
]
