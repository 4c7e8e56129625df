"""A recipe's analytics steps applied to a lazy cube: spectral indices, band math, period composites, trends.

The one place that turns the ``analytics:`` list of a recipe into xarray operations (each step is a library
function of :mod:`orbitcube.pipeline.analytics`); the batch plan uses it for the output template, the runner for
every tile.
"""

from __future__ import annotations

import re

import xarray as xr

from orbitcube.pipeline.recipe import BandMathStep, CompositeStep, IndexStep, Recipe, TrendStep

__all__ = ["apply_steps", "step_dim"]


def step_dim(step: CompositeStep) -> str:
    """The name of the period dimension a composite step produces: ``step.dim``, else ``month`` for monthly
    periods, else ``time_<freq>``."""
    if step.dim:
        return step.dim
    if step.freq in ("1MS", "MS", "monthly", "month"):
        return "month"
    return "time_" + re.sub(r"\W", "_", step.freq or "all")


def apply_steps(cube: xr.Dataset, recipe: Recipe) -> xr.Dataset:
    """Run the recipe's analytics steps on ``cube`` (lazy, dims (time, y, x)); return the output variables named
    in the recipe (``output.variables``, else every variable the steps made, else the loaded bands), without
    attributes or coordinates other than their dimensions and ``spatial_ref``."""
    from orbitcube.pipeline.analytics import band_math, composite, linear_trend, spectral_index

    ds = cube
    for step in recipe.analytics:
        if isinstance(step, IndexStep):
            name = step.name or step.index.lower()
            ds[name] = spectral_index(ds, step.index).rename(name)
        elif isinstance(step, BandMathStep):
            ds[step.name] = band_math(ds, step.expression, name=step.name)
        elif isinstance(step, CompositeStep):
            out = composite(ds[step.input], step.stat, freq=step.freq, q=step.q)
            if "time" in out.dims:
                out = out.rename(time=step_dim(step))
            ds[out.name] = out
        elif isinstance(step, TrendStep):
            ds = ds.merge(linear_trend(ds[step.input], min_obs=step.min_obs))
    names = recipe.output.variables or (
        [n for n in ds.data_vars if n not in recipe.load.bands]
        if recipe.analytics
        else list(recipe.load.bands)
    )
    out = ds[names]
    keep = set(out.dims) | {"spatial_ref"}
    out = out.drop_vars([c for c in out.coords if c not in keep])
    out.attrs = {}
    return out
