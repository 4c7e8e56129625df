"""The fused per-tile reader: read, mask, scale and mosaic every scene of one output tile in one task.

This is what runs on the Dask workers. One call of :func:`read_tile` produces the cube's values for one output
tile (all requested bands, all time steps) from the scenes that intersect it:

1. for each time step, its scenes in mosaic order (earliest first, then by id);
2. for each scene, its quality layer (SCL / QA_PIXEL) is read once onto the tile (nearest), turned into a mask
   by class name and optionally dilated (read on a padded tile so dilation is seamless across tile edges);
3. each band is read onto the tile -- a plain windowed read when the scene's grid already is the tile's grid
   (same CRS and resolution, whole-pixel offset), a nearest-neighbour pixel repeat when it is an integer
   multiple of it (20 m SCL on a 10 m grid), a cached pixel map for nearest/bilinear across CRSs
   (:mod:`pipeline.resample`), a GDAL warp otherwise (average, or outputs coarser than the source; reading a
   COG overview first when the output is at least 2x coarser);
4. nodata and masked pixels are dropped, scale/offset applied in float32, and only pixels that no earlier scene
   of the same step filled are written (first valid observation wins). A scene is not read for a band once every
   pixel of that band and step is filled.

Only small frozen records travel in the graph (:class:`AssetSpec`, :class:`SceneSpec`, :class:`ReadSpec` and
the tile's GeoBox); each task opens the files it needs itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.warp import reproject
from rasterio.windows import Window

from pipeline.errors import LoadError
from pipeline.masks import dilate, mask_from_qa_pixel, mask_from_scl
from pipeline.resample import apply_map, pixel_map

log = logging.getLogger(__name__)

#: GDAL settings every read runs under (plus the caller's): no directory listing on open, and a block cache of
#: 64 MB per worker process: a tile reads more blocks than that, so a larger cache buys little reuse, and GDAL's
#: default (5 % of RAM) would be held per worker since handles stay open (memory would grow with the AOI)
BASE_GDAL_ENV: dict[str, str | int] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_CACHEMAX": 64 * 2**20,  # bytes (rasterio sets it with GDALSetCacheMax64)
}
_TOL = 1e-6


def gdal_env(options: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()) -> dict[str, Any]:
    """:data:`BASE_GDAL_ENV` updated with ``options``, as ``rasterio.Env`` takes them: ``GDAL_CACHEMAX`` given
    the way GDAL reads it from the environment (a string: "512" = 512 MB as GDAL takes numbers below 100,000,
    "512MB", "1GB", "5%" of the physical memory, or a byte count) becomes an int number of bytes, since
    rasterio passes it to GDALSetCacheMax64 and refuses strings."""
    env = {**BASE_GDAL_ENV, **dict(options)}
    value = env.get("GDAL_CACHEMAX")
    if isinstance(value, str):
        env["GDAL_CACHEMAX"] = _cache_bytes(value)
    return env


def _cache_bytes(text: str) -> int:
    t = text.strip().upper().removesuffix("B")
    try:
        if t.endswith("%"):
            import psutil

            return int(psutil.virtual_memory().total * float(t[:-1]) / 100)
        for suffix, mult in (("K", 2**10), ("M", 2**20), ("G", 2**30)):
            if t.endswith(suffix):
                return int(float(t[:-1]) * mult)
        n = int(float(t))
    except ValueError:
        raise LoadError(
            f"GDAL_CACHEMAX={text!r}: use a number of MB below 100000, a byte count, '512MB', '1GB' or '5%'"
        ) from None
    return n * 2**20 if n < 100_000 else n


@dataclass(frozen=True)
class AssetSpec:
    """One single-band raster file of one scene: what to open and how to decode it."""

    href: str
    """Path or GDAL-readable URL (``/vsicurl/...``, ``/vsiaz/...``, ``/vsis3/...``)."""
    nodata: float | None
    scale: float = 1.0
    offset: float = 0.0

    def __repr__(self) -> str:  # the href may be a signed URL: Dask logs task arguments when a task fails
        from catalog.storage import redact

        return f"AssetSpec({redact(self.href)!r}, {self.nodata!r}, {self.scale!r}, {self.offset!r})"


@dataclass(frozen=True)
class SceneSpec:
    """One scene (STAC item) as the reader sees it: one asset per requested band, and its quality layer."""

    item_id: str
    assets: tuple[AssetSpec | None, ...]
    """Aligned with :attr:`ReadSpec.bands`; None where the scene's collection lacks the band."""
    quality: AssetSpec | None = None
    quality_kind: str | None = None
    """``"scl"`` (Sentinel-2 scene classification) or ``"qa_pixel"`` (Landsat Collection 2 bit flags)."""


@dataclass(frozen=True)
class ReadSpec:
    """What every tile of one load reads: band names, resampling per band, mask classes, dilation, errors."""

    bands: tuple[str, ...]
    resampling: tuple[str, ...]
    is_quality: tuple[bool, ...]
    mask: tuple[str, ...] = ()
    dilate_m: float = 0.0
    """Grow the mask by this many metres (CRS units) ..."""
    pixel_size: float = 1.0
    """... on output pixels of this size (CRS units)."""
    on_error: str = "fail"
    gdal_env: tuple[tuple[str, str], ...] = ()

    @property
    def dilate_px(self) -> int:
        """Padding in pixels that dilation needs around a tile."""
        return int(np.ceil(self.dilate_m / self.pixel_size - 1e-9)) if self.dilate_m > 0 else 0


_HANDLES = threading.local()
_MAX_HANDLES = 512


def _open(href: str, overview_level: int | None = None) -> tuple[rasterio.DatasetReader, str]:
    """An open dataset for ``href`` and its CRS as WKT, from this thread's cache (LRU, 512 handles).

    Opening a COG costs milliseconds (header and IFD parsing), as much as decoding a 512 x 512 window; a tile
    read task opens every date's file, and every tile opens it again, so handles are kept per worker thread
    (rasterio datasets are not thread-safe). Local files are keyed by size and modification time as well, so a
    rewritten file is reopened.
    """
    cache: OrderedDict | None = getattr(_HANDLES, "cache", None)
    if cache is None:
        cache = _HANDLES.cache = OrderedDict()
    key: tuple = (href, overview_level, getattr(_HANDLES, "env_key", None))  # other credentials: other handle
    if "://" not in href and not href.startswith("/vsi"):
        st = os.stat(href)
        key = (*key, st.st_size, st.st_mtime_ns)
    hit = cache.get(key)
    if hit is not None and not hit[0].closed:
        cache.move_to_end(key)
        return hit
    if overview_level is None:
        src = rasterio.open(href)
    else:
        src = rasterio.open(href, overview_level=overview_level)
    if src.crs is None:
        src.close()
        raise RasterioError(f"{href} has no CRS; georeference it (e.g. gdal_edit.py -a_srs EPSG:XXXX)")
    cache[key] = (src, src.crs.to_wkt())
    while len(cache) > _MAX_HANDLES:
        _, (old, _wkt) = cache.popitem(last=False)
        old.close()
    return cache[key]


@lru_cache(maxsize=64)
def _crs_wkt(crs) -> str:
    return crs.wkt


@lru_cache(maxsize=64)
def _same_crs(a_wkt: str, b_wkt: str) -> bool:
    if a_wkt == b_wkt:
        return True
    from pyproj import CRS

    return CRS.from_user_input(a_wkt) == CRS.from_user_input(b_wkt)


def _overview_level(src: rasterio.DatasetReader, ratio: float) -> int | None:
    """Index of the coarsest overview whose decimation does not exceed ``ratio`` (None: read full resolution)."""
    best = None
    for i, f in enumerate(src.overviews(1)):
        if f <= ratio + _TOL:
            best = i
    return best


def _paste_offset(src_tr, dst_gbox: GeoBox, k: int) -> tuple[int, int] | None:
    """Offset (rows, cols) of the tile's top-left corner from the source's, in tile pixels, when the tile grid is
    the source grid refined by the integer factor ``k`` (k == 1: the same grid, shifted by whole pixels);
    None when the grids are not so related (then the reader warps)."""
    d = dst_gbox.transform
    if abs(src_tr.b) > _TOL or abs(src_tr.d) > _TOL or abs(d.b) > _TOL or abs(d.d) > _TOL:
        return None
    if abs(src_tr.a - k * d.a) > _TOL * abs(d.a) or abs(src_tr.e - k * d.e) > _TOL * abs(d.e):
        return None
    col = (d.c - src_tr.c) / d.a
    row = (d.f - src_tr.f) / d.e
    if abs(col - round(col)) > _TOL or abs(row - round(row)) > _TOL:
        return None
    return round(row), round(col)


def _fill_value(nodata: float | None, dtype: np.dtype) -> float:
    if nodata is not None:
        return nodata
    return np.nan if np.issubdtype(dtype, np.floating) else 0


def _read_into(src: rasterio.DatasetReader, out: np.ndarray, row: int, col: int, k: int) -> bool:
    """Copy source pixels onto ``out`` (filled with nodata beforehand), each source pixel repeated k x k times;
    the tile's top-left pixel is (row, col) tile pixels from the source's. False when they do not overlap."""
    ny, nx = out.shape
    r0, c0 = max(row // k, 0), max(col // k, 0)
    r1 = min(-(-(row + ny) // k), src.height)
    c1 = min(-(-(col + nx) // k), src.width)
    if r1 <= r0 or c1 <= c0:
        return False
    block = src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
    if k > 1:
        block = np.repeat(np.repeat(block, k, axis=0), k, axis=1)
    by, bx = (
        row - r0 * k,
        col - c0 * k,
    )  # the tile's corner inside the block (negative: the block starts later)
    oy, ox, sy, sx = max(-by, 0), max(-bx, 0), max(by, 0), max(bx, 0)
    h, w = min(block.shape[0] - sy, ny - oy), min(block.shape[1] - sx, nx - ox)
    if h <= 0 or w <= 0:
        return False
    out[oy : oy + h, ox : ox + w] = block[sy : sy + h, sx : sx + w]
    return True


def read_asset(asset: AssetSpec, gbox: GeoBox, resampling: str = "nearest") -> np.ndarray | None:
    """Raw values of ``asset`` (its own dtype, band 1) on ``gbox`` (y, x), nodata outside the scene.

    Returns None when the scene does not overlap the grid at all. ``resampling`` is a GDAL/rasterio method name
    (``nearest``, ``bilinear``, ``average``, ...). Must be called inside a ``rasterio.Env``.
    """
    src, src_wkt = _open(asset.href)
    dtype = np.dtype(src.dtypes[0])
    nodata = asset.nodata if asset.nodata is not None else src.nodata
    dst_wkt = _crs_wkt(gbox.crs)
    same = _same_crs(src_wkt, dst_wkt)
    if same and resampling not in ("nearest", "bilinear"):
        ratio = abs(gbox.transform.a / src.transform.a)
        level = _overview_level(src, ratio) if ratio >= 2 else None
        if level is not None:  # an overview does most of the averaging
            src, _ = _open(asset.href, level)
    out = np.full(gbox.shape.yx, _fill_value(nodata, dtype), dtype=dtype)
    tr = src.transform
    if same:
        for k in sorted({1, round(abs(tr.a / gbox.transform.a))}):
            if k >= 1 and (k == 1 or resampling == "nearest"):
                at = _paste_offset(tr, gbox, k)
                if at is not None:
                    return out if _read_into(src, out, *at, k) else None
    if resampling in ("nearest", "bilinear"):
        pm = pixel_map(
            dst_wkt if same else src_wkt,
            tuple(tr)[:6],
            (src.height, src.width),
            dst_wkt,
            tuple(gbox.transform)[:6],
            tuple(gbox.shape.yx),
            resampling,
        )
        if pm is None:
            return None
        if pm.scale < 1.5:  # not coarser: gather from one windowed read
            block = src.read(1, window=Window(*pm.window))
            if resampling == "bilinear":
                out = np.full(gbox.shape.yx, np.nan, dtype=np.float32)
            return apply_map(pm, block, out, nodata)
    return _warp(src, out, gbox, nodata, resampling)


def _warp(src, out: np.ndarray, gbox: GeoBox, nodata, resampling: str) -> np.ndarray | None:
    reproject(
        source=rasterio.band(src, 1),
        destination=out,
        src_nodata=nodata,
        dst_nodata=nodata,
        dst_transform=gbox.transform,
        dst_crs=_crs_wkt(gbox.crs),
        resampling=Resampling[resampling],
    )
    return out


def _quality_mask(q: np.ndarray, kind: str, spec: ReadSpec, nodata) -> np.ndarray:
    if kind == "scl" and q.dtype == np.uint8:
        bad = _scl_lut(spec.mask)[q]  # a table lookup: several times faster than np.isin on uint8
    else:
        bad = mask_from_scl(q, spec.mask) if kind == "scl" else mask_from_qa_pixel(q, spec.mask)
    if nodata is not None and "nodata" in spec.mask:
        bad |= q == nodata
    p = spec.dilate_px
    if p > 0:
        bad = dilate(bad, spec.dilate_m, spec.pixel_size)[p:-p, p:-p]
    return bad


@lru_cache(maxsize=16)
def _scl_lut(classes: tuple[str, ...]) -> np.ndarray:
    return mask_from_scl(np.arange(256, dtype=np.uint8), classes)


#: attempts per remote asset read when it fails with a transient error (GDAL retries HTTP 429/5xx itself, but gives
#: up on a refused or repeatedly reset connection); the delay between attempts doubles from READ_RETRY_DELAY_S
READ_ATTEMPTS = 3
READ_RETRY_DELAY_S = 0.5


def _read(asset: AssetSpec, gbox: GeoBox, resampling: str) -> np.ndarray | None:
    """:func:`read_asset`, retried for object-store/HTTP hrefs that fail with a transient error (connection
    refused or reset, timeout, HTTP 5xx: :func:`catalog.storage.is_transient`), reopening the file each time."""
    from catalog.storage import is_transient, redact

    remote = asset.href.startswith("/vsi") or "://" in asset.href
    for n in range(1, READ_ATTEMPTS):
        try:
            return read_asset(asset, gbox, resampling)
        except RasterioError as exc:
            if not remote or not is_transient(exc):
                raise
            _forget(asset.href)
            log.warning(
                "reading %s failed (%s), retry %d of %d",
                redact(asset.href),
                redact(exc),
                n,
                READ_ATTEMPTS - 1,
            )
            time.sleep(READ_RETRY_DELAY_S * 2 ** (n - 1))
    return read_asset(asset, gbox, resampling)  # the last attempt: its error goes to the caller


def _forget(href: str) -> None:
    """Close and drop this thread's cached handles of ``href`` and GDAL's cached state of it (its /vsicurl-family
    cache remembers a failed open as "no such file"), so that the next read reopens it from scratch."""
    cache: OrderedDict | None = getattr(_HANDLES, "cache", None)
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


def _fail(scene: SceneSpec, asset: AssetSpec, exc: Exception, spec: ReadSpec) -> None:
    from catalog.storage import redact

    detail = str(exc)
    cause = exc.__cause__ or exc.__context__
    if (
        cause is not None and "previous exception" in detail
    ):  # rasterio's "Read failed. See previous exception"
        detail = f"{detail.split('. See previous')[0]}: {cause}"
    msg = redact(  # signed URLs: the message is logged on the worker and pickled back to the client
        f"item {scene.item_id!r}: cannot read {asset.href}: {detail}; fix or remove the asset, or load with "
        "on_error='skip' to skip scenes that fail to open"
    )
    if spec.on_error == "fail":
        raise LoadError(msg) from exc
    log.warning("skipping %s", msg)


def read_tile(gbox: GeoBox, steps: Sequence[Sequence[SceneSpec]], spec: ReadSpec) -> np.ndarray:
    """Masked, scaled, mosaicked values of one tile: float32 array (band, time, y, x), NaN where no valid pixel.

    ``gbox`` is the tile's grid (any CRS; y decreasing), ``steps`` the scenes of each time step in mosaic order.
    Reflectance bands are ``raw * scale + offset``; quality bands keep their class values (not masked).
    """
    from catalog.storage import redact

    failure: Exception | None = None
    try:
        return _read_tile(gbox, steps, spec)
    except LoadError as exc:
        failure = exc
    except Exception as exc:  # noqa: BLE001 (re-raised below, without secrets)
        if redact(exc) == str(exc):
            raise
        failure = exc  # e.g. a GDAL error naming a signed URL: Dask would log it with its arguments
    # raised outside the handler, without the GDAL exceptions it came from: this runs on Dask workers, and
    # rasterio's CPLE_* exceptions in a cause/context chain cannot be unpickled on the client (the user would
    # get a bare Exception instead of the LoadError); and never with a secret in the message
    raise LoadError(redact(failure))


def _read_tile(gbox: GeoBox, steps: Sequence[Sequence[SceneSpec]], spec: ReadSpec) -> np.ndarray:
    nb, nt = len(spec.bands), len(steps)
    out = np.full((nb, nt, *gbox.shape.yx), np.nan, dtype=np.float32)
    if not any(steps):
        return out
    npix = out[0, 0].size
    padded = gbox.pad(spec.dilate_px) if spec.dilate_px > 0 else gbox
    _HANDLES.env_key = hash(spec.gdal_env)
    with rasterio.Env(**gdal_env(spec.gdal_env)):
        for t, scenes in enumerate(steps):
            filled = [0] * nb  # pixels of (band, t) written so far
            for scene in scenes:
                todo = [b for b in range(nb) if scene.assets[b] is not None and filled[b] < npix]
                if not todo:
                    continue
                bad = None
                if spec.mask and scene.quality is not None:
                    try:
                        q = _read(scene.quality, padded, "nearest")
                    except RasterioError as exc:
                        _fail(scene, scene.quality, exc, spec)
                        continue
                    if q is None:
                        continue
                    bad = _quality_mask(q, scene.quality_kind or "scl", spec, _nodata(scene.quality))
                    if bad.all():
                        continue
                for b in todo:
                    asset = scene.assets[b]
                    try:
                        raw = _read(asset, gbox, spec.resampling[b])
                    except RasterioError as exc:
                        _fail(scene, asset, exc, spec)
                        break
                    if raw is not None:
                        filled[b] += _merge(out[b, t], raw, asset, bad, spec.is_quality[b], filled[b] > 0)
    return out


def _nodata(asset: AssetSpec) -> float | None:
    """The asset's nodata: as the STAC item says (raster:bands), else as the file says."""
    return asset.nodata if asset.nodata is not None else _open(asset.href)[0].nodata


def _merge(dst: np.ndarray, raw: np.ndarray, asset: AssetSpec, bad, is_quality: bool, partial: bool) -> int:
    """Write the valid pixels of ``raw`` that ``dst`` lacks (scaled unless quality); returns how many."""
    nodata = _nodata(asset)
    if np.issubdtype(raw.dtype, np.floating):
        valid = np.isfinite(raw)
        if nodata is not None:
            valid &= raw != nodata
    else:
        valid = raw != nodata if nodata is not None else np.ones(raw.shape, bool)
    if bad is not None and not is_quality:
        valid &= ~bad
    if partial:
        valid &= np.isnan(dst)
    vals = raw.astype(np.float32)
    if not is_quality:
        vals *= np.float32(asset.scale)
        vals += np.float32(asset.offset)
    np.copyto(dst, vals, where=valid)
    return int(np.count_nonzero(valid))
