"""The loader's read tasks as the graph stores them: a tile, the indices of its scenes in the load's scene table
and their time steps (numpy arrays), turned back into the ``steps`` of :func:`orbitcube.pipeline.reader.read_tile`
on the worker. A load of 100,000 scenes over 10,000 tiles has millions of (tile, scene) pairs: the graph keeps
them as arrays, not as Python tuples of scene records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from odc.geo.geobox import GeoBox, GeoboxTiles

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


class SceneTable(Sequence):
    """The scenes of a load as columns (built from a stac-geoparquet table by :mod:`orbitcube.pipeline.scenes`):
    per scene its id and its resolution (an index into ``templates``), and per slot (each requested band, then
    the quality layer) its href (GDAL path) and resampling (an index into ``names``). ``templates[r]`` is
    ``(assets, quality, decoder)`` of resolution ``r``: the :class:`AssetSpec` of each slot with an empty href
    (None where such scenes lack the band), and the quality decoder. ``table[n]`` is the :class:`SceneSpec` of
    scene ``n``, built when a read task asks for it: the client holds no Python object per scene, and the graph
    holds (and ships) arrays."""

    def __init__(
        self,
        ids,
        resolution: np.ndarray,
        hrefs: tuple,
        resampling: tuple[np.ndarray, ...],
        names: tuple[str, ...],
        templates: tuple,
    ) -> None:
        self.ids, self.resolution, self.hrefs = ids, resolution, hrefs
        self.resampling, self.names, self.templates = resampling, names, templates

    def __len__(self) -> int:
        return len(self.resolution)

    def __getitem__(self, n):  # type: ignore[override]
        if isinstance(n, slice):
            return [self[i] for i in range(*n.indices(len(self)))]
        assets, quality, decoder = self.templates[int(self.resolution[n])]
        slots = []
        for j, t in enumerate((*assets, quality)):
            if t is not None:
                t = replace(t, href=self.hrefs[j][n].as_py(), resampling=self.names[self.resampling[j][n]])
            slots.append(t)
        return SceneSpec(self.ids[n].as_py(), tuple(slots[:-1]), slots[-1], decoder)

    def __repr__(self) -> str:
        return f"SceneTable({len(self)} scenes, {len(self.templates)} resolutions)"


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


def _digest(scenes: Sequence[SceneSpec], step_of: np.ndarray) -> str:
    """A content hash of the scenes and time steps of a load, for the graph's token (dask's tokenize walks every
    field of every SceneSpec: seconds on 100,000 items; the pickle of these frozen records is deterministic)."""
    import hashlib
    import pickle

    return hashlib.sha1(pickle.dumps((scenes, step_of), protocol=5), usedforsecurity=False).hexdigest()


def read_tasks(graph: Mapping) -> dict:
    """The read tasks of a load's Dask graph (for inspection and tests): ``{key: (tile GeoBox, steps, ReadSpec)}``
    with ``steps`` the scenes (:class:`~orbitcube.pipeline.reader.SceneSpec`) of each time step of the task."""
    graph = dict(graph)
    out = {}
    for k, v in graph.items():
        if isinstance(k, tuple) and isinstance(k[0], str) and k[0].startswith("load-tile-"):
            _fn, tile, table, index, step, n, spec = v
            out[k] = (tile, steps_of(graph[table], index, step, n), spec)
    return out


def tile_graph(
    scenes: Sequence[SceneSpec],
    step_of: np.ndarray,
    nt: int,
    tiles: GeoboxTiles,
    pairs: tuple[np.ndarray, np.ndarray],
    time_chunk: int | None,
    spec: ReadSpec,
) -> dict:
    """Dask arrays (time, y, x) per band, backed by one ``read_tile`` task per (time chunk, tile of the grid):
    ``step_of`` is the time step (of ``nt``) of each scene, ``pairs`` which scenes touch which tile (see
    :func:`~orbitcube.pipeline.footprints.tile_scene_pairs`). The scenes are one ``scenes-<token>`` entry of
    the graph (shipped once to each worker); a read task holds only its tile, the indices of its scenes and
    their time steps (numpy arrays): no Python object per (tile, scene) pair."""
    import operator

    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    ny, nx = tiles.shape.yx
    step = time_chunk or max(nt, 1)
    t_bounds = [(t0, min(t0 + step, nt)) for t0 in range(0, nt, step)] or [(0, 0)]
    token = tokenize(tiles.base, tiles.chunk_shape((0, 0)), step, spec, _digest(scenes, step_of))
    load_name, table = f"load-tile-{token}", (f"scenes-{token}",)
    tile_idx, scene_idx = pairs
    bounds = np.searchsorted(tile_idx, np.arange(ny * nx + 1)).tolist()
    layer: dict = {table: scenes if isinstance(scenes, SceneTable) else tuple(scenes)}
    for i in range(ny):
        for j in range(nx):
            idx = scene_idx[bounds[i * nx + j] : bounds[i * nx + j + 1]].astype(np.int32)
            at = step_of[idx]
            for k, (t0, t1) in enumerate(t_bounds):
                sel = slice(None) if len(t_bounds) == 1 else (at >= t0) & (at < t1)
                task = (read_tile_of, tiles[i, j], table, idx[sel], at[sel] - t0, t1 - t0, spec)
                layer[(load_name, k, i, j)] = task
    chunks = (
        tuple(t1 - t0 for t0, t1 in t_bounds),
        tuple(tiles[i, 0].shape.y for i in range(ny)),
        tuple(tiles[0, j].shape.x for j in range(nx)),
    )
    keys = [(k, i, j) for k in range(len(t_bounds)) for i in range(ny) for j in range(nx)]
    out = {}
    for b, band in enumerate(spec.bands):
        name = f"{band}-{token}"
        layer_b = {(name, *key): (operator.getitem, (load_name, *key), b) for key in keys}
        graph = HighLevelGraph({load_name: layer, name: layer_b}, {load_name: set(), name: {load_name}})
        out[band] = da.Array(graph, name, chunks, dtype=np.float32)
    return out


__all__ = ["SceneTable", "Steps", "read_tasks", "read_tile_of", "steps_of", "tile_graph"]
