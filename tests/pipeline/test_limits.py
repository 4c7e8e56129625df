"""Size limits (pipeline/limits.py): a continent at 10 m plans; typos in the resolution are refused by name."""

from __future__ import annotations

import pytest

from orbitcube.pipeline.errors import GridError
from orbitcube.pipeline.limits import MAX_GRID_PIXELS, MAX_TILES, check_grid_size, confirmation_needed


def test_a_continent_at_10_m_is_within_the_limits_but_needs_confirmation() -> None:
    """5,000 x 4,000 km at 10 m in 2048 px tiles: 2 x 10^11 pixels, 48,020 tiles: planned (no GridError); a
    run asks for --yes."""
    check_grid_size((400_000, 500_000), (2048, 2048), 10.0)
    assert "48020 tiles" in (confirmation_needed(10**15, 196 * 245) or "")


def test_a_resolution_typo_is_refused_naming_the_setting_and_the_limit() -> None:
    with pytest.raises(GridError) as err:
        check_grid_size((40_000_000, 50_000_000), (8192, 8192), 0.1)
    msg = str(err.value)
    assert "grid.resolution 0.1" in msg and "4e+07 x 5e+07" not in msg and "40000000 x 50000000" in msg
    assert f"{MAX_GRID_PIXELS:.3g}" in msg and "MAX_GRID_PIXELS" in msg and "grid.crs" in msg


def test_too_many_tiles_is_refused_naming_tile_shape() -> None:
    with pytest.raises(GridError, match=rf"tiles; the limit is {MAX_TILES}: .*grid.tile_shape"):
        check_grid_size((400_000, 500_000), (512, 512), 10.0)
