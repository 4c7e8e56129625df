"""Run plans without a cluster: tiles and their items, the output template built from one small tile (identical to
the template of the whole lazy cube), picklable, the summary with its cost estimate."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from orbitcube.pipeline.errors import RecipeError
from orbitcube.pipeline.estimate import CostModel, estimate_run, load_calibration
from orbitcube.pipeline.footprints import footprint_on
from orbitcube.pipeline.plan import RunPlan, load_items, plan_run
from orbitcube.pipeline.steps import apply_steps

MODEL = CostModel(
    tile_s=0.05,
    read_s_per_gvalue=20.0,
    write_s_per_gvalue=50.0,
    startup_s=5.0,
    worker_base_mb=250.0,
    mem_factor=3.0,
)


@pytest.fixture(scope="module")
def plan(run_recipe_doc, tmp_path_factory) -> RunPlan:
    return plan_run(run_recipe_doc(tmp_path_factory.mktemp("plan") / "cube.zarr"))


def test_tiles_and_items_per_tile(plan: RunPlan) -> None:
    assert plan.tiles.shape == (3, 3) and [tp.index for tp in plan.tile_plans][:2] == [(0, 0), (0, 1)]
    pad = 2 * abs(plan.geobox.resolution.x)  # footprints grown by 2 output pixels
    fps = {it.id: footprint_on(it.geometry, plan.geobox).buffer(pad) for it in plan.items}
    for tp in plan.tile_plans:
        gbox = plan.tiles[tp.index]
        assert tp.shape == gbox.shape.yx
        assert set(tp.items) == {i for i, fp in fps.items() if fp.intersects(gbox.extent.geom)}
    assert all(tp.items for tp in plan.tile_plans)


def test_template_equals_the_template_of_the_whole_cube(plan: RunPlan) -> None:
    whole = apply_steps(load_items(plan.recipe, list(plan.items), plan.geobox, {}), plan.recipe)
    t = plan.template
    assert list(t.data_vars) == list(whole.data_vars)
    for name, v in whole.data_vars.items():
        assert (t[name].dims, t[name].shape, t[name].dtype) == (v.dims, v.shape, v.dtype)
        assert t[name].attrs == v.attrs
        assert t[name].chunks[-2:] == v.chunks[-2:]
    assert set(t.coords) == set(whole.coords)
    for c in whole.coords:
        np.testing.assert_array_equal(t[c].values, whole[c].values)
        assert t[c].attrs == whole[c].attrs
    np.testing.assert_array_equal(plan.time_axis, whole["time"].values if "time" in whole.dims else t["time"])


def test_plan_is_frozen_and_picklable(plan: RunPlan) -> None:
    again = pickle.loads(pickle.dumps(plan))
    assert again.fingerprint == plan.fingerprint and again.tile_plans == plan.tile_plans
    with pytest.raises(AttributeError):
        plan.bytes_read = 0  # type: ignore[misc]


def test_estimate_scales_with_workers_and_appears_in_the_summary(plan: RunPlan, tmp_path: Path) -> None:
    one, four = estimate_run(plan, 1, MODEL), estimate_run(plan, 4, MODEL)
    assert one.cpu_hours == four.cpu_hours > 0 and one.wall_s > four.wall_s > MODEL.startup_s
    assert one.worker_memory_mb > MODEL.worker_base_mb
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"model": MODEL.to_json()}))
    assert load_calibration(path) == MODEL
    with pytest.raises(RecipeError, match="bench_plan --calibrate"):
        load_calibration(tmp_path / "missing.json")
    text = plan.summary(workers=3)
    assert "tiles: 3 x 3 = 9" in text and "estimated read" in text
    # the estimate from this checkout's calibration (benchmarks/calibration.json)
    assert "on 3 worker(s)" in text and "CPU-hours" in text and "MB per worker" in text
