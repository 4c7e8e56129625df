"""The loader's read tasks as the graph stores them: a tile, the indices of its scenes in the load's scene table
and their time steps (numpy arrays), turned back into the ``steps`` of :func:`orbitcube.pipeline.reader.read_tile`
on the worker. A load of 100,000 scenes over 10,000 tiles has millions of (tile, scene) pairs: the graph keeps
them as arrays, not as Python tuples of scene records.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from odc.geo.geobox import GeoBox

from orbitcube.pipeline.reader import ReadSpec, SceneSpec, read_tile


class Steps(Sequence):
    """The scenes of each time step of one read task, stored sparsely (most steps of a tile are empty: a tile of a
    five-year daily axis sees a scene every few days): ``n`` steps, ``entries`` ``(step, scenes)`` for the
    non-empty ones in step order. Reads as a sequence of ``n`` tuples of :class:`SceneSpec` (``()`` for an empty
    step), the ``steps`` of :func:`read_tile`; one opaque, picklable object in the graph."""

    __slots__ = ("_at", "entries", "n")

    def __init__(self, n: int, entries: tuple[tuple[int, tuple[SceneSpec, ...]], ...] = ()) -> None:
        self.n, self.entries = n, tuple(entries)
        self._at = dict(self.entries)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, t):  # type: ignore[override]
        if isinstance(t, slice):
            return [self[i] for i in range(*t.indices(self.n))]
        if t < 0:
            t += self.n
        if not 0 <= t < self.n:
            raise IndexError(t)
        return self._at.get(t, ())

    def __bool__(self) -> bool:
        return self.n > 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __hash__(self) -> int:
        return hash((self.n, self.entries))

    def __reduce__(self):
        return Steps, (self.n, self.entries)

    def __repr__(self) -> str:
        return f"Steps(n={self.n}, scenes in {len(self.entries)} steps)"


def read_tile_of(
    gbox: GeoBox,
    table: Sequence[SceneSpec],
    index: np.ndarray,
    step: np.ndarray,
    n_steps: int,
    spec: ReadSpec,
) -> np.ndarray:
    """:func:`read_tile` of the scenes ``table[index]``, scene ``index[k]`` in time step ``step[k]`` of
    ``n_steps`` (``index`` ascending: the mosaic order within a step), as the loader's graph stores a tile."""
    return read_tile(gbox, steps_of(table, index, step, n_steps), spec)


def steps_of(table: Sequence[SceneSpec], index: np.ndarray, step: np.ndarray, n_steps: int) -> Steps:
    """The :class:`Steps` of scenes ``table[index]``, scene ``index[k]`` in step ``step[k]`` (see
    :func:`read_tile_of`)."""
    by_step: dict[int, list[SceneSpec]] = {}
    for n, t in zip(np.asarray(index).tolist(), np.asarray(step).tolist(), strict=True):
        by_step.setdefault(t, []).append(table[n])
    return Steps(n_steps, tuple((t, tuple(v)) for t, v in sorted(by_step.items())))


__all__ = ["Steps", "read_tile_of", "steps_of"]
