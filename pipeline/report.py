"""Run reports: quicklook PNGs (map coordinates, colour bars, units) and a self-contained HTML page."""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import odc.geo.xr  # noqa: F401  (registers the .odc accessor)
import xarray as xr
from odc.geo.geobox import GeoBox

if TYPE_CHECKING:
    from orbitcube.pipeline.run import RunResult

log = logging.getLogger(__name__)


def quicklook(
    da: xr.DataArray,
    path: Path,
    *,
    title: str,
    cmap: str = "RdYlGn",
    vmin: float = -0.2,
    vmax: float = 0.9,
    label: str = "NDVI (unitless)",
    max_panels: int = 12,
) -> Path:
    """A PNG of ``da`` (dims (time|month, y, x) or (y, x)): one panel per step, axes in km of the cube CRS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [d for d in da.dims if d not in ("y", "x")]
    panels = (
        [da] if not steps else [da.isel({steps[0]: i}) for i in range(min(da.sizes[steps[0]], max_panels))]
    )
    ncol = min(4, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(4 * ncol, 3.4 * nrow), squeeze=False, constrained_layout=True
    )
    x, y = da["x"].values / 1e3, da["y"].values / 1e3
    extent = [x.min(), x.max(), y.min(), y.max()]
    try:
        crs = f"EPSG:{da.odc.crs.epsg}" if da.odc.crs.epsg else "projected"
    except Exception:  # no CRS attached
        crs = "map units"
    im = None
    for ax, p in zip(axes.flat, panels, strict=False):
        im = ax.imshow(
            np.asarray(p.values), extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
        )
        if steps:
            ax.set_title(str(p[steps[0]].values)[:10], fontsize=10)
        ax.set_xlabel(f"easting (km, {crs})", fontsize=8)
        ax.set_ylabel("northing (km)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, label=label, shrink=0.8)
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_html_report(
    path: Path,
    *,
    title: str,
    facts: Mapping[str, str],
    images: Sequence[Path],
    tables: Mapping[str, Sequence[Mapping[str, object]]] | None = None,
    links: Mapping[str, str] | None = None,
) -> Path:
    """A self-contained HTML report: a table of facts, links (relative), images (relative links), tables."""
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items()
    )
    rows += "".join(
        f'<tr><th>{html.escape(k)}</th><td><a href="{html.escape(v)}">{html.escape(v)}</a></td></tr>'
        for k, v in (links or {}).items()
    )
    imgs = "".join(
        f'<figure><img src="{html.escape(str(p.relative_to(path.parent)))}" style="max-width:100%"></figure>'
        for p in images
    )
    tabs = ""
    for name, recs in (tables or {}).items():
        if not recs:
            continue
        cols = list(recs[0])
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>" for r in recs
        )
        tabs += f"<h2>{html.escape(name)}</h2><table><tr>{head}</tr>{body}</table>"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}th{{text-align:left;padding-right:1em}}
td,th{{border-bottom:1px solid #ddd;padding:2px 6px}}table{{border-collapse:collapse}}</style></head>
<body><h1>{html.escape(title)}</h1><p>generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC</p>
<table>{rows}</table>{imgs}{tabs}</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path


#: scenes listed in a run report's "Scenes used" table (a continental run has 10^5; all ids are in the store's
#: provenance)
REPORT_MAX_SCENES = 2000
_DIVERGING = ("ndvi", "evi", "savi", "ndwi", "nbr", "ndmi", "slope")


def _quicklook_of(da: xr.DataArray, path: Path, max_px: int = 600) -> Path:
    """Quicklook of one output variable: strided to at most ``max_px`` pixels a side, 2-98 % colour range."""
    step = max(1, -(-max(da.sizes["y"], da.sizes["x"]) // max_px))
    small = da.isel(y=slice(None, None, step), x=slice(None, None, step)).load()
    values = np.asarray(small.values, dtype="float64")
    finite = values[np.isfinite(values)]
    lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    name = str(da.name)
    units = da.attrs.get("units", "1")
    units = "unitless" if units in ("1", "") else units
    cmap = "RdYlGn" if any(k in name.lower() for k in _DIVERGING) else "viridis"
    return quicklook(
        small,
        path,
        title=str(da.attrs.get("long_name", name)),
        cmap=cmap,
        vmin=float(lo),
        vmax=float(hi),
        label=f"{name} ({units})",
    )


def run_report(result: RunResult, out_dir: Path) -> Path:
    """The HTML report of a :func:`orbitcube.pipeline.run.run_recipe` run in ``out_dir``: facts, one quicklook per output
    variable (map axes in km of the cube CRS, colour bar with units), per-tile timings, scenes used and skipped,
    and a link to the Dask performance report (``dask-performance.html``) and the log. Returns index.html."""
    from orbitcube.pipeline.sink import open_cube
    from orbitcube.pipeline.verify import naming_damaged_chunks

    out_dir = Path(out_dir)
    plan = result.plan
    cube = open_cube(result.store, storage_options=plan.storage_options)
    images = []
    for name in plan.template.data_vars:
        try:
            with naming_damaged_chunks(result.store, plan.storage_options):  # never a codec traceback
                images.append(_quicklook_of(cube[name], out_dir / f"{name}.png"))
        except (ValueError, TypeError) as exc:  # an odd variable should not lose the whole report
            log.warning("no quicklook for %s: %s", name, exc)
    g = plan.geobox
    facts = {
        "recipe": plan.recipe.name,
        "store": str(result.store),
        "grid": f"{g.crs}, {abs(g.resolution.x):g} CRS units, {g.shape.y} x {g.shape.x} px (y, x)",
        "tiles": f"{result.tiles_total} ({result.tiles_done} written now, {result.tiles_skipped} already complete)",
        "scenes used / skipped": f"{len(plan.item_ids)} / {len(plan.skipped)}",
        "run time": f"{result.seconds:.1f} s",
        "Dask dashboard (while it ran)": str(result.dashboard),
    }
    links = {"Dask performance report": "dask-performance.html", "run log": "run.log"}
    tiles_of = Counter(i for tp in plan.tile_plans for i in tp.items)
    shown = plan.source.materialise(plan.item_ids[:REPORT_MAX_SCENES])  # decoded for the table only
    used = [
        {
            "item": it.id,
            "datetime": f"{it.datetime:%Y-%m-%d %H:%M}" if it.datetime else "",
            "collection": it.collection_id,
            "cloud cover %": it.properties.get("eo:cloud_cover", ""),
            "tiles": tiles_of[it.id],
        }
        for it in shown
    ]
    if len(plan.item_ids) > len(shown):
        facts["scenes listed"] = (
            f"the first {len(shown)} of {len(plan.item_ids)} (all ids: the store's provenance)"
        )
    skipped = [{"item": k, "reason": v} for k, v in plan.skipped.items()]
    return write_html_report(
        out_dir / "index.html",
        title=f"orbitcube run: {plan.recipe.name}",
        facts=facts,
        images=images,
        tables={"Per-tile timings": result.timings, "Scenes used": used, "Scenes skipped": skipped},
        links={k: v for k, v in links.items() if (out_dir / v).exists()},
    )


def event_quicklook(
    detected: Mapping[str, np.ndarray],
    truth: Mapping[str, np.ndarray],
    geobox: GeoBox,
    path: Path,
    *,
    scores: Mapping[str, Mapping[str, float]] | None = None,
) -> Path:
    """A PNG with one panel per event type (the keys of ``truth``): pixels found and true (green), found only
    (red: false alarms), true only (blue: missed), on the (y, x) grid of the odc-geo ``geobox``, axes in km of
    its CRS; each panel titled with its F1 and IoU when ``scores`` (see ``score_events``) are given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    colours = ["#f2f2f2", "#1a9850", "#d73027", "#4575b4"]
    names = ["neither", "found and true", "found only (false alarm)", "true only (missed)"]
    b = geobox.boundingbox
    extent = [b.left / 1e3, b.right / 1e3, b.bottom / 1e3, b.top / 1e3]
    fig, axes = plt.subplots(
        1, len(truth), figsize=(4.2 * len(truth), 3.6), squeeze=False, constrained_layout=True
    )
    for ax, (kind, true) in zip(axes.flat, truth.items(), strict=True):
        found = np.asarray(detected.get(kind, np.zeros_like(true)), dtype=bool)
        true = np.asarray(true, dtype=bool)
        cls = np.select([found & true, found & ~true, ~found & true], [1, 2, 3], 0)
        ax.imshow(cls, extent=extent, cmap=ListedColormap(colours), vmin=0, vmax=3, interpolation="nearest")
        s = (scores or {}).get(kind)
        ax.set_title(kind + (f"  F1 {s['f1']:.2f}, IoU {s['iou']:.2f}" if s else ""), fontsize=10)
        ax.set_xlabel(f"easting (km, EPSG:{geobox.crs.epsg})", fontsize=8)
        ax.set_ylabel("northing (km)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.legend(
        handles=[Patch(color=c, label=n) for c, n in zip(colours[1:], names[1:], strict=True)],
        loc="outside lower center",
        ncol=3,
        fontsize=8,
    )
    fig.suptitle("Planted events: detected vs truth")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


__all__ = [
    "REPORT_MAX_SCENES",
    "event_quicklook",
    "quicklook",
    "run_report",
    "write_html_report",
]
