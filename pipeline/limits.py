"""Bounds on every size a user controls, checked before anything is allocated.

A typo in a recipe must never hang a run or exhaust a machine: a resolution of ``0.0001`` instead of ``10``
asks for 10^13 pixels, ``freq: 1s`` instead of ``1MS`` for millions of time bins. Hard limits (:data:`MAX_GRID_PIXELS`,
:data:`MAX_TILES`; time periods: :data:`orbitcube.pipeline.analytics.periods.MAX_PERIODS`) raise an error naming the value and the fix; big but legal plans (more
than :data:`CONFIRM_BYTES` to write or :data:`CONFIRM_TILES` tiles) run only when the user confirms them
(``orbitcube run --yes``, ``run_recipe(..., allow_large=True)`` or ``output.allow_large: true`` in the recipe).
"""

from __future__ import annotations

from orbitcube.pipeline.errors import GridError, RecipeError

#: most pixels of one (y, x) output grid: about 4.4 x 10^12, three times the Earth's land at 10 m (a continent at
#: 10 m is 2 x 10^11). Nothing is allocated per pixel (tiles are planned, computed and written one at a time;
#: :data:`MAX_TILES` bounds the per-tile work of planning), so this only catches typos: a resolution in degrees
#: or millimetres, an AOI in the wrong CRS
MAX_GRID_PIXELS = 2**42
#: most tiles (= chunks in space) of one run
MAX_TILES = 100_000
#: plans writing more (uncompressed bytes) than this need a confirmation
CONFIRM_BYTES = 16 * 2**30
#: plans with more tiles than this need a confirmation
CONFIRM_TILES = 10_000


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def check_grid_size(shape_yx: tuple[int, int], tile_shape: tuple[int, int], resolution: float) -> None:
    """GridError when a grid of ``shape_yx`` (y, x) pixels at ``resolution`` (CRS units) has more than
    :data:`MAX_GRID_PIXELS` pixels or, split into ``tile_shape`` (y, x) tiles, more than :data:`MAX_TILES` tiles.
    Cheap: call it before tiling the grid or building any graph."""
    ny, nx = (int(v) for v in shape_yx)
    pixels = ny * nx
    if pixels > MAX_GRID_PIXELS:
        raise GridError(
            f"grid.resolution {resolution:g} gives a grid of {ny} x {nx} = {pixels:.3g} pixels (y, x); the limit "
            f"is {MAX_GRID_PIXELS:.3g} (MAX_GRID_PIXELS, three times the Earth's land at 10 m): check "
            "grid.resolution (CRS units, metres for UTM, e.g. 10), grid.crs and the AOI"
        )
    ty, tx = (int(v) for v in tile_shape)
    tiles = -(-ny // ty) * -(-nx // tx)
    if tiles > MAX_TILES:
        raise GridError(
            f"grid of {ny} x {nx} pixels at grid.resolution {resolution:g} in tiles of {ty} x {tx} gives {tiles} "
            f"tiles; the limit is {MAX_TILES}: use a coarser grid.resolution, a smaller AOI or a larger "
            "grid.tile_shape"
        )


class LargePlanError(RecipeError):
    """A legal but big plan was not confirmed (``--yes``, ``allow_large=True`` or ``output.allow_large``)."""


def confirmation_needed(bytes_written: int, tiles: int) -> str | None:
    """Why a plan of ``bytes_written`` (uncompressed) and ``tiles`` needs the user's confirmation, or None."""
    reasons = []
    if bytes_written > CONFIRM_BYTES:
        reasons.append(f"writes {_human(bytes_written)} (more than {_human(CONFIRM_BYTES)})")
    if tiles > CONFIRM_TILES:
        reasons.append(f"has {tiles} tiles (more than {CONFIRM_TILES})")
    return " and ".join(reasons) or None


def require_confirmation(bytes_written: int, tiles: int, recipe_name: str, allowed: bool) -> None:
    """LargePlanError unless the plan is small (:func:`confirmation_needed`) or ``allowed``."""
    reason = confirmation_needed(bytes_written, tiles)
    if reason and not allowed:
        raise LargePlanError(
            f"recipe {recipe_name!r}: the plan {reason}; check it with `orbitcube run RECIPE --dry-run`, then "
            "confirm with `orbitcube run RECIPE --yes` (or output.allow_large: true in the recipe, "
            "run_recipe(..., allow_large=True) in Python)"
        )


__all__ = [
    "CONFIRM_BYTES",
    "CONFIRM_TILES",
    "LargePlanError",
    "MAX_GRID_PIXELS",
    "MAX_TILES",
    "check_grid_size",
    "confirmation_needed",
    "require_confirmation",
]
