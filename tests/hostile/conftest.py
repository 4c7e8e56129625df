"""Shared helpers of the hostile-input suite: run the CLI as a user would, and check what a user needs.

Every hostile test asserts one of: files untouched (:func:`tree_digest` before and after), nothing read outside
the allowed tree, no secret in any output (:data:`CANARY_SECRET`), a bounded exit, and a one-line
``orbitcube: error: ...`` message with no traceback (:func:`assert_clean_error`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: a secret planted in inputs; it must never appear in a stream, log file, store attribute or report
CANARY_SECRET = "CANARYsecret0000000000000000000000000000ZZ"


@dataclass(frozen=True)
class CliResult:
    """Exit code and captured streams of one ``orbitcube`` process."""

    code: int
    out: str
    err: str


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 120, env: dict | None = None) -> CliResult:
    """Run ``orbitcube ARGS`` in a fresh interpreter (this checkout's code first on the path), bounded in time:
    a hang fails the test with ``subprocess.TimeoutExpired`` instead of blocking the suite."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "orbitcube.pipeline.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_clean_error(result: CliResult, *needles: str) -> str:
    """The process failed with one ``orbitcube: error:`` line, no traceback, and the line names every needle.
    Returns the error line."""
    assert result.code != 0, f"expected a failure, got exit 0\nstdout: {result.out}\nstderr: {result.err}"
    assert "Traceback" not in result.err + result.out, result.err
    lines = [ln for ln in result.err.splitlines() if ln.startswith("orbitcube: error:")]
    assert len(lines) == 1, f"expected one 'orbitcube: error:' line in stderr:\n{result.err}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not named in {lines[0]!r}"
    return lines[0]


def tree_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file below ``root`` (relative path -> digest): compare before and after to prove a
    folder untouched."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def decoy(tmp_path: Path) -> Path:
    """A folder of a user's own files (text, binary, a nested folder) that nothing may change or delete."""
    root = tmp_path / "decoy"
    (root / "nested").mkdir(parents=True)
    (root / "notes.txt").write_text("a user's notes\n")
    (root / "data.bin").write_bytes(bytes(range(256)) * 16)
    (root / "nested" / "thesis.tex").write_text("\\documentclass{article}\n")
    return root


def assert_no_secret(*texts: str, secret: str = CANARY_SECRET) -> None:
    """No captured stream, log or file content contains ``secret``."""
    for t in texts:
        assert secret not in t, (
            f"secret leaked: ...{t[max(t.find(secret) - 200, 0) : t.find(secret) + 50]}..."
        )


# ----- a tiny simulated mission and recipes over it (crash, message and silent-miss cases) --------------------------
@pytest.fixture(scope="session")
def tiny_mission(tmp_path_factory: pytest.TempPathFactory):
    """Sentinel-2 only, 64 px tiles, 1-20 June 2023: 8 scenes over two UTM zones, no truth rasters (2 s)."""
    import datetime as dt

    from orbitcube.catalog.simulator import MissionConfig, simulate_mission

    cfg = MissionConfig(
        seed=3,
        tile_size=64,
        start=dt.date(2023, 6, 1),
        end=dt.date(2023, 6, 20),
        write_truth_reflectance=False,
        events=False,
    )
    return simulate_mission(cfg, tmp_path_factory.mktemp("tiny-mission"))


def tiny_recipe_doc(mission, output: Path | str, catalog: Path | str | None = None) -> dict:
    """NDVI over the whole AOI of ``mission`` at 20 m in 32 px tiles (2 x 2 tiles, 4 dates), one worker."""
    return {
        "name": "hostile",
        "catalog": {"source": str(catalog or mission.catalog_path)},
        "search": {
            "aoi": list(mission.config.aoi_bbox),
            "datetime": "2023-06-01/2023-06-20",
            "collections": ["sentinel-2-l2a-sim"],
        },
        "grid": {"crs": f"EPSG:{mission.config.truth_epsg}", "resolution": 20, "tile_shape": [32, 32]},
        "load": {"bands": ["red", "nir"]},
        "analytics": [{"op": "index", "index": "NDVI"}],
        "output": {"path": str(output)},
        "cluster": {"n_workers": 1, "threads_per_worker": 1, "max_tiles_in_flight": 2},
    }


@pytest.fixture
def make_recipe(tiny_mission, tmp_path: Path):
    """A function ``(name="recipe.yaml", catalog=None, **sections) -> Path``: writes :func:`tiny_recipe_doc`
    with each given section updated (dicts) or replaced (lists, e.g. ``analytics=[...]``) as YAML in tmp_path."""
    import yaml

    def make(name: str = "recipe.yaml", catalog: Path | None = None, **sections) -> Path:
        doc = tiny_recipe_doc(tiny_mission, tmp_path / "cube.zarr", catalog)
        for key, value in sections.items():
            doc[key] = {**doc[key], **value} if isinstance(value, dict) else value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return make


@pytest.fixture
def mission_copy(tiny_mission, tmp_path: Path) -> Path:
    """A copy of the tiny mission's folder that a test may damage; returns its catalog folder."""
    import shutil

    root = Path(tiny_mission.catalog_path).parent.parent
    shutil.copytree(root, tmp_path / "mission")
    return tmp_path / "mission" / Path(tiny_mission.catalog_path).parent.relative_to(root)


def item_json(catalog: Path, index: int = 0) -> Path:
    """The JSON file of the ``index``-th item (sorted by path) of a catalog folder."""
    files = sorted(p for p in catalog.rglob("*.json") if p.name not in ("catalog.json", "collection.json"))
    return files[index]
