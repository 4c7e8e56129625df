"""Property-based tests (hypothesis) over what real data varies (issue 13): scale, offset, nodata and dtype as
raster:bands states them, source grids with origins on whole or odd half pixels, output grids offset by
sub-pixel fractions or exactly half a pixel, CRS pairs (same CRS, neighbouring UTM zones, UTM <-> geographic,
UTM/geographic -> polar stereographic, across the antimeridian), output/source pixel ratios and tile sizes.

Properties:
- ``load_cube`` equals GDAL (``rasterio.warp.reproject``, same resampling, decoded) within interpolation
  tolerance (bilinear/average), and equals the exact nearest source pixel for ``nearest``;
- the result does not depend on the tiling (``chunks``; nearest and interpolating methods separately), nor on which other items are in the load (another
  collection with another native resolution, or the same collection with other radiometry, on another day).

Scenes are small (48 x 48 pixels, built from the real Landsat C2 L2 item's metadata by
``replay.synthetic_scene``); hypothesis runs derandomized (16 examples, no database, no shrinking), so the module
runs in seconds and the same examples run in CI.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from affine import Affine
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from odc.geo import resxy_, xy_
from odc.geo.geobox import GeoBox
from odc.geo.geom import box
from pyproj import CRS, Transformer
from replay import Field, synthetic_scene
from replay_refs import expected, gdal_reference, nearest_source_values, source_uv

from orbitcube.pipeline.load import load_cube

PROFILE = settings(
    max_examples=16,
    database=None,  # nothing written to .hypothesis/ (derandomized: the same examples every run)
    deadline=None,
    derandomize=True,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: the first failing example is reported as drawn
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
N = 48  # source pixels per side
FIELD = Field(0.25, 0.15, 1500.0)

#: (source CRS, destination CRS, site lon/lat, source pixel size in metres)
CRS_PAIRS = [
    ("EPSG:32633", "EPSG:32633", (15.0, 45.0), 20.0),
    ("EPSG:32633", "EPSG:32634", (17.99, 45.0), 20.0),
    ("EPSG:32655", "EPSG:32656", (150.0, -39.6), 30.0),
    ("EPSG:32647", "EPSG:4326", (96.9, 81.5), 10.0),
    ("EPSG:4326", "EPSG:32633", (15.0, 45.0), 30.0),
    ("EPSG:32656", "EPSG:3031", (150.0, -70.0), 30.0),
    ("EPSG:32646", "EPSG:32647", (96.0, 81.0), 20.0),
    ("EPSG:32660", "EPSG:32601", (179.99, 60.0), 20.0),  # across the antimeridian
    ("EPSG:4326", "EPSG:32601", (-179.99, 60.0), 30.0),  # a geographic grid starting west of -180
    ("EPSG:4326", "EPSG:3031", (-178.5, -89.6), 30.0),  # DEM-like tile near the south pole
]
_counter = itertools.count()


def _res(crs: str, metres: float, lat: float):
    """A resolution of about ``metres`` in ``crs`` at latitude ``lat`` (degrees for geographic CRSs)."""
    if CRS.from_user_input(crs).is_geographic:
        return resxy_(metres / (111_320 * math.cos(math.radians(lat))), -metres / 110_574)
    return resxy_(metres, -metres)


def _source_grid(crs: str, site, metres: float, odd: bool) -> tuple[str, Affine, tuple[int, int]]:
    """N x N pixels around ``site``, origin on a multiple of the pixel size (``odd``: plus half a pixel, as
    Landsat's corners at odd multiples of 15 m)."""
    r = _res(crs, metres, site[1])
    x, y = Transformer.from_crs(4326, crs, always_xy=True).transform(*site)
    x0 = (math.floor(x / r.x) - N // 2 + (0.5 if odd else 0.0)) * r.x
    y0 = (math.floor(y / -r.y) + N // 2 + (0.5 if odd else 0.0)) * -r.y
    return crs, Affine(r.x, 0, x0, 0, r.y, y0), (N, N)


def _dest_grid(src_grid, dst_crs: str, site, metres: float, ratio: float, anchor) -> GeoBox:
    """The destination grid over the source footprint grown by 15 % on every side (so part of it is outside the
    scene), pixels ``ratio`` times the source's, pixel edges offset by ``anchor`` (fractions of a pixel)."""
    crs, tr, (h, w) = src_grid
    x0, y1 = tr @ (-0.15 * w, -0.15 * h)
    x1, y0 = tr @ (1.15 * w, 1.15 * h)
    g = box(x0, y0, x1, y1, crs=crs).to_crs(dst_crs, resolution=abs(tr.a) * 4)
    return GeoBox.from_geopolygon(
        g, resolution=_res(dst_crs, metres * ratio, site[1]), crs=dst_crs, anchor=anchor
    )


def _raster_band(dtype: str, nodata_kind: str, frac: float, offset: float) -> dict:
    """raster:bands entry: a scale that uses ``frac`` of the dtype's range for values 0.1..0.4, an offset, and
    a nodata of the requested kind (none, the dtype's minimum, 0, -9999, NaN as STAC spells it)."""
    if dtype == "float32":
        scale = 1.0 if frac > 0.5 else 1e-4 / frac
    else:
        info = np.iinfo(dtype)
        span = max(abs(0.1 - offset), abs(0.4 - offset))
        scale = span / (info.max * frac)
    rb = {"data_type": dtype, "scale": scale, "offset": offset}
    if nodata_kind == "min":
        rb["nodata"] = float(np.finfo("f4").min) if dtype == "float32" else int(np.iinfo(dtype).min)
    elif nodata_kind == "zero":
        rb["nodata"] = 0
    elif nodata_kind == "minus9999":
        rb["nodata"] = -9999 if dtype in ("int16", "float32") else 0
    elif nodata_kind == "nan":
        rb["nodata"] = "nan" if dtype == "float32" else 0
    return rb


@st.composite
def scenes(draw):
    """A random scene (dtype, scale, offset, nodata, CRS pair, origin) and a destination grid/resampling."""
    src_crs, dst_crs, site, metres = draw(st.sampled_from(CRS_PAIRS))
    dtype = draw(st.sampled_from(["uint8", "uint16", "int16", "float32"]))
    unsigned = dtype.startswith("u")
    offset = draw(st.sampled_from([0.0, -0.1, -0.2, 0.05] if unsigned else [0.0, -0.1, 0.3, -0.5]))
    frac = draw(st.sampled_from([0.4, 0.7, 0.95]))
    nodata_kind = draw(st.sampled_from(["none", "min", "zero", "minus9999", "nan"]))
    odd = draw(st.booleans())
    ratio = draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]))
    anchor = draw(
        st.sampled_from([(0.0, 0.0), (0.5, 0.5), (0.5, 0.0)])
        | st.tuples(st.floats(0, 0.99), st.floats(0, 0.99))
    )
    methods = ["nearest", "bilinear"] + (["average"] if ratio >= 2 else [])
    resampling = draw(st.sampled_from(methods))
    return {
        "src_crs": src_crs,
        "dst_crs": dst_crs,
        "site": site,
        "metres": metres,
        "rb": _raster_band(dtype, nodata_kind, frac, offset),
        "odd": odd,
        "ratio": ratio,
        "anchor": anchor,
        "resampling": resampling,
    }


def _make(tmp_path_factory, s, *, item_id="scene", collection="prop-a", when="2024-04-17T10:00:00Z"):
    out = tmp_path_factory.mktemp(f"prop{next(_counter)}")
    grid = _source_grid(s["src_crs"], s["site"], s["metres"], s["odd"])
    r = synthetic_scene(
        out, item_id=item_id, collection=collection, when=when, grid=grid, raster_band=s["rb"], fld=FIELD
    )
    gbox = _dest_grid(grid, s["dst_crs"], s["site"], s["metres"], s["ratio"], xy_(*s["anchor"]))
    return r, gbox


#: how close (source pixels) to a source pixel edge an output centre may be for nearest (and inside/outside) to
#: be decided by the coordinate approximation: GDAL's approximate transformer error threshold (0.125 px), which
#: the loader adopts for its pixel-map lattice (orbitcube.pipeline.resample.MAX_LATTICE_ERROR). With 1e-3 px instead,
#: 23 of 17355 pixels (all within 0.003 px of an edge) differ for a geographic grid across the antimeridian.
EDGE_PX = 0.125


def _on_edge(r, gbox) -> np.ndarray:
    """Output pixels whose centre lies within :data:`EDGE_PX` source pixels of a source pixel edge: there
    nearest (and inside/outside for any method) is decided by the coordinate approximation, so GDAL, the loader
    and the loader with other tiles may legitimately differ."""
    u, v = source_uv(r.assets["red"], gbox)
    return (np.abs(u - np.round(u)) < EDGE_PX) | (np.abs(v - np.round(v)) < EDGE_PX)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Equal up to float32 decoding (1e-6 relative) or both NaN."""
    scale = max(1.0, float(np.nanmax(np.abs(b))) if np.isfinite(b).any() else 1.0)
    return np.isclose(a, b, rtol=0, atol=1e-6 * scale) | (np.isnan(a) & np.isnan(b))


def _describe(s) -> str:
    return (
        f"{s['src_crs']}->{s['dst_crs']} {s['resampling']} ratio {s['ratio']} anchor {s['anchor']} "
        f"odd origin {s['odd']} raster:bands {s['rb']}"
    )


@PROFILE
@given(s=scenes())
def test_load_cube_equals_gdal_reference(tmp_path_factory, s):
    """Bilinear/average: p99 |load_cube - GDAL| <= 0.005 where the scene is strictly valid, and no NaN there;
    nearest: exactly the source pixel containing each output centre (values and NaN) except on exact edges."""
    r, gbox = _make(tmp_path_factory, s)
    got = load_cube([r.item], ["red"], geobox=gbox, mask=None, resampling=s["resampling"])["red"].values[0]
    _, valid, invalid = expected([r], "red", gbox)
    what = _describe(s)
    assert valid.sum() > 20, f"harness: too few strictly valid pixels for {what}"
    if s["resampling"] == "nearest":
        want = nearest_source_values([r], "red", gbox)
        sure = ~_on_edge(r, gbox)
        same = _same(got, want)
        bad = sure & ~same
        assert not bad.any(), (
            f"{bad.sum()} of {sure.sum()} pixels differ from the nearest source pixel: {what}"
        )
        return
    ref = gdal_reference([r], "red", gbox, s["resampling"])
    lost = valid & np.isnan(got)
    assert not lost.any(), f"{lost.sum()} of {valid.sum()} strictly valid pixels are NaN: {what}"
    both = valid & ~np.isnan(ref)
    err = np.abs(got[both] - ref[both])
    assert np.percentile(err, 99) <= 0.005, f"p99 |load - GDAL| {np.percentile(err, 99):.5g}: {what}"
    assert np.isnan(got[invalid]).all(), (
        f"{(~np.isnan(got[invalid])).sum()} pixels outside have values: {what}"
    )


def _check_tiling(tmp_path_factory, s, ty, tx) -> None:
    r, gbox = _make(tmp_path_factory, s)
    kw = {"geobox": gbox, "mask": None, "resampling": s["resampling"]}
    one = load_cube([r.item], ["red"], chunks={"y": 4096, "x": 4096}, **kw)["red"].values[0]
    tiled = load_cube([r.item], ["red"], chunks={"y": ty, "x": tx}, **kw)["red"].values[0]
    diff = ~_same(one, tiled) & ~_on_edge(r, gbox)
    if s["resampling"] != "nearest":
        # interpolation weights come from source coordinates approximated per tile (orbitcube's lattice and GDAL's
        # transformer, both within 0.125 source px; GDAL's average weights per window): tiles may differ from one
        # whole load, but by at most one DN of the source encoding (its quantization step)
        one_dn = abs(float(s["rb"].get("scale", 1.0)))
        diff &= ~(np.abs(one - tiled) <= one_dn)
    assert not diff.any(), (
        f"{diff.sum()} of {diff.size} pixels differ with tiles of {ty}x{tx} (max |diff| "
        f"{np.nanmax(np.abs(one - tiled)):.3g}): {_describe(s)}"
    )


@PROFILE
@given(s=scenes(), ty=st.integers(5, 40), tx=st.integers(5, 40))
def test_nearest_does_not_depend_on_tiling(tmp_path_factory, s, ty, tx):
    """Nearest with tiles of (ty, tx) pixels and with one tile: identical (values and NaN) except where the
    centre is within :data:`EDGE_PX` of a source pixel edge."""
    _check_tiling(tmp_path_factory, dict(s, resampling="nearest"), ty, tx)


@PROFILE
@given(s=scenes(), ty=st.integers(5, 40), tx=st.integers(5, 40))
def test_interpolation_does_not_depend_on_tiling(tmp_path_factory, s, ty, tx):
    """Interpolation with tiles of (ty, tx) pixels and with one tile: equal within one source DN. Bilinear
    where it is a point interpolation (outputs finer than 1.5 source pixels: orbitcube's pixel maps), average
    where the output is coarser (the loader's default there). Known exception, not tested here: bilinear forced
    onto an output at least 1.5x coarser goes through GDAL's warper, whose antialiasing kernel follows each
    window's scale, so tiles differ from one whole warp by up to 2.4e-3 (below the 0.005 accuracy target)."""
    method = "bilinear" if s["resampling"] == "nearest" else s["resampling"]
    if s["ratio"] >= 1.5:
        method = "average"
    _check_tiling(tmp_path_factory, dict(s, resampling=method), ty, tx)


OTHER = st.fixed_dictionaries(
    {
        "same_collection": st.booleans(),
        "metres": st.sampled_from([10.0, 60.0]),
        "scale": st.sampled_from([1e-4, 2.75e-5]),
        "offset": st.sampled_from([0.0, -0.1, -0.2]),
        "nodata": st.sampled_from([0, None]),
        "earlier": st.booleans(),
    }
)


@PROFILE
@given(s=scenes(), o=OTHER)
def test_result_does_not_depend_on_other_items(tmp_path_factory, s, o):
    """Scene A loaded alone and together with scene B (another collection with another native pixel size, or
    the same collection with other scale/offset/nodata; on another day, earlier or later) gives A's time step
    unchanged: radiometry and resampling are decided per item and band, never per collection or per load."""
    a, gbox = _make(tmp_path_factory, s)
    other = dict(s, metres=o["metres"], odd=False)
    other["rb"] = {"data_type": "uint16", "scale": o["scale"], "offset": o["offset"]}
    if o["nodata"] is not None:
        other["rb"]["nodata"] = o["nodata"]
    when = "2024-04-10T10:00:00Z" if o["earlier"] else "2024-04-24T10:00:00Z"
    coll = "prop-a" if o["same_collection"] else "prop-b"
    b, _ = _make(tmp_path_factory, other, item_id="other", collection=coll, when=when)
    kw = {"geobox": gbox, "mask": None}
    alone = load_cube([a.item], ["red"], **kw)["red"].values[0]
    both = load_cube([a.item, b.item], ["red"], **kw)
    assert both.sizes["time"] == 2, f"expected two days, got {both.time.values}"
    step = 1 if o["earlier"] else 0
    with_b = both["red"].values[step]
    diff = ~_same(alone, with_b)
    assert not diff.any(), (
        f"{diff.sum()} of {diff.size} pixels of scene A change when B ({o}) is in the load, max |diff| "
        f"{np.nanmax(np.abs(alone - with_b)):.5g}: {_describe(s)}"
    )


@pytest.mark.parametrize("odd", [False, True])
def test_native_load_of_any_encoding_is_exact(tmp_path_factory, odd):
    """Deterministic companion: on the scene's own grid every encoding of the strategy decodes exactly."""
    for dtype, nodata_kind in itertools.product(
        ["uint8", "uint16", "int16", "float32"], ["none", "zero", "nan"]
    ):
        s = {"src_crs": "EPSG:32655", "site": (150.0, -39.6), "metres": 30.0, "odd": odd}
        s["rb"] = _raster_band(dtype, nodata_kind, 0.7, -0.1 if dtype.startswith("u") else 0.3)
        out = tmp_path_factory.mktemp("native")
        grid = _source_grid(s["src_crs"], s["site"], s["metres"], odd)
        r = synthetic_scene(
            out,
            item_id="n",
            collection="p",
            when="2024-04-17T10:00:00Z",
            grid=grid,
            raster_band=s["rb"],
            fld=FIELD,
        )
        a = r.assets["red"]
        got = load_cube([r.item], ["red"], geobox=GeoBox(a.shape, a.transform, a.crs), mask=None)[
            "red"
        ].values[0]
        want = a.encoding.decode(a.read())
        same = np.isclose(got, want, rtol=0, atol=1e-6 * max(1, np.nanmax(np.abs(want)))) | (
            np.isnan(got) & np.isnan(want)
        )
        assert same.all(), f"{dtype} {s['rb']}: {(~same).sum()} pixels differ from the decoded file"
