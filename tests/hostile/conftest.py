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
        [sys.executable, "-m", "pipeline.cli", *args],
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
