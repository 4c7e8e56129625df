"""Reprojection by cached pixel maps: nearest and bilinear onto an output tile, any CRS to any CRS.

Every date of a time series is acquired on the same source grid (an MGRS tile, a WRS-2 path/row), so where a
source pixel lands on an output tile is the same for every date and band of that grid. :func:`pixel_map` computes
it once per (source grid, tile) -- exact pyproj transforms of every output pixel centre -- and caches it in the
worker process; a read then is one windowed read of the source plus a gather (nearest) or a four-point weighted
sum (bilinear), instead of a GDAL warp per date and band.

Conventions follow GDAL's warper: an output pixel is inside the source when its centre is; nearest takes the
source pixel containing that centre; bilinear weights the four nearest source pixel centres, ignores nodata
neighbours and renormalises (NaN when none is valid). Outputs coarser than the source (antialiased kernels,
``average``) stay with GDAL.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from affine import Affine

__all__ = ["MAX_LATTICE_ERROR", "PixelMap", "apply_map", "overview_for", "pixel_map", "restrict_map"]


@dataclass(frozen=True)
class PixelMap:
    """Where the source pixels of one grid land on one output tile (flat indices into a source window)."""

    window: tuple[int, int, int, int]
    """Source window (col_off, row_off, width, height) that covers every pixel the tile needs."""
    dst: np.ndarray
    """Flat indices (into the tile, y-major) of the output pixels inside the source."""
    src: np.ndarray
    """Nearest: (n,) flat indices into the window. Bilinear: (n,) flat index of the top-left neighbour (the
    others are at +1, +width and +width+1 of the window; a neighbour outside the source has weight 0)."""
    weights: np.ndarray | None
    """Bilinear only: (4, n) float32 weights of the top-left, top-right, bottom-left and bottom-right
    neighbours (one contiguous row each, so a map is applied with four gathers and multiply-adds); 0 where a
    neighbour falls outside the source. Pixels whose weights sum to 0 are not in the map."""
    scale: float
    """Source pixels per output pixel along x (> 1: the output is coarser)."""
    wsum: np.ndarray | None = None
    """Bilinear only: (n,) float32 sums of ``weights`` (the normaliser when no neighbour is nodata)."""


@lru_cache(maxsize=8)
def _transformer(src_wkt: str, dst_wkt: str):
    from pyproj import Transformer

    return Transformer.from_crs(dst_wkt, src_wkt, always_xy=True)


_STEP = 16  # lattice spacing in output pixels; UTM-to-UTM error at 16 px of 10 m is ~1e-6 source pixels


def _lattice(d: Affine, inv: Affine, transformer, ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Source pixel coordinates (u, v) of every output pixel centre, transformed exactly every ``_STEP`` pixels
    (and at the last row/column) and interpolated bilinearly in between."""
    rs = np.unique(np.r_[np.arange(0, ny, _STEP), ny - 1]).astype("f8")
    cs = np.unique(np.r_[np.arange(0, nx, _STEP), nx - 1]).astype("f8")
    cc, rr = np.meshgrid(cs + 0.5, rs + 0.5)
    xs, ys = transformer.transform(d.c + cc * d.a + rr * d.b, d.f + cc * d.d + rr * d.e)
    us, vs = inv.a * xs + inv.b * ys + inv.c, inv.d * xs + inv.e * ys + inv.f

    def weights(knots: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        at = np.arange(n, dtype="f8")
        i = np.clip(np.searchsorted(knots, at, side="right") - 1, 0, max(len(knots) - 2, 0))
        if len(knots) == 1:
            return i, np.zeros(n)
        return i, (at - knots[i]) / (knots[i + 1] - knots[i])

    iy, wy = weights(rs, ny)
    ix, wx = weights(cs, nx)
    iy1, ix1 = np.minimum(iy + 1, len(rs) - 1), np.minimum(ix + 1, len(cs) - 1)
    wy, wx = wy[:, None], wx[None, :]

    def interp(g: np.ndarray) -> np.ndarray:
        top = g[iy][:, ix] * (1 - wx) + g[iy][:, ix1] * wx
        bottom = g[iy1][:, ix] * (1 - wx) + g[iy1][:, ix1] * wx
        return top * (1 - wy) + bottom * wy

    return interp(us), interp(vs)


#: largest error (source pixels) of the lattice interpolation before every pixel is transformed exactly (GDAL's
#: warper uses the same 0.125 threshold for its approximate transformer)
MAX_LATTICE_ERROR = 0.125


def _source_coords(d: Affine, inv: Affine, src_wkt: str, dst_wkt: str, ny: int, nx: int, width: int):
    """Source pixel coordinates (u, v) of every output pixel centre across CRSs: the lattice
    (:func:`_lattice`) when it is accurate to :data:`MAX_LATTICE_ERROR` source pixels at the centres of its
    cells, else exact transforms of every pixel (near a pole or across the antimeridian the map from output
    to source is far from linear). A geographic source whose grid starts west of -180 (or runs past 180) gets
    longitudes wrapped onto its own range."""
    t = _transformer(src_wkt, dst_wkt)
    u, v = _lattice(d, inv, t, ny, nx)
    rs = np.arange(min(_STEP // 2, ny - 1), ny, _STEP)
    cs = np.arange(min(_STEP // 2, nx - 1), nx, _STEP)
    cc, rr = np.meshgrid(cs + 0.5, rs + 0.5)
    xs, ys = t.transform(d.c + cc * d.a + rr * d.b, d.f + cc * d.d + rr * d.e)
    ue, ve = inv.a * xs + inv.b * ys + inv.c, inv.d * xs + inv.e * ys + inv.f
    err = np.hypot(ue - u[np.ix_(rs, cs)], ve - v[np.ix_(rs, cs)])
    if not np.all(err[np.isfinite(err)] <= MAX_LATTICE_ERROR) or not np.isfinite(u).all():
        cols, rows = np.meshgrid(np.arange(nx, dtype="f8") + 0.5, np.arange(ny, dtype="f8") + 0.5)
        xs, ys = t.transform(d.c + cols * d.a + rows * d.b, d.f + cols * d.d + rows * d.e)
        u, v = inv.a * xs + inv.b * ys + inv.c, inv.d * xs + inv.e * ys + inv.f
    if _is_geographic(src_wkt) and inv.b == 0 and inv.a > 0:
        turn = 360.0 * inv.a  # source columns per 360 degrees of longitude
        wrapped = np.where(u < 0, u + turn, np.where(u >= width, u - turn, u))
        # only where the wrapped column lands inside the source: elsewhere the pixel is simply outside (wrapping
        # it anyway would spoil the pixel-size estimate and send plain loads to the GDAL path)
        u = np.where((wrapped >= 0) & (wrapped < width), wrapped, u)
    return u, v


@lru_cache(maxsize=16)
def _is_geographic(wkt: str) -> bool:
    from pyproj import CRS

    return CRS.from_user_input(wkt).is_geographic


#: bytes of pixel maps one worker process keeps (least recently used dropped first): a bilinear map of a
#: 1024 x 1024 px tile takes 28 MB (28 bytes a pixel: index, 4 weights, their sum; 36 MB in the row-wise layout
#: before), a nearest one 8 MB; a tile needs one per source grid it reprojects (the other zone's 10 m and 20 m
#: grids), and the time chunks of one tile run one after the other (Dask orders them together), so a few maps
#: suffice; a map costs about as much to rebuild as reading one date
PIXEL_MAP_CACHE_BYTES = 64 * 2**20

_MAPS: OrderedDict = OrderedDict()
_MAPS_LOCK = threading.Lock()


def pixel_map(
    src_wkt: str,
    src_transform: tuple[float, ...],
    src_shape: tuple[int, int],
    dst_wkt: str,
    dst_transform: tuple[float, ...],
    dst_shape: tuple[int, int],
    method: str,
) -> PixelMap | None:
    """The map from a source grid (CRS WKT, affine, (rows, cols)) onto a tile grid, or None when they do not
    overlap. ``method`` is ``"nearest"`` or ``"bilinear"``. Cached per worker process, at most
    :data:`PIXEL_MAP_CACHE_BYTES` in all (the latest map is always kept)."""
    key = (src_wkt, src_transform, src_shape, dst_wkt, dst_transform, dst_shape, method)
    with _MAPS_LOCK:
        if key in _MAPS:
            _MAPS.move_to_end(key)
            return _MAPS[key][0]
    pm = _pixel_map(key)
    size = 0 if pm is None else sum(a.nbytes for a in (pm.dst, pm.src, pm.weights, pm.wsum) if a is not None)
    with _MAPS_LOCK:
        _MAPS[key] = (pm, size)
        total = sum(n for _, n in _MAPS.values())
        while total > PIXEL_MAP_CACHE_BYTES and len(_MAPS) > 1:
            total -= _MAPS.popitem(last=False)[1][1]
    return pm


def _pixel_map(key: tuple) -> PixelMap | None:
    """:func:`pixel_map` without the cache; ``key`` is its arguments in order."""
    src_wkt, src_transform, src_shape, dst_wkt, dst_transform, dst_shape, method = key
    ny, nx = dst_shape
    h, w = src_shape
    d = Affine(*dst_transform[:6])
    inv = ~Affine(*src_transform[:6])
    if src_wkt == dst_wkt:  # affine to affine: exact
        cols, rows = np.meshgrid(np.arange(nx, dtype="f8") + 0.5, np.arange(ny, dtype="f8") + 0.5)
        xs, ys = d.c + cols * d.a + rows * d.b, d.f + cols * d.d + rows * d.e
        u, v = inv.a * xs + inv.b * ys + inv.c, inv.d * xs + inv.e * ys + inv.f
    else:  # exact transforms on a sparse lattice, bilinear in between (GDAL's approximate transformer)
        u, v = _source_coords(d, inv, src_wkt, dst_wkt, ny, nx, w)
    scale = float(np.abs(u[0, -1] - u[0, 0]) / max(nx - 1, 1)) if nx > 1 else 1.0
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    if not inside.any():
        return None
    dst = np.flatnonzero(inside).astype(np.int32)
    u, v = u.ravel()[dst], v.ravel()[dst]
    if method == "nearest":
        ix, iy = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
        c0, r0 = int(ix.min()), int(iy.min())
        ww, hh = int(ix.max()) - c0 + 1, int(iy.max()) - r0 + 1
        src = ((iy - r0) * ww + (ix - c0)).astype(np.int32)
        return PixelMap((c0, r0, ww, hh), dst, src, None, scale)
    if method != "bilinear":
        raise ValueError(f"pixel maps support nearest and bilinear, not {method!r}")
    x0, y0 = np.floor(u - 0.5), np.floor(v - 0.5)
    fx, fy = (u - 0.5 - x0).astype("f4"), (v - 0.5 - y0).astype("f4")
    del u, v
    x0, y0 = x0.astype(np.int32), y0.astype(np.int32)
    c0, r0 = int(np.clip(x0.min(), 0, w - 1)), int(np.clip(y0.min(), 0, h - 1))
    ww, hh = int(np.clip(x0.max() + 1, 0, w - 1)) - c0 + 1, int(np.clip(y0.max() + 1, 0, h - 1)) - r0 + 1
    wts = np.empty((4, len(dst)), np.float32)
    for a in range(0, len(dst), _SLAB):  # in slabs: the temporaries stay small
        s = slice(a, a + _SLAB)
        wts[:, s] = _bilinear_weights(x0[s], y0[s], fx[s], fy[s], (h, w))
    base = (y0 - r0) * ww + (x0 - c0)  # the top-left neighbour in the window (may lie before it: weight 0)
    wsum = _sum4(wts)
    keep = wsum > _MIN_WEIGHT  # pixels with no neighbour inside the source stay unwritten, as before
    if not keep.all():
        dst, base, wts, wsum = dst[keep], base[keep], wts[:, keep], wsum[keep]
    return PixelMap((c0, r0, ww, hh), dst, base.astype(np.int32), np.ascontiguousarray(wts), scale, wsum)


def _bilinear_weights(x0, y0, fx, fy, shape: tuple[int, int]) -> np.ndarray:
    """(4, n) float32 weights of the four neighbours (top-left, top-right, bottom-left, bottom-right) of some
    output pixels, 0 for a neighbour outside the source of ``shape`` (rows, cols)."""
    h, w = shape
    wts = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
    inx0, inx1 = (x0 >= 0) & (x0 < w), (x0 + 1 >= 0) & (x0 + 1 < w)
    iny0, iny1 = (y0 >= 0) & (y0 < h), (y0 + 1 >= 0) & (y0 + 1 < h)
    ok = np.stack([inx0 & iny0, inx1 & iny0, inx0 & iny1, inx1 & iny1])
    return np.where(ok, wts, np.float32(0)).astype("f4")


def _sum4(w: np.ndarray) -> np.ndarray:
    """((w0 + w1) + w2) + w3 over the first axis: the order of ``w.sum(axis=-1)`` on (n, 4) rows, so that
    sums keep the values of the row-wise layout the maps had before (bit-identical results)."""
    return ((w[0] + w[1]) + w[2]) + w[3]


#: bilinear weights at or below this sum count as no valid neighbour
_MIN_WEIGHT = 1e-6


def apply_map(pm: PixelMap, block: np.ndarray, out: np.ndarray, nodata: float | None) -> np.ndarray:
    """Resample ``block`` (the source window ``pm.window``) onto ``out`` (the tile, y, x) in place.

    ``out`` must be C-contiguous. Nearest keeps the source dtype. Bilinear needs a float32 ``out`` (pre-filled with NaN or nodata): nodata
    neighbours get no weight, weights are renormalised, and pixels with no valid neighbour stay as they were.
    """
    flat = block.ravel()
    o = out.ravel()  # a view: ``out`` is C-contiguous
    if pm.weights is None:
        if len(pm.dst) == o.size:  # the whole tile is inside the source: no scatter
            np.take(flat, pm.src, out=o)
        else:
            o[pm.dst] = np.take(flat, pm.src)
        return out
    offsets = (0, 1, pm.window[2], pm.window[2] + 1)  # the four neighbours' offsets in the flat window
    masked = np.issubdtype(flat.dtype, np.floating) or (nodata is not None and bool((flat == nodata).any()))
    for a in range(0, len(pm.dst), _SLAB):  # in slabs: the temporaries stay small (same values)
        s = slice(a, a + _SLAB)
        args = (flat, pm.src[s], pm.weights[:, s], offsets)
        if masked:
            _bilinear_masked(*args, pm.dst[s], o, nodata)
        else:  # no nodata in the window: the weights' sums are the map's
            res = _bilinear_sum(*args)
            if len(pm.dst) == o.size:
                np.divide(res, pm.wsum[s], out=o[s])
            else:
                o[pm.dst[s]] = np.divide(res, pm.wsum[s], out=res)
    return out


def restrict_map(pm: PixelMap, need: np.ndarray) -> PixelMap | None:
    """``pm`` for the output pixels where ``need`` (bool, the tile's (y, x)) is True only, or None when it maps
    none of them: a later scene of a mosaic resamples only the pixels earlier ones left empty. A nearest map's
    window shrinks to the source pixels still needed (less to decode); a bilinear map keeps its window. When
    more than half the map is needed, ``pm`` itself (a restricted copy would cost memory for little work saved).
    """
    sel = need.ravel()[pm.dst]
    n = int(np.count_nonzero(sel))
    if n == 0:
        return None
    if 2 * n > len(sel):
        return pm
    dst, src = pm.dst[sel], pm.src[sel]
    if pm.weights is not None:
        return PixelMap(pm.window, dst, src, pm.weights[:, sel], pm.scale, pm.wsum[sel])
    c0, r0, ww, _ = pm.window
    rows, cols = np.divmod(src, ww)
    rmin, cmin = int(rows.min()), int(cols.min())
    nww, nhh = int(cols.max()) - cmin + 1, int(rows.max()) - rmin + 1
    src = ((rows - rmin) * nww + (cols - cmin)).astype(np.int32)
    return PixelMap((c0 + cmin, r0 + rmin, nww, nhh), dst, src, None, pm.scale)


#: output pixels per bilinear gather (its float32 temporaries are 1 MB each)
_SLAB = 2**18


def _gather(flat: np.ndarray, base: np.ndarray, off: int, idx: np.ndarray) -> np.ndarray:
    """float32 values of one neighbour (flat window index ``base + off``; indices outside the window, whose
    weights are 0, are clipped into it)."""
    np.add(base, off, out=idx)
    return np.take(flat, idx, mode="clip").astype(np.float32, copy=False)


def _bilinear_sum(flat, base, w, offsets) -> np.ndarray:
    """Sum of weight x value over the four neighbours (float32, in the neighbours' order)."""
    idx = np.empty(len(base), np.int32)
    acc = np.multiply(_gather(flat, base, offsets[0], idx), w[0])
    tmp = np.empty_like(acc)
    for k in (1, 2, 3):
        acc += np.multiply(_gather(flat, base, offsets[k], idx), w[k], out=tmp)
    return acc


def _bilinear_masked(flat, base, w, offsets, dst, o, nodata) -> None:
    """Bilinear with nodata (and for float sources non-finite) neighbours given no weight, renormalised."""
    idx = np.empty(len(base), np.int32)
    floating = np.issubdtype(flat.dtype, np.floating)
    acc = s = None
    for k in range(4):
        vals, wk = _gather(flat, base, offsets[k], idx), w[k]
        if nodata is not None:
            wk = np.where(vals == np.float32(nodata), np.float32(0), wk)
        if floating:
            finite = np.isfinite(vals)
            wk = np.where(finite, wk, np.float32(0))
            vals = np.where(finite, vals, np.float32(0))
        acc = vals * wk if acc is None else acc + vals * wk
        s = wk if s is None else s + wk
    ok = s > _MIN_WEIGHT
    o[dst[ok]] = acc[ok] / s[ok]


def overview_for(
    src_wkt: str,
    src_transform: tuple[float, ...],
    overviews: tuple[int, ...],
    dst_wkt: str,
    dst_transform: tuple[float, ...],
    src_shape: tuple[int, int],
) -> int | None:
    """Index of the COG overview to read for an output grid (any CRS), per scene as GDAL's warper picks it for
    a whole warp: the ratio of an output pixel's real footprint in the source CRS to a source pixel (the finest
    ratio over a 5 x 5 sample of points across the source raster of ``src_shape`` (rows, cols), so no part of
    the scene is read coarser than it needs, and every tile of a grid reads the same level), then the coarsest
    overview whose decimation factor does not exceed it. None: read full resolution (the output is not 2x
    coarser, or the file has no overviews). ``overviews`` are the file's decimation factors (rasterio's
    ``src.overviews(1)``)."""
    if not overviews:
        return None
    a, b, _, d_, e, _ = dst_transform[:6]  # the output pixel's size and shape; its origin does not matter
    return _overview_for(
        src_wkt, tuple(src_transform[:6]), tuple(overviews), dst_wkt, (a, b, d_, e), src_shape
    )


@lru_cache(maxsize=64)
def _overview_for(
    src_wkt: str,
    src_transform: tuple[float, ...],
    overviews: tuple[int, ...],
    dst_wkt: str,
    dst_pixel: tuple[float, float, float, float],
    src_shape: tuple[int, int],
) -> int | None:
    """:func:`overview_for`, cached per scene grid and output pixel size (every tile, date and band of a scene
    grid asks the same question)."""
    d, fwd = Affine(dst_pixel[0], dst_pixel[1], 0.0, dst_pixel[2], dst_pixel[3], 0.0), Affine(*src_transform)
    inv = ~fwd
    h, w = src_shape
    rows, cols = np.meshgrid(np.linspace(0.5, h - 0.5, 5), np.linspace(0.5, w - 0.5, 5), indexing="ij")
    xs, ys = fwd.c + cols * fwd.a + rows * fwd.b, fwd.f + cols * fwd.d + rows * fwd.e
    if src_wkt != dst_wkt:  # the sample points in the output CRS
        xs, ys = _transformer(dst_wkt, src_wkt).transform(xs.ravel(), ys.ravel())
    xs, ys = np.asarray(xs, "f8").ravel(), np.asarray(ys, "f8").ravel()
    # each point and its neighbours half an output pixel along output x and y, back in source pixels
    px = np.concatenate([xs, xs + 0.5 * d.a, xs + 0.5 * d.b])
    py = np.concatenate([ys, ys + 0.5 * d.d, ys + 0.5 * d.e])
    if src_wkt != dst_wkt:
        px, py = _transformer(src_wkt, dst_wkt).transform(px, py)
    u, v = inv.a * px + inv.b * py + inv.c, inv.d * px + inv.e * py + inv.f
    u, v = u.reshape(3, -1), v.reshape(3, -1)
    step_x = 2 * np.hypot(u[1] - u[0], v[1] - v[0])  # source pixels per output pixel, along output x ...
    step_y = 2 * np.hypot(u[2] - u[0], v[2] - v[0])  # ... and along output y
    ratio = np.nanmin(np.minimum(step_x, step_y)) if np.isfinite(step_x).any() else np.nan
    if not np.isfinite(ratio) or ratio < 2:
        return None
    best = None
    for i, f in enumerate(overviews):
        if f <= ratio * (1 + 1e-6):
            best = i
    return best
