"""The loader's read tasks as the graph stores them: a tile, the indices of its scenes in the load's scene table
and their time steps (numpy arrays), turned back into the ``steps`` of :func:`orbitcube.pipeline.reader.read_tile`
on the worker. A load of 100,000 scenes over 10,000 tiles has millions of (tile, scene) pairs: the graph keeps
them as arrays, not as Python tuples of scene records.
"""

from __future__ import annotations

import operator
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
            if len(v) == 4:  # scenes inline
                _fn, tile, steps, spec = v
                out[k] = (tile, steps, spec)
                continue
            _fn, tile, table, index, step, n, spec = v
            out[k] = (tile, steps_of(graph[table], index, step, n), spec)
    return out


#: (tile, scene) pairs of a load up to which each read task carries its own scenes instead of depending on one
#: shared scene table: Dask sends a task to the worker that holds all its dependencies (``decide_worker``), so
#: with a shared table the read tasks of a small graph (too few to be "root-ish") all ran on one worker while the
#: others idled. ~1 kB of graph per pair.
INLINE_PAIRS = 20_000


def tile_graph(
    scenes: Sequence[SceneSpec],
    step_of: np.ndarray,
    nt: int,
    tiles: GeoboxTiles,
    tile_scenes: tuple[np.ndarray, np.ndarray],
    time_chunk: int | None,
    spec: ReadSpec,
) -> dict:
    """Dask arrays (time, y, x) per band, backed by one ``read_tile`` task per (time chunk, tile of the grid):
    ``step_of`` is the time step (of ``nt``) of each scene, ``tile_scenes`` which scenes touch which tile
    (``(bounds, scene_idx)``, see :func:`~orbitcube.pipeline.footprints.tile_scenes`). Up to :data:`INLINE_PAIRS` (tile, scene) pairs
    each read task holds its own scenes (a batch run's tile, a small load): no task depends on another, so
    Dask spreads them over the workers. Above that the scenes are one ``scenes-<token>`` entry of the graph
    (shipped once to each worker) and a read task holds only its tile, the indices of its scenes and their time
    steps (numpy arrays): no Python object per (tile, scene) pair. The layers are mappings that make
    each task when Dask asks for it (:class:`ReadLayer`, :class:`BandLayer`): a load of 100,000 scenes over
    8,500 tiles and 95 time chunks has 800,000 read tasks, which exist as arrays until the graph is culled or
    computed."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    ny, nx = tiles.shape.yx
    step = time_chunk or max(nt, 1)
    t_bounds = tuple((t0, min(t0 + step, nt)) for t0 in range(0, nt, step)) or ((0, 0),)
    token = tokenize(tiles.base, tiles.chunk_shape((0, 0)), step, spec, _digest(scenes, step_of))
    bounds, scene_idx = tile_scenes
    table = scenes if isinstance(scenes, SceneTable) else tuple(scenes)
    inline = len(scene_idx) <= INLINE_PAIRS
    layer = ReadLayer(f"load-tile-{token}", table, tiles, bounds, scene_idx, step_of, t_bounds, spec, inline)
    chunks = (
        tuple(t1 - t0 for t0, t1 in t_bounds),
        tuple(int(tiles.chunk_shape((i, 0))[0]) for i in range(ny)),
        tuple(int(tiles.chunk_shape((0, j))[1]) for j in range(nx)),
    )
    out = {}
    for b, band in enumerate(spec.bands):
        name = f"{band}-{token}"
        layer_b = BandLayer(name, layer.name, b, layer.shape)
        graph = HighLevelGraph({layer.name: layer, name: layer_b}, {layer.name: set(), name: {layer.name}})
        out[band] = da.Array(graph, name, chunks, dtype=np.float32)
    return out


class _Blocks(Mapping):
    """Keys ``(name, k, i, j)`` of a (time chunk, tile row, tile column) block grid of ``shape``."""

    def __init__(self, name: str, shape: tuple[int, int, int]) -> None:
        self.name, self.shape = name, shape

    def _is_block(self, key) -> bool:
        return (
            isinstance(key, tuple)
            and len(key) == 4
            and key[0] == self.name
            and all(
                isinstance(v, int | np.integer) and 0 <= v < n
                for v, n in zip(key[1:], self.shape, strict=True)
            )
        )

    def _blocks(self):
        nk, ny, nx = self.shape
        return ((self.name, k, i, j) for k in range(nk) for i in range(ny) for j in range(nx))

    def __iter__(self):
        return self._blocks()

    def __len__(self) -> int:
        nk, ny, nx = self.shape
        return nk * ny * nx

    def __contains__(self, key) -> bool:
        return self._is_block(key)


class ReadLayer(_Blocks):
    """The read tasks of a load (and its scene table under ``(scenes-<token>,)``) as a Dask graph layer that
    makes each ``(load-tile-<token>, k, i, j)`` task when asked: ``read_tile_of(tile (i, j), table, indices of
    its scenes in time chunk k, their steps in the chunk, steps in the chunk, spec)``."""

    def __init__(self, name, table, tiles, bounds, scene_idx, step_of, t_bounds, spec, inline=False) -> None:
        super().__init__(name, (len(t_bounds), *tiles.shape.yx))
        self.inline = inline  # each task carries its scenes (read_tile(tile, Steps, spec)); no table entry
        self.table_key = (name.replace("load-tile-", "scenes-", 1),)
        self.table, self.tiles, self.bounds, self.scene_idx = table, tiles, bounds, scene_idx
        self.step_of, self.t_bounds, self.spec = step_of, t_bounds, spec

    def __getitem__(self, key):
        if key == self.table_key and not self.inline:
            return self.table
        if not self._is_block(key):
            raise KeyError(key)
        _, k, i, j = key
        q = i * self.shape[2] + j
        idx = self.scene_idx[self.bounds[q] : self.bounds[q + 1]].astype(np.int32)
        at = self.step_of[idx]
        t0, t1 = self.t_bounds[k]
        sel = slice(None) if len(self.t_bounds) == 1 else (at >= t0) & (at < t1)
        if self.inline:
            return (
                read_tile,
                self.tiles[i, j],
                steps_of(self.table, idx[sel], at[sel] - t0, t1 - t0),
                self.spec,
            )
        return (read_tile_of, self.tiles[i, j], self.table_key, idx[sel], at[sel] - t0, t1 - t0, self.spec)

    def __iter__(self):
        if not self.inline:
            yield self.table_key
        yield from self._blocks()

    def __len__(self) -> int:
        return super().__len__() + (0 if self.inline else 1)

    def __contains__(self, key) -> bool:
        return (key == self.table_key and not self.inline) or self._is_block(key)


class BandLayer(_Blocks):
    """Band ``b``'s chunks: ``(name, k, i, j)`` is ``getitem((source, k, i, j), b)``, made when asked."""

    def __init__(self, name: str, source: str, b: int, shape: tuple[int, int, int]) -> None:
        super().__init__(name, shape)
        self.source, self.b = source, b

    def __getitem__(self, key):
        if not self._is_block(key):
            raise KeyError(key)
        return (operator.getitem, (self.source, *key[1:]), self.b)


__all__ = [
    "INLINE_PAIRS",
    "BandLayer",
    "ReadLayer",
    "SceneTable",
    "Steps",
    "read_tasks",
    "read_tile_of",
    "steps_of",
    "tile_graph",
]
