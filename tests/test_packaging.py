"""Packaging promises: environment.yml matches pyproject, the CLI answers --help/--version, errors are clean,
every module says what is public (__all__) and none is over 600 lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

import orbitcube
from orbitcube import catalog, pipeline
from orbitcube.pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    name = re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].strip().lower()
    return name.replace("_", "-")


def test_environment_yml_lists_the_runtime_dependencies_of_pyproject() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    expected = set()
    for d in deps:
        expected.add(_name(d))
        if d.startswith("dask[distributed]"):
            expected.add("distributed")
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    assert "conda-forge" in env["channels"]
    assert conda == expected, (
        f"only in pyproject: {expected - conda}; only in environment.yml: {conda - expected}"
    )


def test_public_names_resolve() -> None:
    for pkg in (orbitcube, catalog, pipeline):
        missing = []
        for name in pkg.__all__:
            try:
                getattr(pkg, name)
            except (ImportError, AttributeError) as exc:
                missing.append(f"{name}: {exc}")
        assert not missing, f"{pkg.__name__} declares names it cannot import: {missing}"


def test_cli_version_and_help(capsys) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "orbitcube.pipeline.cli", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"orbitcube {catalog.__version__}"
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "simulate", "catalog", "recipe", "run", "export"):
        assert command in out


def test_cli_prints_orbitcube_errors_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orbitcube.pipeline.cli",
            "simulate",
            "--out",
            str(tmp_path / "x"),
            "--tile-size",
            "7",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "tile_size=7" in proc.stderr and "even" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_no_public_name_is_also_a_submodule() -> None:
    """``from orbitcube.catalog import ingest`` must mean one thing whatever was imported before."""
    import pkgutil

    from orbitcube.pipeline import analytics

    for pkg in (orbitcube, catalog, pipeline, analytics):
        modules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
        assert not modules & set(pkg.__all__), f"{pkg.__name__}: {modules & set(pkg.__all__)}"


def test_one_import_name_and_typed() -> None:
    """The public API is ``import orbitcube as oc``; the package ships py.typed; no top-level catalog/pipeline."""
    import importlib.util

    assert orbitcube.search is catalog.search and orbitcube.load_cube is pipeline.load_cube
    assert orbitcube.run_recipe is pipeline.run_recipe
    assert (ROOT / "orbitcube" / "py.typed").is_file()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util as u; print(u.find_spec('catalog'), u.find_spec('pipeline'))",
        ],
        capture_output=True,
        text=True,
        cwd="/",
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.stdout.strip() == "None None", proc.stdout
    assert importlib.util.find_spec("orbitcube.catalog").origin == str(ROOT / "catalog" / "__init__.py")


def _layout_names() -> set[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    modules = re.findall(r"(?<![\w/.])([a-z_][a-z0-9_]*\.py)\b", block)
    folders = re.findall(r"^\s*([a-z_]+/)\s{2,}", block, flags=re.M)
    return set(modules) | set(folders)


def test_readme_layout_lists_every_module_and_only_modules_that_exist() -> None:
    """The README's layout section matches the code: every module of catalog/ and pipeline/ (and every
    subpackage) is named there, and every name there exists."""
    names = _layout_names()
    code = set()
    for pkg in ("catalog", "pipeline"):
        for f in (ROOT / pkg).rglob("*.py"):
            rel = f.relative_to(ROOT / pkg)
            if f.name != "__init__.py" and len(rel.parts) == 1:
                code.add(f.name)
            elif len(rel.parts) == 2 and f.name == "__init__.py":
                code.add(rel.parts[0] + "/")
    nested = {f.name for pkg in ("catalog", "pipeline") for f in (ROOT / pkg).glob("*/*.py")}
    top = {
        "catalog/",
        "pipeline/",
        "orbitcube/",
        "notebooks/",
        "tests/",
        "benchmarks/",
        "conftest.py",
    } | nested
    assert code - names == set(), f"modules missing from the README layout: {sorted(code - names)}"
    assert names - code - top == set(), (
        f"README layout names what does not exist: {sorted(names - code - top)}"
    )


#: the most lines one module of catalog/ or pipeline/ may have (project guide)
MAX_MODULE_LINES = 600


def _source_modules() -> list[tuple[Path, str]]:
    """Every module file of catalog/ and pipeline/ with its import name (``orbitcube.catalog.store``, ...)."""
    out = []
    for folder in ("catalog", "pipeline"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(("orbitcube", *parts)).removesuffix(".__init__")
            out.append((path, name))
    return out


def test_every_module_declares_its_public_names() -> None:
    """Each module of catalog/ and pipeline/ says what is public (``__all__``), and every name listed resolves."""
    import importlib

    missing, broken = [], []
    for _, name in _source_modules():
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None)
        if names is None:
            missing.append(name)
            continue
        assert len(set(names)) == len(names), f"{name}.__all__ lists a name twice"
        for n in names:
            try:
                getattr(module, n)
            except (ImportError, AttributeError) as exc:
                broken.append(f"{name}.{n}: {exc}")
    assert not missing, f"modules without __all__: {missing}"
    assert not broken, f"names in __all__ that do not resolve: {broken}"


def test_no_module_is_over_600_lines() -> None:
    too_long = {
        str(path.relative_to(ROOT)): n
        for path, _ in _source_modules()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them by what they hold): {too_long}"
