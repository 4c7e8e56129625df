"""Run plans without a cluster: tiles and their items, the output template built from one small tile (identical to
the template of the whole lazy cube), picklable, the summary with its cost estimate."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from orbitcube.pipeline.errors import RecipeError
from orbitcube.pipeline.estimate import CostModel, estimate_run, held_steps, load_calibration
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
    pad = 2 * abs(plan.geobox.resolution.x)  # footprints within 2 output pixels of a tile
    fps = {it.id: footprint_on(it.geometry, plan.geobox) for it in plan.items}
    for tp in plan.tile_plans:
        gbox = plan.tiles[tp.index]
        assert tp.shape == gbox.shape.yx
        assert set(tp.items) == {i for i, fp in fps.items() if fp.distance(gbox.extent.geom) <= pad}
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


def test_memory_estimate_holds_a_time_chunk_not_the_whole_series(plan: RunPlan) -> None:
    """A run's tasks hold a time chunk of a tile, not its whole series: the memory estimate follows
    cluster.time_chunk (or the chunk memory_limit gives), widened to whole months for the monthly median and to
    the whole series for a trend; a smaller chunk gives a smaller estimate."""
    import dataclasses

    from orbitcube.pipeline.analytics.periods import split_periods
    from orbitcube.pipeline.load import auto_time_chunk
    from orbitcube.pipeline.recipe import TrendStep

    steps = len(plan.time_axis)
    month = max(b - a for a, b in split_periods(np.asarray(plan.time_axis), "1MS")[0])
    assert 1 < month < steps

    def run(analytics=None, **cluster) -> RunPlan:
        r = plan.recipe
        update = {"cluster": r.cluster.model_copy(update=cluster)}
        return dataclasses.replace(
            plan,
            recipe=r.model_copy(update=update if analytics is None else {**update, "analytics": analytics}),
        )

    index_only = list(plan.recipe.analytics[:1])
    assert held_steps(run(time_chunk=1)) == month  # the monthly median holds whole months
    assert held_steps(run(time_chunk=-1)) == held_steps(run(index_only, time_chunk=-1)) == steps
    assert held_steps(run(index_only, time_chunk=1)) == 1
    bands = len(plan.recipe.load.bands) + bool(plan.recipe.load.mask)  # a read task holds the mask too
    small = auto_time_chunk(bands, (32, 32), steps, "4MiB")
    assert small < steps and held_steps(run(index_only, memory_limit="4MiB")) == small
    assert held_steps(run([*index_only, TrendStep(op="trend", input="ndvi")], time_chunk=1)) == steps
    one, whole = (estimate_run(run(index_only, time_chunk=t), 1, MODEL) for t in (1, -1))
    assert one.worker_memory_mb < whole.worker_memory_mb
    assert not any("memory_limit" in line for line in one.lines())
    tight = estimate_run(run(index_only, time_chunk=-1, memory_limit="100MB"), 1, MODEL)
    assert tight.worker_memory_mb > 100 and "exceed cluster.memory_limit (100 MB)" in "\n".join(tight.lines())
