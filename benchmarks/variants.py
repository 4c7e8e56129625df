"""One benchmark variant per process: ``python -m benchmarks.variants VARIANT DATA_DIR OUT_DIR``.

Each variant makes the same product from the same simulated items: SCL-masked NDVI per solar day (time, y, x) and
its monthly median, on the same 10 m grid (native: no overviews, no resampling ties) in the western UTM zone (nearest resampling everywhere, so that the
products are comparable pixel for pixel), written to Zarr v3. Prints one JSON line with
wall and CPU seconds and the input pixel count. Peak memory of the process tree is measured by the parent.

Variants:
    orbitcube  the standard recipe through ``orbitcube.pipeline.run.run_recipe``
    odc        ``odc.stac.load`` + xarray + ``to_zarr``, as their documentation shows
    stackstac  ``stackstac.stack`` + xarray + ``to_zarr``
    decode     read every input pixel once with rasterio (the decode floor)
    (an optional 4th argument names a case of CASES for orbitcube, decode and encode)
    encode     write a Zarr store of the output's shape and chunks (the encode floor)
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

SCL_BAD = [0, 1, 3, 8, 9, 10]  # nodata, saturated, shadow, cloud medium/high, cirrus
BANDS = {"red": "B04", "nir": "B08", "scl": "SCL"}
#: I/O-floor cases (``benchmarks.run --case``): bands (common name -> asset), orbitcube's resampling, index.
#: ``native``: 10 m bands on the 10 m grid, nearest (scenes of the eastern UTM zone are reprojected by pixel
#: maps); ``bilinear``: the same, bilinear; ``upsample20``: NDMI from nir (10 m) and swir16 (B11, 20 m,
#: upsampled onto the 10 m grid), bilinear. Only ``native`` has odc-stac/stackstac counterparts.
CASES = {
    "native": ({"red": "B04", "nir": "B08", "scl": "SCL"}, "nearest", "NDVI"),
    "bilinear": ({"red": "B04", "nir": "B08", "scl": "SCL"}, "bilinear", "NDVI"),
    "upsample20": ({"nir": "B08", "swir16": "B11", "scl": "SCL"}, "bilinear", "NDMI"),
}
RESOLUTION = 10.0
CHUNK = 512


def _setup(data_dir: Path):
    import pystac

    from orbitcube.catalog.simulator import MissionConfig

    meta = json.loads((data_dir / "mission" / "truth" / "mission.json").read_text())
    cat = pystac.Catalog.from_file(str(data_dir / "mission" / "catalog" / "catalog.json"))
    items = sorted(cat.get_items(recursive=True), key=lambda i: (i.datetime, i.id))
    for it in items:
        it.make_asset_hrefs_absolute()
    cfg = MissionConfig(
        seed=meta["seed"],
        tile_size=meta["tile_size"],
        start=meta["start"],
        end=meta["end"],
        sensors=tuple(meta["sensors"]),
    )
    geobox = cfg.truth_geobox(RESOLUTION)
    return items, geobox


def _dask_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster)


def _finish(ndvi, out: Path) -> None:
    """NDVI cube (time, y, x) -> monthly median -> Zarr (the part every baseline shares)."""
    import xarray as xr

    ndvi = ndvi.drop_vars([c for c in ndvi.coords if c not in ("time", "y", "x")])
    ndvi.attrs = {}
    monthly = ndvi.resample(time="1MS").median("time")
    ds = xr.Dataset(
        {"ndvi": ndvi.astype("float32"), "ndvi_median": monthly.rename(time="month").astype("float32")}
    )
    ds.to_zarr(out, mode="w", zarr_format=3, consolidated=False)


def run_odc(items, geobox, out: Path) -> None:
    import odc.stac

    ds = odc.stac.load(
        items,
        bands=["red", "nir", "SCL"],
        geobox=geobox,
        groupby="solar_day",
        chunks={"x": CHUNK, "y": CHUNK},
        resampling="nearest",
    )
    valid = ~ds.SCL.isin(SCL_BAD)
    red = (ds.red.where(ds.red != 0) * 1e-4 - 0.1).where(valid)
    nir = (ds.nir.where(ds.nir != 0) * 1e-4 - 0.1).where(valid)
    _finish(((nir - red) / (nir + red)).chunk({"time": -1}), out)


def run_stackstac(items, geobox, out: Path) -> None:
    import stackstac

    b = geobox.boundingbox
    stack = stackstac.stack(
        items,
        assets=["B04", "B08", "SCL"],
        epsg=geobox.crs.epsg,
        resolution=RESOLUTION,
        bounds=(b.left, b.bottom, b.right, b.top),
        chunksize=CHUNK,
        snap_bounds=False,
        resampling=__import__("rasterio").enums.Resampling.nearest,
        rescale=False,
        fill_value=np.nan,  # stackstac's default float64 (NaN fill is refused for float32)
    )
    scl = stack.sel(band="SCL")
    valid = ~scl.isin(SCL_BAD) & scl.notnull()
    red = (stack.sel(band="B04").where(lambda v: v != 0) * 1e-4 - 0.1).where(valid)
    nir = (stack.sel(band="B08").where(lambda v: v != 0) * 1e-4 - 0.1).where(valid)
    ndvi = (nir - red) / (nir + red)
    # same-day mosaic: first valid observation of the solar day (the two tiles of one pass)
    ndvi = ndvi.groupby(ndvi.time.dt.floor("D")).first().rename(floor="time")
    ndvi = ndvi.drop_vars([c for c in ndvi.coords if c not in ("time", "y", "x")])
    _finish(ndvi.chunk({"time": -1}), out)


def run_decode(items, geobox, out: Path, case: str = "native") -> int:
    import rasterio

    n = 0
    for it in items:
        for key in CASES[case][0].values():
            with rasterio.open(it.assets[key].get_absolute_href()) as src:
                n += src.read(1).size
    return n


def run_encode(items, geobox, out: Path, case: str = "native") -> None:
    import dask.array as da
    import xarray as xr

    days = sorted({i.datetime.date() for i in items})
    months = sorted({(d.year, d.month) for d in days})
    ny, nx = geobox.shape.yx
    rng = da.random.default_rng(0)
    ds = xr.Dataset(
        {
            "ndvi": (
                ("time", "y", "x"),
                rng.random((len(days), ny, nx), chunks=(-1, CHUNK, CHUNK), dtype="f4"),
            ),
            "ndvi_median": (
                ("month", "y", "x"),
                rng.random((len(months), ny, nx), chunks=(-1, CHUNK, CHUNK), dtype="f4"),
            ),
        }
    )
    ds.to_zarr(out, mode="w", zarr_format=3, consolidated=False)


def run_orbitcube(items, geobox, out: Path, case: str = "native") -> None:
    from benchmarks.standard_recipe import run_standard

    bands, resampling, index = CASES[case]
    run_standard(items, geobox, out, [b for b in bands if b != "scl"], resampling, index)


VARIANTS = {
    "orbitcube": run_orbitcube,
    "odc": run_odc,
    "stackstac": run_stackstac,
    "decode": run_decode,
    "encode": run_encode,
}


def main(argv: list[str]) -> None:
    variant, data_dir, out = argv[0], Path(argv[1]), Path(argv[2])
    case = argv[3] if len(argv) > 3 else "native"
    if case != "native" and variant not in ("orbitcube", "decode", "encode"):
        raise SystemExit(f"case {case!r} has no {variant} variant")
    items, geobox = _setup(data_dir)
    client = _dask_client() if variant in ("odc", "stackstac", "encode") else None
    t0, c0 = time.perf_counter(), time.process_time()
    result = VARIANTS[variant](items, geobox, out, *([case] if case != "native" else []))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if client is not None:
        client.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    keys = CASES[case][0].values()
    n_in = sum(int(np.prod(it.assets[k].extra_fields["proj:shape"])) for it in items for k in keys)
    print(
        json.dumps(
            {
                "variant": variant,
                "wall_s": wall,
                "cpu_s": cpu + children.ru_utime + children.ru_stime,
                "input_pixels": n_in,
                "decoded": result if isinstance(result, int) else None,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
