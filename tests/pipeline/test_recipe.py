"""Recipes: one validated model; YAML via safe_load; every error a RecipeError naming the key and allowed values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orbitcube.pipeline.errors import RecipeError
from orbitcube.pipeline.recipe import (
    CompositeStep,
    IndexStep,
    Recipe,
    example_recipe,
    load_recipe,
    step_outputs,
)

BASE = {"catalog": {"source": "cat"}, "output": {"path": "out.zarr"}}


def test_example_recipe_validates_and_round_trips(tmp_path: Path) -> None:
    recipe = load_recipe(example_recipe())
    assert isinstance(recipe, Recipe)
    assert [type(s) for s in recipe.analytics] == [IndexStep, CompositeStep]
    assert recipe.grid.tile_shape == (256, 256) and recipe.load.bands == ["red", "nir"]
    again = load_recipe(recipe.to_yaml())
    assert again == recipe and again.fingerprint() == recipe.fingerprint()


def test_file_paths_resolve_against_the_recipe_folder(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.yaml"
    path.parent.mkdir()
    path.write_text(example_recipe())
    recipe = load_recipe(path)
    assert Path(recipe.catalog.source) == path.parent / "mission/catalog/catalog.json"
    assert Path(recipe.output.path) == path.parent / "ndvi.zarr"
    assert load_recipe(str(path)) == recipe


def test_fingerprint_ignores_cluster_and_output_path_but_not_analytics() -> None:
    a = load_recipe(BASE)
    b = load_recipe({**BASE, "output": {"path": "elsewhere.zarr"}, "cluster": {"n_workers": 7}})
    c = load_recipe({**BASE, "analytics": [{"op": "index", "index": "EVI"}]})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


@pytest.mark.parametrize(
    ("patch", "names"),
    [
        ({"search": {"max_cloud_cover": 150}}, ["search.max_cloud_cover", "less than or equal to 100"]),
        ({"catalog": {"source": "c", "kind": "ftp"}}, ["catalog.kind", "'local', 'static' or 'api'"]),
        ({"grid": {"tile_shape": [8, 64]}}, ["grid.tile_shape.0", "greater than or equal to 16"]),
        ({"grid": {"tilesize": 3}}, ["grid.tilesize", "unknown key", "tile_shape"]),
        ({"outptu": {}}, ["outptu", "unknown key", "output"]),
        ({"load": {"mask": ["clouds"]}}, ["load.mask", "'clouds'", "cirrus", "shadow"]),
        (
            {"analytics": [{"op": "blur"}]},
            ["analytics.0", "'blur'", "index", "band_math", "composite", "trend"],
        ),
        (
            {
                "analytics": [
                    {"op": "index", "index": "NDVI"},
                    {"op": "composite", "input": "ndvi", "stat": "mode"},
                ]
            },
            ["analytics.1.stat", "'mode'", "'median'", "'percentile'"],
        ),
        ({"analytics": [{"op": "composite", "input": "evi"}]}, ["analytics.0.input", "'evi'", "red", "nir"]),
        (
            {"analytics": [{"op": "resample", "input": "red", "freq": "monthly"}]},
            ["analytics.0", "'resample'", "composite"],
        ),
        (
            {
                "analytics": [
                    {"op": "composite", "input": "red", "stat": "percentile", "q": 2},
                    {"op": "composite", "input": "red", "stat": "percentile", "q": 2.0},
                ]
            },
            ["analytics.1", "'red_p2'", "existing variable"],
        ),
        (
            {"analytics": [{"op": "band_math", "expression": "nir - red", "name": "red"}]},
            ["analytics.0", "'red'", "existing variable"],
        ),
        ({"output": {"path": "o.zarr", "variables": ["evi"]}}, ["output.variables", "'evi'"]),
        ({"search": {"aoi": [12, 45, 11, 46]}}, ["search.aoi", "west < east"]),
        ({"cluster": {"scheduler": "localhost:8786"}}, ["cluster.scheduler", "tcp"]),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_values(patch: dict, names: list[str]) -> None:
    with pytest.raises(RecipeError) as err:
        load_recipe({**BASE, **patch})
    for text in names:
        assert text in str(err.value)


def test_missing_keys_bad_yaml_and_unsafe_tags(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="output: required key is missing"):
        load_recipe({"catalog": {"source": "c"}})
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe("catalog: [")
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe("- a\n- b\n")
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    evil = tmp_path / "evil.yaml"
    evil.write_text("catalog: !!python/object/apply:os.system ['touch pwned']\noutput: {path: o}\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(evil)
    assert not Path("pwned").exists()
    yaml.safe_load(example_recipe())  # the example is plain YAML


def test_load_scale_offset_overrides_round_trip_and_bad_ones_name_the_key() -> None:
    recipe = load_recipe({**BASE, "load": {"bands": ["red"], "scale_offset": {"red": [0.0001, -0.1]}}})
    assert recipe.load.scale_offset == {"red": (0.0001, -0.1)}
    assert load_recipe(recipe.to_yaml()) == recipe
    with pytest.raises(RecipeError, match="load.scale_offset"):
        load_recipe({**BASE, "load": {"scale_offset": {"red": [0.0001]}}})


def test_percentiles_that_differ_get_different_names() -> None:
    """q=2 and q=2.5 used to both write ``red_p2``: the second silently replaced the first."""
    recipe = load_recipe(
        {
            **BASE,
            "analytics": [
                {"op": "composite", "input": "red", "stat": "percentile", "q": 2},
                {"op": "composite", "input": "red", "stat": "percentile", "q": 2.5, "freq": "monthly"},
            ],
        }
    )
    assert [step_outputs(s) for s in recipe.analytics] == [["red_p2"], ["red_p2_5"]]
