"""Crashes and hangs: every size a user controls is bounded before anything is allocated, so a typo (a resolution
of 0.0001, ``freq: 1s``), a hostile filter or a YAML bomb ends within seconds with one clear error line, and a
big but legal plan asks for ``--yes`` instead of starting."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hostile_helpers import assert_clean_error, run_cli, tiny_recipe_doc

from orbitcube.catalog.errors import CatalogError
from orbitcube.catalog.filters import parse_filter
from orbitcube.pipeline.errors import AnalyticsError, RecipeError
from orbitcube.pipeline.limits import LargePlanError
from orbitcube.pipeline.plan import plan_run

#: seconds any refused input may take, interpreter start included (the machine is shared and slow)
BOUND = 45

DEEP_JSON = '{"op":"not","args":[' * 600 + "true" + "]}" * 600


@pytest.mark.parametrize(
    ("flt", "needle"),
    [
        ("(" * 2000 + "eo:cloud_cover < 5" + ")" * 2000, "2000 levels"),  # segfaulted the cql2 parser
        ("eo:cloud_cover = " + "-" * 5000 + "1", "5000 levels"),  # unary minus: segfault too
        ("NOT " * 3000 + "eo:cloud_cover < 5", "3000 levels"),
        (DEEP_JSON, "nested JSON"),
        (" OR ".join(f"id = 'scene-{i}'" for i in range(2000)), "characters long"),
    ],
    ids=["parentheses", "minus", "not", "json", "length"],
)
def test_hostile_cql2_filter_is_refused_before_the_parser(tiny_mission, flt: str, needle: str) -> None:
    t0 = time.monotonic()
    res = run_cli("catalog", "search", str(tiny_mission.catalog_path), "--filter", flt, timeout=BOUND)
    assert_clean_error(res, "filter", needle, "limit")
    assert time.monotonic() - t0 < BOUND


def test_deep_filter_dict_is_refused_in_the_library() -> None:
    node: dict = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 5]}
    for _ in range(400):
        node = {"op": "not", "args": [node]}
    with pytest.raises(CatalogError, match="nests .* levels deep"):
        parse_filter(node)
    # an ordinary filter still parses
    assert parse_filter("(eo:cloud_cover < 5 AND NOT platform = 'x') OR -1 < 0")["op"] == "or"


def test_sub_millimetre_resolution_is_refused_before_tiling(make_recipe) -> None:
    recipe = make_recipe(grid={"resolution": 0.0001})
    t0 = time.monotonic()
    res = run_cli("run", str(recipe), "--dry-run", timeout=BOUND)
    assert_clean_error(res, "grid.resolution 0.0001", "pixels", "limit")
    assert time.monotonic() - t0 < BOUND


def test_too_many_tiles_is_refused_naming_tile_shape(make_recipe) -> None:
    recipe = make_recipe(grid={"resolution": 0.05, "tile_shape": [16, 16]})  # ~1 million tiles
    res = run_cli("run", str(recipe), "--dry-run", timeout=BOUND)
    assert_clean_error(res, "tiles", "grid.tile_shape", "limit")


def test_composite_freq_typo_is_refused_before_building_bins(make_recipe) -> None:
    recipe = make_recipe(
        analytics=[
            {"op": "index", "index": "NDVI"},
            {"op": "composite", "input": "ndvi", "stat": "median", "freq": "1s"},  # meant 1MS
        ]
    )
    res = run_cli("run", str(recipe), "--dry-run", timeout=BOUND)
    assert_clean_error(res, "freq='1s'", "periods", "1MS")


def test_time_bins_are_bounded_in_the_library() -> None:
    from orbitcube.pipeline.analytics import composite

    t = pd.date_range("2023-06-01", "2023-06-20", freq="5D")
    da = xr.DataArray(np.ones((len(t), 2, 2), "f4"), dims=("time", "y", "x"), coords={"time": t}, name="v")
    t0 = time.monotonic()
    with pytest.raises(AnalyticsError, match="freq='1s'"):
        composite(da, "median", freq="1s")
    assert time.monotonic() - t0 < 5
    assert composite(da, "median", freq="1MS").sizes["time"] == 1


def _laughs(levels: int = 9) -> str:
    """A GeoJSON polygon in flow YAML whose anchors expand nine-fold per level (9**9 coordinate pairs)."""
    parts = ["&l0 [11.99, 45.49]"]
    for i in range(1, levels + 1):
        parts.append(f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "{type: Polygon, coordinates: [" + ", ".join(parts) + "]}"


def test_billion_laughs_in_the_aoi_is_refused_by_validate_and_run(tiny_mission, tmp_path: Path) -> None:
    import yaml

    doc = yaml.safe_dump(tiny_recipe_doc(tiny_mission, tmp_path / "cube.zarr"), sort_keys=False)
    aoi_line = next(ln for ln in doc.splitlines() if ln.startswith("  aoi:"))
    start = doc.index(aoi_line)
    end = doc.index("  datetime:")
    recipe = tmp_path / "laughs.yaml"
    recipe.write_text(doc[:start] + f"  aoi: {_laughs()}\n" + doc[end:])
    t0 = time.monotonic()
    res = run_cli("recipe", "validate", str(recipe), timeout=BOUND)
    assert_clean_error(res, "laughs.yaml", "aliases", "limit")
    assert time.monotonic() - t0 < BOUND
    with pytest.raises(RecipeError, match="aliases"):  # what `run --dry-run` calls first
        plan_run(recipe)


def test_deeply_nested_yaml_is_refused(tmp_path: Path) -> None:
    recipe = tmp_path / "deep.yaml"
    recipe.write_text("name: " + "[" * 3000 + "]" * 3000 + "\n")
    res = run_cli("recipe", "validate", str(recipe), timeout=BOUND)
    assert_clean_error(res, "deep.yaml")


def _big_recipe(make_recipe) -> Path:
    # 0.02 m pixels over the ~1 km AOI: 33k x 47k px, 4 dates of float32 NDVI = 23 GiB, in 30 tiles of 8192 px
    return make_recipe(grid={"resolution": 0.02, "tile_shape": [8192, 8192]})


def test_big_plan_asks_for_yes_and_writes_nothing(make_recipe, tmp_path: Path) -> None:
    recipe = _big_recipe(make_recipe)
    res = run_cli("run", str(recipe), timeout=BOUND)
    assert_clean_error(res, "GiB", "--yes", "allow_large")
    assert not (tmp_path / "cube.zarr").exists() and not (tmp_path / "cube-report").exists()


def test_big_plan_needs_the_library_or_recipe_flag(tiny_mission, tmp_path: Path) -> None:
    from orbitcube.pipeline.limits import require_confirmation
    from orbitcube.pipeline.recipe import load_recipe
    from orbitcube.pipeline.run import run_recipe

    doc = tiny_recipe_doc(tiny_mission, tmp_path / "cube.zarr")
    doc["grid"].update(resolution=0.02, tile_shape=[8192, 8192])
    with pytest.raises(LargePlanError, match="allow_large"):
        run_recipe(doc, progress=False)
    assert not (tmp_path / "cube.zarr").exists()
    plan = plan_run(doc)
    assert plan.bytes_written > 16 * 2**30
    text = plan.summary()  # what --dry-run prints
    assert "large plan" in text and "--yes" in text and len(text.splitlines()) < 30
    require_confirmation(plan.bytes_written, len(plan.tile_plans), "x", allowed=True)  # confirmed: no error
    doc["output"]["allow_large"] = True
    assert load_recipe(doc).output.allow_large
    assert load_recipe(doc).fingerprint() == load_recipe({**doc, "output": {"path": "x"}}).fingerprint()


def test_dry_run_summarises_many_tiles(make_recipe) -> None:
    recipe = make_recipe(grid={"resolution": 4, "tile_shape": [16, 16]})  # 11 x 15 = 165 tiles
    res = run_cli("run", str(recipe), "--dry-run", timeout=90)
    assert res.code == 0, res.err
    assert "more tiles" in res.out
    assert sum(ln.startswith("  tile ") for ln in res.out.splitlines()) <= 12
    assert len(res.out.splitlines()) < 30
