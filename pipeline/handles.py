"""Open raster datasets of the reader, kept per worker thread (LRU), bounded per process.

Opening a COG costs milliseconds (header and IFD parsing), as much as decoding a 512 x 512 window, and a tile's
read task opens every date's file: handles are cached per thread (rasterio datasets are not thread-safe), at most
:func:`handle_budget` per process, and forgotten -- with GDAL's cached state of the file -- after a failed read.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections import OrderedDict
from functools import lru_cache

import rasterio
from rasterio.errors import RasterioError

__all__ = ["MAX_HANDLES", "forget", "handle_budget", "open_dataset", "open_handles", "use_env_key"]


_HANDLES = threading.local()
#: most dataset handles one worker *process* keeps open (shared by its threads), and never more than half of the
#: process's open-file limit (``RLIMIT_NOFILE``): GDAL, sockets and the Zarr sink need descriptors too. An open
#: COG holds ~260 kB (libtiff's tile buffer and decompressor state; measured on the simulator's 512 px COGs),
#: so 512 handles were ~130 MB per worker, growing with the number of dates read: 64 bound it to ~17 MB, at
#: the price of reopening (~4 ms) the files of long series for each tile (with the 16 MiB GDAL block cache of
#: ``catalog.defaults`` this cut the 16x-area and 16x-dates peaks by ~100 MB with no measurable slowdown on the
#: I/O-floor benchmark: benchmarks/README.md, Memory)
MAX_HANDLES = 64


class _HandleCache(OrderedDict):
    """One thread's open datasets (rasterio datasets are not thread-safe), LRU; weak-referenceable so the
    process-wide budget is split among the threads alive (hashed by identity)."""

    __hash__ = object.__hash__


_CACHES: weakref.WeakSet = weakref.WeakSet()
_CACHES_LOCK = threading.Lock()


def handle_budget() -> int:
    """Handles this process may keep open in total: :data:`MAX_HANDLES`, at most half the soft open-file limit."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # no resource module (Windows)
        return MAX_HANDLES
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return MAX_HANDLES
    return max(4, min(MAX_HANDLES, soft // 2))


def _thread_cache() -> tuple[_HandleCache, int]:
    """This thread's handle cache and how many handles it may hold (the process budget / threads with a cache)."""
    cache: _HandleCache | None = getattr(_HANDLES, "cache", None)
    if cache is None:
        cache = _HANDLES.cache = _HandleCache()
        with _CACHES_LOCK:
            _CACHES.add(cache)
    with _CACHES_LOCK:
        n = max(len(_CACHES), 1)
    return cache, max(2, handle_budget() // n)


def open_handles() -> int:
    """Dataset handles the reader's caches hold open in this process (all threads)."""
    with _CACHES_LOCK:
        caches = list(_CACHES)
    return sum(1 for c in caches for src, _ in list(c.values()) if not src.closed)


def open_dataset(href: str, overview_level: int | None = None) -> tuple[rasterio.DatasetReader, str]:
    """An open dataset for ``href`` and its CRS as WKT, from this thread's cache (LRU, bounded per process).

    Opening a COG costs milliseconds (header and IFD parsing), as much as decoding a 512 x 512 window; a tile
    read task opens every date's file, and every tile opens it again, so handles are kept per worker thread
    (rasterio datasets are not thread-safe), at most :func:`handle_budget` per process in all. Local files are
    keyed by size and modification time as well, so a rewritten file is reopened.
    """
    cache, limit = _thread_cache()
    key: tuple = (href, overview_level, getattr(_HANDLES, "env_key", None))  # other credentials: other handle
    if "://" not in href and not href.startswith("/vsi"):
        st = os.stat(href)
        key = (*key, st.st_size, st.st_mtime_ns)
    hit = cache.get(key)
    if hit is not None and not hit[0].closed:
        cache.move_to_end(key)
        return hit
    while len(cache) >= limit:  # make room first: the budget holds while the new handle is open
        _, (old, _wkt) = cache.popitem(last=False)
        old.close()
    if overview_level is None:
        src = rasterio.open(href)
    else:
        src = rasterio.open(href, overview_level=overview_level)
    if src.crs is None:
        src.close()
        raise RasterioError(f"{href} has no CRS; georeference it (e.g. gdal_edit.py -a_srs EPSG:XXXX)")
    cache[key] = (src, src.crs.to_wkt())
    return cache[key]


def forget(href: str) -> None:
    """Close and drop this thread's cached handles of ``href`` and GDAL's cached state of it (its /vsicurl-family
    cache remembers a failed open as "no such file"), so that the next read reopens it from scratch."""
    cache: _HandleCache | None = getattr(_HANDLES, "cache", None)
    for key in [k for k in (cache or {}) if k[0] == href]:
        src, _ = cache.pop(key)
        with contextlib.suppress(Exception):
            src.close()
    lib = _libgdal()
    if lib is not None and href.startswith("/vsi"):
        with contextlib.suppress(Exception):
            lib.VSICurlPartialClearCache(href.encode())


@lru_cache(maxsize=1)
def _libgdal():
    """The GDAL library rasterio runs on (for the one C call rasterio does not expose), or None."""
    import ctypes
    import ctypes.util

    try:
        with open(
            "/proc/self/maps"
        ) as maps:  # the copy already loaded (a wheel's bundled libgdal, or conda's)
            path = next((ln.split()[-1] for ln in maps if "libgdal" in ln and ".so" in ln), None)
    except OSError:
        path = None
    path = path or ctypes.util.find_library("gdal")
    try:
        return ctypes.CDLL(path) if path else None
    except OSError:
        return None


def use_env_key(key: int | None) -> None:
    """The GDAL settings (their hash) this thread's next opens run under: a handle opened under other settings
    (other credentials) is not reused."""
    _HANDLES.env_key = key
