"""Analytics on the cube: band math, spectral indices, composites. Pure, dask-aware functions that keep dims,
coords and CRS."""

from pipeline.analytics.bandmath import band_math
from pipeline.analytics.change import detect_breaks, difference_change, dnbr_severity
from pipeline.analytics.composites import composite
from pipeline.analytics.indices import spectral_index

__all__ = ["band_math", "composite", "detect_breaks", "difference_change", "dnbr_severity", "spectral_index"]
