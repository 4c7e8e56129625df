"""Checks of found items before a run plans or loads them: which scenes cannot contribute, and why.

Every item dropped here is dropped loudly: its id and the reason go into the plan's ``skipped`` table (printed by
``orbitcube run``, listed in the HTML report, recorded in the store's provenance) and into a log warning. Only
metadata is read (no pixel, no file header).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pystac

from orbitcube.pipeline.bands import asset_crs

log = logging.getLogger(__name__)


def _missing_files(item: pystac.Item, bands: Sequence[str] | None, mask: bool) -> list[str]:
    """Keys of the local assets a load of ``bands`` (and the quality layer when ``mask``) reads from ``item``
    whose files do not exist (all assets when ``bands`` is None): a missing thumbnail drops no scene."""
    from orbitcube.pipeline.load import local_path, requested_keys

    out = []
    for key in requested_keys(item, bands, mask):
        path = local_path(item.assets[key].get_absolute_href() or item.assets[key].href)
        if path is not None and not Path(path).exists():
            out.append(key)
    return out


def _raster_outside(item: pystac.Item, bands: Sequence[str] | None) -> str | None:
    """The first asset (of ``bands``, matched by key or common name) whose raster extent from ``proj:transform``,
    ``proj:shape`` and ``proj:code``/``proj:epsg`` (asset or item) does not intersect the item's geometry, as a
    reason; None when they all intersect or the metadata is not there to tell."""
    from odc.geo.geom import Geometry, box

    if item.geometry is None:
        return None
    footprint = Geometry(item.geometry, crs=4326)
    for key, asset in item.assets.items():
        f = asset.extra_fields
        names = {key, *(b.get("common_name") for b in f.get("eo:bands", []) or [])}
        if bands and not names & set(bands):
            continue
        tr, shape = f.get("proj:transform"), f.get("proj:shape")
        crs = asset_crs(f, item.properties)
        if not (tr and shape and crs) or len(tr) < 6 or tr[1] or tr[3]:
            continue
        x0, y0 = tr[2], tr[5]
        x1, y1 = x0 + tr[0] * shape[1], y0 + tr[4] * shape[0]
        try:
            extent = box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), crs=crs).to_crs(4326)
            if extent.intersects(footprint):
                continue
        except Exception:  # noqa: S112 (an unknown CRS or degenerate box: the loader reports it)
            continue
        b = ", ".join(f"{v:.4f}" for v in extent.boundingbox)
        return (
            f"asset {key!r}: its raster (lon/lat {b}, from proj:transform/proj:shape in {crs}) lies outside the "
            "item's geometry, so every pixel would be NaN; fix the asset's proj:transform/proj:code or the "
            "item's geometry"
        )
    return None


def screen_items(
    items: Sequence[pystac.Item], bands: Sequence[str] | None = None, mask: bool = False
) -> tuple[list[pystac.Item], dict[str, str]]:
    """Split found items into those a run can load and ``{item id: reason}`` for the others: no geometry, a
    null ``datetime`` (only ``start_datetime``/``end_datetime``), missing local files of the assets the load reads
    (``bands``, and the quality layer with ``mask``; named), or a raster
    of ``bands`` that lies outside the item's footprint (from the proj metadata). Logs a warning per dropped item."""
    keep, skipped = [], {}
    for it in items:
        missing = _missing_files(it, bands, mask)
        if it.geometry is None:
            why = "geometry is null: a scene needs its footprint; add the item's geometry and bbox"
        elif it.datetime is None and not it.properties.get("start_datetime"):
            why = "datetime is null and there is no start_datetime: set the item's acquisition time"
        elif missing:
            hrefs = [it.assets[k].get_absolute_href() or it.assets[k].href for k in missing]
            why = f"asset file(s) missing: {', '.join(f'{k} ({h})' for k, h in zip(missing, hrefs, strict=True))}"
        else:
            why = _raster_outside(it, bands)
        if why:
            log.warning("skipping item %s: %s", it.id, why)
            skipped[it.id] = why
        else:
            keep.append(it)
    return keep, skipped


def require_times_and_footprints(items: Sequence[pystac.Item]) -> None:
    """LoadError naming the first item without a geometry, or with neither a ``datetime`` nor a
    ``start_datetime`` (valid STAC with ``datetime: null`` and an interval loads, labelled from the interval:
    :mod:`orbitcube.pipeline.timeaxis`); a run skips such items through :func:`screen_items` instead."""
    from orbitcube.pipeline.errors import LoadError

    for it in items:
        if it.geometry is None:
            raise LoadError(
                f"item {it.id!r} has geometry null; add its footprint (geometry and bbox) or drop it"
            )
        if it.datetime is None and not it.properties.get("start_datetime"):
            raise LoadError(
                f"item {it.id!r} has datetime null and no start_datetime; set its datetime to the acquisition "
                "time (or start_datetime/end_datetime) or drop it"
            )


def check_output_path(path: str | Path, what: str = "output.path") -> None:
    """SinkError naming ``path`` when a local output cannot be created there: the path is an existing file, or
    its nearest existing parent is a file or not writable. URLs (``az://``, ``s3://``) are left to the store."""
    import os

    from orbitcube.pipeline.errors import SinkError

    text = str(path)
    if "://" in text and not text.startswith("file://"):
        return
    p = Path(text.removeprefix("file://")).expanduser().absolute()
    if p.exists() and not p.is_dir():
        raise SinkError(f"{what} {p} is a file, not a folder; choose a path for a new store (e.g. cube.zarr)")
    parent = p if p.exists() else p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SinkError(f"{what} {p}: {parent} is a file, not a folder; choose an output path in a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SinkError(
            f"{what} {p}: the folder {parent} is not writable by this user; choose a writable output path"
        )


__all__ = ["check_output_path", "require_times_and_footprints", "screen_items"]
