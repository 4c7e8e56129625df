"""Tracebacks instead of messages: every command given bad input (valid-but-unusual STAC, broken JSON, a wrong
argument, a path it cannot use) fails with one ``orbitcube: error:`` line naming the value and the fix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hostile_helpers import REPO, assert_clean_error, item_json, run_cli, tiny_recipe_doc

from orbitcube.pipeline.analytics.bandmath import ARITY, FUNCTIONS, band_math
from orbitcube.pipeline.errors import ExpressionError


@dataclass
class Ctx:
    """What a case may use: the recipe factory, a damageable copy of the mission, a finished store (built on first
    use), tmp_path."""

    make_recipe: Callable[..., Path]
    mission_copy: Path
    store: Callable[[], Path]
    tmp: Path


@pytest.fixture(scope="module")
def tiny_store(tiny_mission, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny recipe run once (ndvi, 4 dates): a store for the export cases."""
    from orbitcube.pipeline.run import run_recipe

    out = tmp_path_factory.mktemp("store") / "cube.zarr"
    run_recipe(tiny_recipe_doc(tiny_mission, out), progress=False)
    return out


def _null_geometry(c: Ctx) -> list[str]:
    p = item_json(c.mission_copy)
    d = json.loads(p.read_text())
    d["geometry"] = None
    d.pop("bbox")  # valid STAC: no geometry, no bbox
    p.write_text(json.dumps(d))
    return ["catalog", "search", str(c.mission_copy)]


def _broken_item(c: Ctx) -> list[str]:
    p = item_json(c.mission_copy)
    p.write_text(p.read_text()[:500])
    return ["run", str(c.make_recipe(catalog=c.mission_copy)), "--dry-run"]


def _band_math(expression: str) -> Callable[[Ctx], list[str]]:
    def make(c: Ctx) -> list[str]:
        step = {"op": "band_math", "expression": expression, "name": "v"}
        return ["recipe", "validate", str(c.make_recipe(analytics=[step]))]

    return make


def _output_at(path: Callable[[Ctx], str]) -> Callable[[Ctx], list[str]]:
    def make(c: Ctx) -> list[str]:
        return ["run", str(c.make_recipe(output={"path": path(c)}))]

    return make


def _a_file(c: Ctx) -> str:
    f = c.tmp / "notes.txt"
    f.write_text("a user's file\n")
    return str(f)


CASES = {
    "bbox-not-numbers": (lambda c: ["catalog", "search", str(c.mission_copy), "--bbox", "abc"], ["'abc'", "four"]),
    "bbox-three-numbers": (lambda c: ["catalog", "search", str(c.mission_copy), "--bbox", "1,2,3"], ["1,2,3"]),
    "bbox-nan": (lambda c: ["catalog", "search", str(c.mission_copy), "--bbox=0,nan,1,2"], ["finite"]),
    "geometry-null": (_null_geometry, ["geometry null", "add the geometry"]),
    "malformed-item-json": (_broken_item, ["does not resolve", "catalog validate"]),
    "sqrt-two-args": (_band_math("sqrt(nir, red)"), ["sqrt() takes 1 argument, got 2"]),
    "clip-one-arg": (_band_math("clip(nir)"), ["clip() takes 3 arguments, got 1"]),
    "where-two-args": (_band_math("where(nir > red, nir)"), ["where() takes 3 arguments"]),
    "minimum-three-args": (_band_math("minimum(nir, red, red)"), ["minimum() takes 2 arguments"]),
    "variable-named-time": (
        lambda c: ["recipe", "validate", str(c.make_recipe(analytics=[{"op": "band_math", "expression": "nir - red", "name": "time"}]))],
        ["'time'", "choose another name"],
    ),
    "variable-named-like-a-band": (
        lambda c: ["recipe", "validate", str(c.make_recipe(analytics=[{"op": "index", "index": "NDVI", "name": "red"}]))],
        ["'red'", "existing variable"],
    ),
    "output-is-a-file": (_output_at(_a_file), ["notes.txt", "is a file"]),
    "output-below-a-file": (_output_at(lambda c: _a_file(c) + "/cube.zarr"), ["notes.txt", "not a folder"]),
    "output-unwritable": (_output_at(lambda c: "/proc/orbitcube-test/cube.zarr"), ["/proc/orbitcube-test"]),
    "scheduler-http": (
        lambda c: ["run", str(c.make_recipe()), "--scheduler", "http://127.0.0.1:8787"],
        ["http://127.0.0.1:8787", "tcp://HOST:PORT"],
    ),
    "scheduler-no-scheme": (
        lambda c: ["run", str(c.make_recipe()), "--scheduler", "127.0.0.1:8786"],
        ["127.0.0.1:8786", "tcp://"],
    ),
    "export-bad-date": (
        lambda c: ["export", str(c.store()), "--variable", "ndvi", "--time", "2023-13-45", "--to-cog", str(c.tmp / "a.tif")],
        ["2023-13-45", "2023-06-01"],
    ),
    "export-store-is-a-file": (
        lambda c: ["export", _a_file(c), "--variable", "ndvi", "--to-cog", str(c.tmp / "a.tif")],
        ["notes.txt"],
    ),
    "export-cog-below-a-file": (
        lambda c: ["export", str(c.store()), "--variable", "ndvi", "--time", "0", "--to-cog", _a_file(c) + "/a.tif"],
        ["notes.txt"],
    ),
    "export-cog-unwritable": (
        lambda c: ["export", str(c.store()), "--variable", "ndvi", "--time", "0", "--to-cog", "/proc/a.tif"],
        ["/proc/a.tif"],
    ),
    "publish-ftp": (lambda c: ["catalog", "publish", str(c.mission_copy), "ftp://host/x"], ["ftp://host/x", "s3://"]),
    "ingest-config-not-yaml": (
        lambda c: ["catalog", "ingest", str(c.mission_copy), "--catalog", str(c.tmp / "new"), "--config",
                   str(_write(c.tmp / "cfg.yaml", "pattern: [\n"))],
        ["cfg.yaml", "give a YAML file"],
    ),
    "recipe-not-utf8": (
        lambda c: ["recipe", "validate", str(_write_bytes(c.tmp / "r.yaml", b"name: caf\xe9\n"))],
        ["r.yaml", "not UTF-8"],
    ),
    "resolution-infinite": (
        lambda c: ["run", str(c.make_recipe(grid={"resolution": float("inf")})), "--dry-run"],
        ["grid.resolution", "finite"],
    ),
    "recipe-not-yaml": (
        lambda c: ["recipe", "validate", str(_write(c.tmp / "r.yaml", "catalog: [unclosed\n"))],
        ["r.yaml", "not valid YAML"],
    ),
    "reversed-recipe-dates": (
        lambda c: ["recipe", "validate", str(c.make_recipe(search={"datetime": "2023-08-01/2023-06-01"}))],
        ["ends before it starts"],
    ),
}  # fmt: skip


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_error(
    case: str, make_recipe, mission_copy: Path, tmp_path: Path, request
) -> None:
    build, needles = CASES[case]
    args = build(Ctx(make_recipe, mission_copy, lambda: request.getfixturevalue("tiny_store"), tmp_path))
    res = run_cli(*args, timeout=90)
    assert_clean_error(res, *needles)
    last = res.err.strip().splitlines()[-1]
    assert last.startswith("orbitcube: error:"), res.err  # the message is one line, nothing after it


@pytest.mark.parametrize(
    "expression", ["sqrt(nir, red)", "abs(red, nir)", "exp(nir, red)", "log10(nir, red)"]
)
def test_extra_function_argument_never_overwrites_a_band(expression: str) -> None:
    red = np.full((2, 3), 0.25, "f4")
    ds = xr.Dataset({"red": (("y", "x"), red.copy()), "nir": (("y", "x"), np.full((2, 3), 0.5, "f4"))})
    with pytest.raises(ExpressionError, match="takes 1 argument, got 2"):
        band_math(ds, expression)
    np.testing.assert_array_equal(ds["red"].values, red)  # was numpy's out=: red overwritten in place
    np.testing.assert_array_equal(ds["nir"].values, 0.5)


def test_every_whitelisted_function_has_an_arity() -> None:
    assert set(ARITY) == set(FUNCTIONS)
    ds = xr.Dataset({"a": (("y", "x"), np.full((1, 2), 4.0, "f4"))})
    for name, n in ARITY.items():
        args = ", ".join(["a"] * n)
        assert band_math(ds, f"{name}({args})").shape == (1, 2)


def test_ctrl_c_prints_only_the_friendly_line(make_recipe, tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the whole process group: the CLI and its Dask workers. Only the friendly line
    may reach the user (no nanny/worker KeyboardInterrupt tracebacks)."""
    recipe = make_recipe(grid={"resolution": 4, "tile_shape": [16, 16]})  # 165 small tiles: long enough
    log = tmp_path / "cube-report" / "run.log"
    err_path = tmp_path / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orbitcube.pipeline.cli", "run", str(recipe)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group, as a terminal job is
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (log.exists() and "written" in log.read_text()):
                assert proc.poll() is None, err_path.read_text()
                time.sleep(0.1)
            os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
            code = proc.wait(timeout=90)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    time.sleep(1)  # anything the workers would still print
    text = err_path.read_text()
    assert code == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert "orbitcube: interrupted" in text.splitlines()[-1]
