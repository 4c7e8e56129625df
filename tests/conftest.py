"""Fixtures shared by every test: small simulated missions built once per session.

Missions are tiny (128 px tiles, a few weeks) so the whole suite stays fast; tests that need more make their own.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from catalog.simulator import Mission, MissionConfig, simulate_mission

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LANDSAT_REAL = SHARED_DATA / "landsat8-224-077-078"


@pytest.fixture(scope="session")
def mixed_mission(tmp_path_factory: pytest.TempPathFactory) -> Mission:
    """Sentinel-2 and Landsat over six weeks, 128 px Sentinel-2 tiles, with events and partial swaths."""
    cfg = MissionConfig(
        seed=7,
        tile_size=128,
        start=dt.date(2023, 6, 1),
        end=dt.date(2023, 7, 15),
        sensors=("sentinel-2", "landsat"),
    )
    return simulate_mission(cfg, tmp_path_factory.mktemp("mixed-mission"))


@pytest.fixture(scope="session")
def landsat_real_dir() -> Path:
    """The real Landsat 8 scenes of ../shared/data (two rows of one pass, B2/B3/B4)."""
    if not LANDSAT_REAL.is_dir():
        raise FileNotFoundError(f"{LANDSAT_REAL} is missing; the repository expects ../shared/data beside it")
    return LANDSAT_REAL


@pytest.fixture(autouse=True)
def _quiet_libraries() -> None:
    for name in ("distributed", "rasterio", "fsspec"):
        logging.getLogger(name).setLevel(logging.WARNING)


# ----- object-storage emulators on loopback (started here, stopped at the end of the session) ----------------------
REPO = Path(__file__).resolve().parents[1]
AZURITE = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
#: Azurite's well-known development account (public, documented by Microsoft; not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, proc, what: str, timeout: float = 60.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def _stop(proc) -> None:
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory):
    """A real Azurite blob service on 127.0.0.1 (installed by `make test` from npm into .cache/azurite).

    Yields storage options with the connection string of its development account."""
    import subprocess

    if not AZURITE.exists():
        raise FileNotFoundError(f"{AZURITE} is missing; run `make test` (it installs Azurite with npm)")
    port = _free_port()
    proc = subprocess.Popen(
        [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location",
         str(tmp_path_factory.mktemp("azurite")), "--silent", "--skipApiVersionCheck", "--loose"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_for(port, proc, "Azurite")
        cs = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        )
        yield {"connection_string": cs, "port": port}
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def moto_s3():
    """A real S3-compatible server (moto_server) on 127.0.0.1; yields storage options for it."""
    import subprocess
    import sys

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(port, proc, "moto_server")
        yield {"key": "testing-key", "secret": "testing-secret-0123", "endpoint_url": f"http://127.0.0.1:{port}"}  # fmt: skip
    finally:
        _stop(proc)
