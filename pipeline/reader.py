"""The fused per-tile reader: read, mask, scale and mosaic every scene of one output tile in one task.

This is what runs on the Dask workers. One call of :func:`read_tile` produces the cube's values for one output
tile (all requested bands, all time steps) from the scenes that intersect it:

1. for each time step, its scenes in mosaic order (earliest first, then by id);
2. for each scene, its quality layer (SCL / QA_PIXEL / Fmask / any classified layer) is read once onto the tile
   (nearest), turned into a mask by its :class:`orbitcube.pipeline.quality.QualityDecoder` and optionally dilated (read on
   a padded tile so dilation is seamless across tile edges);
3. each band is read onto the tile -- a plain windowed read when the scene's grid already is the tile's grid
   (same CRS and resolution, whole-pixel offset), a nearest-neighbour pixel repeat when it is an integer
   multiple of it (20 m SCL on a 10 m grid), a cached pixel map for nearest/bilinear across CRSs
   (:mod:`orbitcube.pipeline.resample`), a GDAL warp otherwise (average, or outputs coarser than the source; reading a
   COG overview first when the output is at least 2x coarser);
4. each read returns its values *and* where they are valid -- inside the source (the read window, the pixel
   map, the warp's footprint) and not nodata -- so the fill outside a scene is never taken for data, even in
   integer rasters that declare no nodata; masked pixels are dropped, the scene's own scale/offset applied in
   float32 (class layers keep their values), and only pixels that no earlier scene of the same step filled are
   written (first valid observation wins). A scene is not read for a band once every pixel of that band and
   step is filled.

Only small frozen records travel in the graph (:class:`AssetSpec`, :class:`SceneSpec`, :class:`ReadSpec` and
the tile's GeoBox); each task opens the files it needs itself. Scale, offset, nodata, band index and resampling
are per scene and band (:class:`AssetSpec`), decided on the client by :mod:`orbitcube.pipeline.bands`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.warp import reproject
from rasterio.windows import Window

from orbitcube.catalog.defaults import LOCAL_READS, RETRY_POLICY
from orbitcube.pipeline.errors import LoadError
from orbitcube.pipeline.handles import forget, open_dataset, use_env_key
from orbitcube.pipeline.masks import dilate
from orbitcube.pipeline.quality import QualityDecoder
from orbitcube.pipeline.resample import apply_map, overview_for, pixel_map, restrict_map

__all__ = [
    "AssetSpec",
    "READ_ATTEMPTS",
    "READ_RETRY_DELAY_S",
    "ReadSpec",
    "SceneSpec",
    "gdal_env",
    "read_asset",
    "read_tile",
    "usable_nodata",
]

log = logging.getLogger(__name__)

_TOL = 1e-6


def gdal_env(options: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()) -> dict[str, Any]:
    """:data:`orbitcube.catalog.defaults.LOCAL_READS` (the settings every read runs under) updated with ``options``, as
    ``rasterio.Env`` takes them: ``GDAL_CACHEMAX`` given the way GDAL reads it from the environment (a string: "512" = 512 MB as GDAL takes numbers below 100,000,
    "512MB", "1GB", "5%" of the physical memory, or a byte count) becomes an int number of bytes, since
    rasterio passes it to GDALSetCacheMax64 and refuses strings."""
    env = {**LOCAL_READS, **dict(options)}
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
    """One band of one raster file of one scene: what to open, which band, how to decode and resample it.

    Everything here is decided per item and band on the client (:mod:`orbitcube.pipeline.load`), never per collection.
    """

    href: str
    """Path or GDAL-readable URL (``/vsicurl/...``, ``/vsiaz/...``, ``/vsis3/...``)."""
    nodata: float | None
    """Nodata as the STAC item says (None: the file's nodata, if any)."""
    scale: float = 1.0
    offset: float = 0.0
    """Physical value = stored * scale + offset (not applied to class layers)."""
    band: int = 1
    """1-based band index inside the file (multi-band assets such as NAIP ``image``: eo:bands position + 1)."""
    resampling: str = "nearest"
    """GDAL/rasterio resampling onto the output grid, chosen for this scene, band and output grid."""
    is_class: bool = False
    """A class or bit-flag layer (SCL, QA_PIXEL, land cover): values kept as stored, never cloud-masked."""
    key: str = ""
    """The STAC asset key (for error messages)."""

    def __repr__(self) -> str:  # the href may be a signed URL: Dask logs task arguments when a task fails
        from orbitcube.catalog.storage import redact

        rest = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "href")
        return f"AssetSpec(href={redact(self.href)!r}, {rest})"


@dataclass(frozen=True)
class SceneSpec:
    """One scene (STAC item) as the reader sees it: one asset per requested band, and its quality layer."""

    item_id: str
    assets: tuple[AssetSpec | None, ...]
    """Aligned with :attr:`ReadSpec.bands`; None where the scene lacks the band."""
    quality: AssetSpec | None = None
    quality_decoder: QualityDecoder | None = None
    """Which values or bits of ``quality`` to mask (decoded on the client from the item's metadata)."""


@dataclass(frozen=True)
class ReadSpec:
    """What every tile of one load shares: band names, mask classes, dilation, error policy, GDAL options.
    (Resampling, scale/offset and nodata are per scene and band: see :class:`AssetSpec`.)"""

    bands: tuple[str, ...]
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


def _crs_wkt(crs) -> str:
    """The WKT of an odc-geo CRS, cached by its short text (``str(crs)``, e.g. "EPSG:32632"): hashing the CRS
    itself exports its WKT with pyproj, about 1 ms a call, and every read of a tile asks."""
    return _wkt_of(str(crs), crs)


_WKT: dict[str, str] = {}


def _wkt_of(text: str, crs) -> str:
    wkt = _WKT.get(text)
    if wkt is None:
        if len(_WKT) >= 64:
            _WKT.clear()
        wkt = _WKT[text] = crs.wkt
    return wkt


@lru_cache(maxsize=64)
def _same_crs(a_wkt: str, b_wkt: str) -> bool:
    if a_wkt == b_wkt:
        return True
    from pyproj import CRS

    return CRS.from_user_input(a_wkt) == CRS.from_user_input(b_wkt)


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


def usable_nodata(stac: float | None, file: float | None, dtype: np.dtype) -> float | None:
    """The nodata value to compare pixels of ``dtype`` with: the STAC one if the dtype can hold it, else the
    file's, else None. A value the dtype cannot represent (-9999 on uint16, NaN on integers) can match no pixel,
    so it is ignored rather than overflowing (the client logs it, see :func:`orbitcube.pipeline.load`)."""
    for nd in (stac, file):
        if nd is None:
            continue
        nd = float(nd)
        if not np.issubdtype(dtype, np.integer):
            return nd
        info = np.iinfo(dtype)
        if nd == nd and nd.is_integer() and info.min <= nd <= info.max:
            return int(nd)
    return None


def _fill_value(nodata: float | None, dtype: np.dtype) -> float:
    if nodata is not None:
        return nodata
    return np.nan if np.issubdtype(dtype, np.floating) else 0


def _not_nodata(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """True where ``values`` hold data: finite (floats) and not ``nodata``."""
    if np.issubdtype(values.dtype, np.floating):
        ok = np.isfinite(values)
        if nodata is not None and nodata == nodata:
            ok &= values != nodata
        return ok
    return values != nodata if nodata is not None else np.ones(values.shape, bool)


def _read_into(
    src: rasterio.DatasetReader, band: int, out: np.ndarray, row: int, col: int, k: int
) -> tuple[slice, slice] | None:
    """Copy source pixels of ``band`` onto ``out``, each source pixel repeated k x k times; the tile's top-left
    pixel is (row, col) tile pixels from the source's. Returns the part of ``out`` written (inside the source),
    None when they do not overlap."""
    ny, nx = out.shape
    r0, c0 = max(row // k, 0), max(col // k, 0)
    r1 = min(-(-(row + ny) // k), src.height)
    c1 = min(-(-(col + nx) // k), src.width)
    if r1 <= r0 or c1 <= c0:
        return None
    block = src.read(band, window=Window(c0, r0, c1 - c0, r1 - r0))
    by, bx = (
        row - r0 * k,
        col - c0 * k,
    )  # the tile's corner inside the (repeated) block; negative: it starts later
    oy, ox, sy, sx = max(-by, 0), max(-bx, 0), max(by, 0), max(bx, 0)
    h, w = min(block.shape[0] * k - sy, ny - oy), min(block.shape[1] * k - sx, nx - ox)
    if h <= 0 or w <= 0:
        return None
    region = (slice(oy, oy + h), slice(ox, ox + w))
    if k == 1:
        out[region] = block[sy : sy + h, sx : sx + w]
    else:
        _repeat_into(out[region], block, sy, sx, k)
    return region


def _repeat_into(dst: np.ndarray, block: np.ndarray, sy: int, sx: int, k: int) -> None:
    """``dst`` = ``block`` with each pixel repeated k x k times, from row ``sy`` and column ``sx`` of the
    repeated block on: whole source pixels through a broadcast view (no repeated temporary), then the
    partial first/last rows and columns."""
    h, w = dst.shape
    ry, rx = -sy % k, -sx % k  # tile rows/cols before the first whole source pixel
    ny, nx = (h - ry) // k, (w - rx) // k
    by, bx = -(-sy // k), -(-sx // k)  # the first whole source pixel's row and column
    if ny > 0 and nx > 0:
        view = dst[ry : ry + ny * k, rx : rx + nx * k].reshape(ny, k, nx, k)
        view[...] = block[by : by + ny, None, bx : bx + nx, None]
    rows = np.arange(h)
    cols = np.arange(w)
    edge_r = (rows < ry) | (rows >= ry + ny * k)
    edge_c = (cols < rx) | (cols >= rx + nx * k)
    if edge_r.any() or edge_c.any():
        src_r, src_c = (rows + sy) // k, (cols + sx) // k
        if edge_r.any():
            dst[edge_r] = block[np.ix_(src_r[edge_r], src_c)]
        if edge_c.any():
            dst[:, edge_c] = block[np.ix_(src_r, src_c[edge_c])]


def read_asset(
    asset: AssetSpec, gbox: GeoBox, resampling: str | None = None, need: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Values of ``asset`` (band ``asset.band``) on ``gbox`` (y, x) and where they are valid, or None when the
    scene does not overlap the grid at all.

    Validity is carried beside the values: a pixel is valid when it lies inside the source raster (its read
    window, pixel map or warp footprint) and is not nodata -- whatever the fill value outside is, so integer
    rasters without any nodata still mosaic correctly. Values keep the source dtype for plain reads and
    nearest; bilinear and GDAL warps give floats. ``resampling`` (default ``asset.resampling``) is a
    GDAL/rasterio method name (``nearest``, ``bilinear``, ``average``, ``mode``, ...). ``need`` (bool, y x), if
    given, names the only pixels wanted (a mosaic's later scene: the pixels earlier scenes left empty): the
    others may be left invalid, and a plain read or a pixel map reads and resamples only what is needed (values
    at needed pixels are the same either way). Must be called inside a ``rasterio.Env``.
    """
    resampling = resampling or asset.resampling
    src, src_wkt = open_dataset(asset.href)
    band = asset.band
    dtype = np.dtype(src.dtypes[band - 1])
    nodata = usable_nodata(asset.nodata, src.nodatavals[band - 1], dtype)
    dst_wkt = _crs_wkt(gbox.crs)
    same = _same_crs(src_wkt, dst_wkt)
    if resampling not in ("nearest", "bilinear"):  # an overview does most of the averaging, in any CRS
        level = overview_for(src_wkt, tuple(src.transform)[:6], tuple(src.overviews(band)), dst_wkt,
                             tuple(gbox.transform)[:6], (src.height, src.width))  # fmt: skip
        if level is not None:
            src, _ = open_dataset(asset.href, level)
    out = np.full(gbox.shape.yx, _fill_value(nodata, dtype), dtype=dtype)
    tr = src.transform
    if same:
        for k in sorted({1, round(abs(tr.a / gbox.transform.a))}):
            if k >= 1 and (k == 1 or resampling == "nearest"):
                at = _paste_offset(tr, gbox, k)
                if at is not None:
                    region = _paste(src, band, out, at, k, need)
                    if region is None:
                        return None
                    valid = np.zeros(out.shape, bool)
                    valid[region] = _not_nodata(out[region], nodata)
                    return out, valid
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
        if pm is not None and need is not None:
            pm = restrict_map(pm, need)
        if pm is None:
            return None
        if pm.scale < 1.5:  # not coarser: gather from one windowed read
            block = src.read(band, window=Window(*pm.window))
            if resampling == "bilinear":
                out = apply_map(pm, block, np.full(gbox.shape.yx, np.nan, dtype=np.float32), nodata)
                return out, np.isfinite(out)
            apply_map(pm, block, out, nodata)
            valid = np.zeros(out.shape, bool)
            valid.ravel()[pm.dst] = _not_nodata(out.ravel()[pm.dst], nodata)
            return out, valid
    return _warp(src, band, out, gbox, nodata, resampling)


def _paste(src, band: int, out: np.ndarray, at: tuple[int, int], k: int, need) -> tuple[slice, slice] | None:
    """:func:`_read_into` of the bounding box of ``need`` (the whole tile when None); the region of ``out``
    written, or None."""
    r0, c0, (r1, c1) = 0, 0, out.shape
    if need is not None:
        rows, cols = np.flatnonzero(need.any(axis=1)), np.flatnonzero(need.any(axis=0))
        if not rows.size:
            return None
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    region = _read_into(src, band, out[r0:r1, c0:c1], at[0] + r0, at[1] + c0, k)
    if region is None:
        return None
    return slice(region[0].start + r0, region[0].stop + r0), slice(region[1].start + c0, region[1].stop + c0)


def _warp(
    src, band: int, out: np.ndarray, gbox: GeoBox, nodata, resampling: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """GDAL warp onto a float array pre-filled with NaN (GDAL leaves pixels outside the source untouched, so NaN
    marks them whatever the source's nodata); nearest/mode come back in the source dtype."""
    exact32 = out.dtype.itemsize <= 2 or out.dtype == np.float32  # float32 holds every (u)int8/16 exactly
    dst = np.full(out.shape, np.nan, dtype=np.float32 if exact32 else np.float64)
    reproject(
        source=rasterio.band(src, band),
        destination=dst,
        src_nodata=nodata,
        dst_nodata=np.nan,
        dst_transform=gbox.transform,
        dst_crs=_crs_wkt(gbox.crs),
        resampling=Resampling[resampling],
    )
    valid = np.isfinite(dst)
    if not valid.any():
        return None
    if resampling in ("nearest", "mode") and out.dtype != dst.dtype:  # class values stay integers
        np.copyto(out, dst, where=valid, casting="unsafe")
        return out, valid
    return dst, valid


def _quality_mask(q: np.ndarray, decoder: QualityDecoder, spec: ReadSpec, nodata) -> np.ndarray:
    bad = decoder.mask(q)  # uint8 layers (SCL) through a 256-entry lookup table
    if nodata is not None and decoder.nodata:
        bad |= q == nodata
    p = spec.dilate_px
    if p > 0:
        bad = dilate(bad, spec.dilate_m, spec.pixel_size)[p:-p, p:-p]
    return bad


#: attempts per remote asset read when it fails with a transient error (GDAL retries HTTP 429/5xx itself, but gives
#: up on a refused or repeatedly reset connection): the reader's layer of orbitcube.catalog.defaults.RETRY_POLICY; the delay
#: between attempts doubles from READ_RETRY_DELAY_S
READ_ATTEMPTS = RETRY_POLICY.read_attempts
READ_RETRY_DELAY_S = 0.5


def _read(
    asset: AssetSpec, gbox: GeoBox, resampling: str | None = None, need: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`read_asset`, retried for object-store/HTTP hrefs that fail with a transient error (connection
    refused or reset, timeout, HTTP 5xx: :func:`orbitcube.catalog.failures.is_transient`), reopening the file each time."""
    from orbitcube.catalog.failures import is_transient
    from orbitcube.catalog.storage import redact

    remote = asset.href.startswith("/vsi") or "://" in asset.href
    for n in range(1, READ_ATTEMPTS):
        try:
            return read_asset(asset, gbox, resampling, need)
        except RasterioError as exc:
            if not remote or not is_transient(exc):
                raise
            forget(asset.href)
            log.warning(
                "reading %s failed (%s), retry %d of %d",
                redact(asset.href),
                redact(exc),
                n,
                READ_ATTEMPTS - 1,
            )
            time.sleep(READ_RETRY_DELAY_S * 2 ** (n - 1))
    try:
        return read_asset(asset, gbox, resampling, need)  # the last attempt: its error goes to the caller
    except RasterioError:
        if remote:
            forget(asset.href)  # so that the runner's re-run of the tile (RETRY_POLICY) reads it afresh
        raise


def _fail(scene: SceneSpec, asset: AssetSpec, exc: Exception, spec: ReadSpec) -> None:
    from orbitcube.catalog.storage import redact

    detail = str(exc)
    cause = exc.__cause__ or exc.__context__
    if (
        cause is not None and "previous exception" in detail
    ):  # rasterio's "Read failed. See previous exception"
        detail = f"{detail.split('. See previous')[0]}: {cause}"
    msg = redact(  # signed URLs: the message is logged on the worker and pickled back to the client
        f"item {scene.item_id!r}{f' asset {asset.key!r}' if asset.key else ''}: cannot read {asset.href}: "
        f"{detail}; fix or remove the asset, or load with "
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
    from orbitcube.catalog.storage import redact

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
    padded = gbox.pad(spec.dilate_px) if spec.dilate_px > 0 else gbox
    use_env_key(hash(spec.gdal_env))
    with rasterio.Env(**gdal_env(spec.gdal_env)):
        for t, scenes in enumerate(steps):
            filled = [0] * nb  # pixels of (band, t) written so far
            for scene in scenes:
                _read_scene(scene, out[:, t], filled, gbox, padded, spec)
    return out


def _read_scene(
    scene: SceneSpec, out: np.ndarray, filled: list[int], gbox: GeoBox, padded: GeoBox, spec: ReadSpec
) -> None:
    """Mosaic one scene into one time step ``out`` (band, y, x), counting the pixels written in ``filled``.
    Once a band has pixels, a later scene reads, masks and resamples only the pixels still empty (``need``)."""
    npix = out[0].size
    todo = [b for b in range(len(out)) if scene.assets[b] is not None and filled[b] < npix]
    if not todo:
        return
    need = {b: np.isnan(out[b]) if filled[b] else None for b in todo}
    bad = None
    if spec.mask and scene.quality is not None:
        # the quality layer only where some band is empty (class layers ignore the mask but obey its skip)
        plain = spec.dilate_px == 0 and not any(scene.assets[b].is_class for b in todo)
        q_need = _union(need.values()) if plain else None
        try:
            q = _read(scene.quality, padded, "nearest", q_need)
            if (
                q is None and q_need is not None
            ):  # none of its needed pixels: decide on the whole tile as before
                q_need, q = None, _read(scene.quality, padded, "nearest")
        except (RasterioError, OSError) as exc:  # OSError: a local file gone since the plan
            _fail(scene, scene.quality, exc, spec)
            return
        if q is None:
            return
        bad = _quality_mask(q[0], scene.quality_decoder, spec, _nodata(scene.quality))
        if q_need is not None:
            bad |= ~q_need
        if bad.all():
            return
    for b in todo:
        asset = scene.assets[b]
        try:
            got = _read(asset, gbox, None, need[b])
        except (RasterioError, OSError) as exc:
            _fail(scene, asset, exc, spec)
            break
        if got is not None:
            filled[b] += _merge(out[b], *got, asset, bad, need[b])


def _union(masks) -> np.ndarray | None:
    """Pixels needed by any band (None: a band needs the whole tile)."""
    masks = list(masks)
    if any(m is None for m in masks):
        return None
    return np.logical_or.reduce(masks) if len(masks) > 1 else masks[0]


def _nodata(asset: AssetSpec) -> float | None:
    """The asset's nodata as pixels of its file can hold it: the STAC item's (raster:bands), else the file's."""
    src = open_dataset(asset.href)[0]
    return usable_nodata(asset.nodata, src.nodatavals[asset.band - 1], np.dtype(src.dtypes[asset.band - 1]))


def _merge(dst: np.ndarray, vals: np.ndarray, valid: np.ndarray, asset: AssetSpec, bad, empty) -> int:
    """Write the ``valid`` pixels of ``vals`` that ``dst`` lacks (``empty``: where it is NaN, None: everywhere;
    scaled unless a class layer, and outside the cloud mask ``bad`` unless a class layer); returns how many.
    ``valid`` is modified."""
    if bad is not None and not asset.is_class:
        valid &= ~bad
    if empty is not None:
        valid &= empty
    vals = vals.astype(np.float32, copy=False)  # a fresh array of this read: scaled in place
    if not asset.is_class:
        vals *= np.float32(asset.scale)
        vals += np.float32(asset.offset)
    np.copyto(dst, vals, where=valid)
    return int(np.count_nonzero(valid))
