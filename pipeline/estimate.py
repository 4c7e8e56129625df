"""What a run will cost, from its plan: CPU-hours, memory per worker and wall time on N workers.

The cost model is linear in the work of each tile and its coefficients come from a calibration run on the
machine that will run the recipe (``python -m benchmarks.bench_plan --calibrate`` writes
``benchmarks/calibration.json``; :data:`CALIBRATION` is where it is looked for):

- CPU seconds of a tile = ``tile_s + read_s_per_gvalue * reads / 1e9 + write_s_per_gvalue * outputs / 1e9``,
  where ``reads`` = items touching the tile x tile pixels x bands read (quality layer included) and ``outputs`` =
  output values of the tile (every output variable, all its time or period steps);
- peak memory of a tile's task = ``mem_factor`` x 4 bytes x time steps held x tile pixels x bands (the read
  task holds bands x time chunk x y x x float32; ``mem_factor`` covers masks and the analytics' temporaries);
  the steps held are the run's time chunk (:func:`held_steps`: ``cluster.time_chunk``, or derived from
  ``cluster.memory_limit`` as the loader does), widened to whole periods for per-period composites and to the
  whole series for a trend or a median/percentile over all time;
- memory per worker = ``worker_base_mb`` + threads per worker x the largest tile's peak;
- wall seconds on N workers = ``startup_s`` + the tiles' CPU seconds / (N x threads per worker), longest tile
  at least (a run cannot finish before its slowest tile).

A model extrapolated far beyond its calibration (tiles of 2048 px from tiles of 32 px) is a first-order
estimate: its error is measured only at the calibrated scale (benchmarks/README.md, "Continental plans").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orbitcube.pipeline.errors import RecipeError

if TYPE_CHECKING:
    from orbitcube.pipeline.plan import RunPlan

__all__ = [
    "CALIBRATION",
    "CostModel",
    "RunEstimate",
    "estimate_run",
    "held_steps",
    "load_calibration",
    "tile_work",
]

#: the calibration file of this checkout (written by ``python -m benchmarks.bench_plan --calibrate``)
CALIBRATION = Path(__file__).resolve().parent.parent / "benchmarks" / "calibration.json"


@dataclass(frozen=True)
class CostModel:
    """Per-tile costs measured on one machine (see the module docstring for the formulas). Seconds are CPU
    seconds of one worker thread; ``startup_s`` is wall seconds; memory in MB (10^6 bytes)."""

    tile_s: float
    read_s_per_gvalue: float
    write_s_per_gvalue: float
    startup_s: float
    worker_base_mb: float
    mem_factor: float
    machine: str = ""
    measured: str = ""

    def tile_seconds(self, reads: float, outputs: float) -> float:
        """CPU seconds of one tile reading ``reads`` item-pixel-band values and writing ``outputs`` values."""
        return self.tile_s + self.read_s_per_gvalue * reads / 1e9 + self.write_s_per_gvalue * outputs / 1e9

    def tile_peak_mb(self, steps: int, pixels: int, bands: int) -> float:
        """Peak memory (MB) of a tile task holding ``steps`` x ``pixels`` x ``bands`` float32 values."""
        return self.mem_factor * 4.0 * steps * pixels * bands / 1e6

    def to_json(self) -> dict[str, Any]:
        """The model as a JSON-ready dict (what the calibration file holds under ``"model"``)."""
        return asdict(self)


def load_calibration(path: Path | str | None = None) -> CostModel:
    """The cost model stored in ``path`` (default :data:`CALIBRATION`); RecipeError naming the file and the
    command that writes it when it is missing or unreadable."""
    path = Path(path or CALIBRATION)
    try:
        doc = json.loads(path.read_text())
        return CostModel(**doc["model"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RecipeError(
            f"cost calibration {path} cannot be read ({exc}); write it on this machine with "
            "`python -m benchmarks.bench_plan --calibrate`"
        ) from exc


@dataclass(frozen=True)
class RunEstimate:
    """What a plan will cost: ``cpu_hours`` (all tiles, worker threads), ``worker_memory_mb`` (peak per worker),
    ``wall_s`` on ``workers`` workers of ``threads`` threads each, and the largest tile's CPU seconds;
    ``memory_limit_mb``: the recipe's ``cluster.memory_limit`` (None: ``auto``)."""

    cpu_hours: float
    worker_memory_mb: float
    wall_s: float
    workers: int
    threads: int
    max_tile_s: float
    memory_limit_mb: float | None = None

    def lines(self) -> list[str]:
        """The estimate as lines of :meth:`RunPlan.summary` (a warning when the memory per worker exceeds the
        recipe's ``cluster.memory_limit``)."""
        out = [
            f"estimated CPU  : {self.cpu_hours:.3g} CPU-hours (worker threads; largest tile {self.max_tile_s:.3g} s)",
            f"estimated RAM  : {self.worker_memory_mb:,.0f} MB per worker ({self.threads} thread(s) each)",
            f"estimated wall : {_duration(self.wall_s)} on {self.workers} worker(s)",
        ]
        if self.memory_limit_mb is not None and self.worker_memory_mb > self.memory_limit_mb:
            out.append(
                f"warning: the estimated {self.worker_memory_mb:,.0f} MB per worker exceed cluster.memory_limit "
                f"({self.memory_limit_mb:,.0f} MB): workers may be restarted for memory; use a smaller "
                "grid.tile_shape, a larger memory_limit or fewer threads_per_worker"
            )
        return out


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h" if s < 172800 else f"{s / 86400:.1f} days"


def tile_work(plan: RunPlan) -> tuple[list[float], list[float], int, int]:
    """Per tile of ``plan`` (row-major) the values read (items x pixels x bands read) and written (output values),
    the time steps and the bands a read task holds."""
    bands = len(plan.recipe.load.bands) + (1 if plan.recipe.load.mask else 0)
    per_px = sum(
        int(v.size) // (plan.geobox.shape.y * plan.geobox.shape.x) for v in plan.template.data_vars.values()
    )
    reads = [float(len(tp.items)) * tp.shape[0] * tp.shape[1] * bands for tp in plan.tile_plans]
    writes = [float(tp.shape[0] * tp.shape[1] * per_px) for tp in plan.tile_plans]
    return reads, writes, len(plan.time_axis), bands


def estimate_run(
    plan: RunPlan, workers: int | None = None, model: CostModel | None = None, threads: int | None = None
) -> RunEstimate:
    """The cost of ``plan`` on ``workers`` workers (default the recipe's ``cluster.n_workers``) of ``threads``
    threads (default ``cluster.threads_per_worker``), from ``model`` (default :func:`load_calibration`)."""
    from dask.utils import parse_bytes

    model = model or load_calibration()
    c = plan.recipe.cluster
    workers = int(workers or c.n_workers)
    threads = int(threads or c.threads_per_worker or 1)
    if workers < 1:
        raise RecipeError(f"workers={workers}: a run needs at least one worker")
    reads, writes, _steps, bands = tile_work(plan)
    secs = [model.tile_seconds(r, w) for r, w in zip(reads, writes, strict=True)]
    total = sum(secs)
    biggest = max((tp.shape[0] * tp.shape[1] for tp in plan.tile_plans), default=0)
    per_thread = model.tile_peak_mb(held_steps(plan), biggest, bands)
    longest = max(secs, default=0.0)
    wall = model.startup_s + max(total / (workers * threads), longest)
    return RunEstimate(
        cpu_hours=total / 3600.0,
        worker_memory_mb=model.worker_base_mb + threads * per_thread,
        wall_s=wall,
        workers=workers,
        threads=threads,
        max_tile_s=longest,
        memory_limit_mb=None if c.memory_limit == "auto" else parse_bytes(c.memory_limit) / 1e6,
    )


def held_steps(plan: RunPlan) -> int:
    """Time steps a tile's tasks hold at once in a run of ``plan``: the read tasks' time chunk
    (``cluster.time_chunk``; ``auto``: :func:`orbitcube.pipeline.load.auto_time_chunk` of the tile shape and
    ``cluster.memory_limit``, as the loader derives it; -1: the whole axis), at least the longest period of a
    per-period composite (its chunks hold whole periods), and the whole series for a trend or a median or
    percentile composite without ``freq`` (they need every observation of a pixel at once)."""
    from orbitcube.pipeline.analytics.periods import split_periods
    from orbitcube.pipeline.load import auto_time_chunk

    steps = max(len(plan.time_axis), 1)
    r, c = plan.recipe, plan.recipe.cluster
    if c.time_chunk == -1:
        return steps
    bands = len(r.load.bands) + (1 if r.load.mask else 0)
    if c.time_chunk == "auto":
        mem = None if c.memory_limit == "auto" else c.memory_limit
        held = auto_time_chunk(bands, tuple(r.grid.tile_shape), steps, mem)
    else:
        held = min(int(c.time_chunk), steps)
    for step in r.analytics:
        if step.op == "trend" or (
            step.op == "composite" and step.freq is None and step.stat in ("median", "percentile")
        ):
            return steps
        if step.op == "composite" and step.freq and len(plan.time_axis):
            bounds, _ = split_periods(np.asarray(plan.time_axis), step.freq)
            held = max(held, max((b - a for a, b in bounds), default=1))
    return min(held, steps)
