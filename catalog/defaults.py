"""Defaults of remote and local reads, in one place: the GDAL settings every read runs under and the retry policy.

The reader (:mod:`orbitcube.pipeline.reader`), the batch runner (:mod:`orbitcube.pipeline.run`) and :func:`orbitcube.catalog.storage.gdal_options`
take their settings from here, and every retry layer its limit from :data:`RETRY_POLICY`. Nothing is installed in a Dask worker's environment: the read tasks carry these
settings (and credentials, as :class:`orbitcube.catalog.storage.Secret` strings) inside the graph, so a shared cluster keeps
no trace of a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RetryPolicy:
    """How often one remote object is tried before a run gives up: three layers, each with a stated limit.

    1. GDAL (``GDAL_HTTP_MAX_RETRY`` in :data:`FAST_COG_READS`) retries an HTTP request answered 429/500/502/503/504,
       reset or timed out ``gdal_retries`` times itself (delay ``GDAL_HTTP_RETRY_DELAY``, doubling): up to
       ``gdal_retries + 1`` requests per open or range read.
    2. The reader (:func:`orbitcube.pipeline.reader._read`) reopens a remote asset whose read still fails with a transient
       error (:func:`orbitcube.catalog.storage.is_transient`: connection refused/reset, timeout, HTTP 429/5xx)
       ``read_attempts`` times in all; other errors are not retried.
    3. The batch runner (:func:`orbitcube.pipeline.run.run_recipe`) re-runs a tile whose failure is transient
       ``tile_attempts`` times in all (that is, at most once more); a tile that failed for any other reason is
       never re-run.

    So a permanently failing object gets at most (3 + 1) x 3 x 2 = **24 requests** (:attr:`max_requests`) from
    each tile that reads it before the run fails (times ``cluster.max_tiles_in_flight`` when several tiles in
    flight read it; a recipe's ``cluster.gdal_env`` may set another ``GDAL_HTTP_MAX_RETRY``). fsspec writes and
    STAC/marker files go through :func:`orbitcube.catalog.storage.retry` (4 attempts) instead.
    """

    gdal_retries: int = 3
    read_attempts: int = 3
    tile_attempts: int = 2

    @property
    def max_requests(self) -> int:
        """Requests on one permanently failing object by one tile of a run, all layers multiplied."""
        return (self.gdal_retries + 1) * self.read_attempts * self.tile_attempts


#: the one retry policy of remote reads (see :class:`RetryPolicy`)
RETRY_POLICY = RetryPolicy()

#: The one table of GDAL settings orbitcube reads under (the reader, the batch runner and :func:`gdal_options` take
#: them from here; nothing is installed in a worker's environment: the read tasks carry them inside the graph).
#: Local files get :data:`LOCAL_READS` only; remote (object-store / HTTP) reads get all of it.
FAST_COG_READS: dict[str, Any] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no directory listing per open (no .aux.xml/.ovr probing)
    # block cache per process, in bytes: rasterio.Env passes an int to GDALSetCacheMax64 and refuses strings (a
    # plain 16 would mean 16 bytes there, while GDAL reads "16" from the environment as MiB). 16 MiB: a read
    # window decodes each of its blocks once and neighbouring tiles rarely run on the same worker, so a larger
    # cache bought no reuse but filled up with the AOI (64 MiB cost ~50 MB a worker at 16x the area, measured);
    # GDAL's default (5 % of RAM) would be held per worker process since readers keep handles open
    "GDAL_CACHEMAX": 16 * 2**20,
    "GDAL_HTTP_MULTIPLEX": "YES",  # several range requests on one HTTP/2 connection
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",  # one request for adjacent tiles
    "GDAL_HTTP_VERSION": "2TLS",  # HTTP/2 over TLS where the server offers it
    # cache of recently read ranges per open file (headers, IFDs, neighbouring tiles): remote reads only, local
    # files are read through the OS page cache and a VSI cache would hold a second copy per handle
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(4 * 2**20),  # ... of 4 MiB: handles stay open, so this is held per handle
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.TIFF,.json,.xml",  # no probing of sidecar files
    "CPL_VSIL_CURL_CACHE_SIZE": "67108864",  # 64 MiB of /vsicurl/ block cache shared by the process
    # GDAL retries HTTP 429/500/502/503/504 and connection resets / timeouts this many times (delay doubles):
    # the first layer of RETRY_POLICY
    "GDAL_HTTP_MAX_RETRY": str(RETRY_POLICY.gdal_retries),
    "GDAL_HTTP_RETRY_DELAY": "0.5",  # seconds before the first GDAL retry
    "GDAL_HTTP_TIMEOUT": "60",  # seconds per HTTP request
    "GDAL_HTTP_CONNECTTIMEOUT": "10",  # seconds to connect
}
#: the settings of :data:`FAST_COG_READS` that every read runs under, local files included
LOCAL_READS: dict[str, Any] = {
    k: FAST_COG_READS[k] for k in ("GDAL_DISABLE_READDIR_ON_OPEN", "GDAL_CACHEMAX")
}


__all__ = [
    "FAST_COG_READS",
    "LOCAL_READS",
    "RETRY_POLICY",
    "RetryPolicy",
]
