"""Fixtures shared by every test: small simulated missions built once per session.

Missions are tiny (128 px tiles, a few weeks) so the whole suite stays fast; tests that need more make their own.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from orbitcube.catalog.simulator import Mission, MissionConfig, simulate_mission

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


@dataclass(frozen=True)
class Emulator:
    """A storage emulator running on 127.0.0.1: its port, the storage options that reach it (see
    :mod:`orbitcube.catalog.storage`) and the secret in them (tests grep outputs for it)."""

    name: str
    port: int
    options: dict
    secret: str

    def via(self, port: int, **changes: str) -> dict:
        """The storage options with the endpoint moved to ``port`` (a proxy in front of the emulator) and
        ``changes`` applied (e.g. a wrong key)."""
        old = f"127.0.0.1:{self.port}"
        out = {
            k: (v.replace(old, f"127.0.0.1:{port}") if isinstance(v, str) else v)
            for k, v in self.options.items()
        }
        out.update(changes)
        return out


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
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def _stop(proc) -> None:
    """SIGTERM, then SIGKILL after 2 s (Azurite's graceful shutdown waits for idle keep-alive connections of the
    test process, which can take minutes; its data lives in a temporary folder anyway)."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def start_azurite(location: Path) -> tuple[object, int]:
    """Start an Azurite blob service on a free loopback port with its data in ``location``: (process, port)."""
    import subprocess

    if not AZURITE.exists():
        raise FileNotFoundError(f"{AZURITE} is missing; run `make test` (it installs Azurite with npm)")
    port = _free_port()
    with open(location / "azurite.log", "ab") as log:  # its own messages, if it fails to start
        proc = subprocess.Popen(
            [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location),
             "--silent", "--skipApiVersionCheck", "--loose"],
            stdout=log, stderr=log,
        )  # fmt: skip
    try:
        _wait_for(port, proc, "Azurite")
    except BaseException:
        _stop(proc)
        raise
    return proc, port


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory):
    """A real Azurite blob service on 127.0.0.1 (installed by `make test` from npm into .cache/azurite); its
    options carry the connection string of the development account (shared-key signed requests)."""
    proc, port = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        cs = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        )
        yield Emulator("azurite", port, {"connection_string": cs}, AZURITE_KEY)
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def moto_s3():
    """A real S3-compatible server (moto_server) on 127.0.0.1 that checks credentials: IAM authentication is on
    after the first three requests, which create the user, its access key and its policy."""
    import json
    import os
    import subprocess
    import sys

    import boto3

    port = _free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        env.pop(k, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        _wait_for(port, proc, "moto_server")
        endpoint = f"http://127.0.0.1:{port}"
        iam = boto3.client(
            "iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )  # fmt: skip
        iam.create_user(UserName="orbitcube-tests")
        key = iam.create_access_key(UserName="orbitcube-tests")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="orbitcube-tests", PolicyName="all", PolicyDocument=json.dumps(policy))
        options = {
            "key": key["AccessKeyId"],
            "secret": key["SecretAccessKey"],
            "endpoint_url": endpoint,
        }
        yield Emulator("moto", port, options, key["SecretAccessKey"])
    finally:
        _stop(proc)


GATEWAY_CONFIG = """
import os, sys
bindir = os.path.dirname(sys.executable)
c.Gateway.address = "127.0.0.1:{api}"
c.Proxy.address = "127.0.0.1:{http}"
c.Gateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.Gateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = os.environ["OC_TEST_GATEWAY_PASSWORD"]
c.LocalBackend.default_host = "127.0.0.1"
c.ClusterConfig.scheduler_cmd = [os.path.join(bindir, "dask"), "scheduler"]
c.ClusterConfig.worker_cmd = [os.path.join(bindir, "dask"), "worker"]
c.ClusterConfig.worker_memory = "1 G"
"""


@dataclass(frozen=True)
class GatewayServer:
    """A dask-gateway-server on 127.0.0.1: its ``gateway://`` URL, HTTP port and the basic-auth password."""

    url: str
    port: int
    secret: str

    def clusters(self) -> list:
        """The clusters the gateway is running now (as the test user)."""
        from dask_gateway import Gateway
        from dask_gateway.auth import BasicAuth

        from orbitcube.pipeline.cluster import close_gateway

        gw = Gateway(f"http://127.0.0.1:{self.port}", auth=BasicAuth("orbitcube", self.secret))
        try:
            return gw.list_clusters()
        finally:
            close_gateway(gw)


def _wait_for_gateway_api(port: int, proc, timeout: float = 60.0) -> None:
    """Until the gateway's proxy routes its API (it listens before it has fetched its routing table, and answers
    404 meanwhile): GET /api/health is 200."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dask-gateway-server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the Dask Gateway on 127.0.0.1:{port} did not serve /api/health within {timeout} s")


@pytest.fixture(scope="session")
def dask_gateway(tmp_path_factory: pytest.TempPathFactory):
    """A real Dask Gateway (dask-gateway-server, local process backend: each cluster is a `dask scheduler` and
    `dask worker` processes of this venv) on loopback, with basic auth; stopped at the end of the session."""
    import os
    import subprocess
    import sys

    where = tmp_path_factory.mktemp("dask-gateway")
    api, http = _free_port(), _free_port()  # the proxy serves HTTP and the schedulers' TLS on one port
    (where / "config.py").write_text(GATEWAY_CONFIG.format(api=api, http=http))
    secret = "gw-CANARY-8c1f0d2e5b"
    env = {**os.environ, "OC_TEST_GATEWAY_PASSWORD": secret, "PYTHONPATH": str(REPO)}
    server = Path(sys.executable).parent / "dask-gateway-server"
    with open(where / "gateway.log", "ab") as log:
        proc = subprocess.Popen([str(server), "-f", "config.py"], cwd=where, env=env, stdout=log, stderr=log)
    try:
        _wait_for(http, proc, "dask-gateway-server")
        _wait_for_gateway_api(http, proc)
        yield GatewayServer(f"gateway://127.0.0.1:{http}", http, secret)
    finally:
        proc.terminate()  # stops the clusters it started, then exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def pytest_sessionfinish(session, exitstatus) -> None:
    """Close the object-store file systems the tests opened while fsspec's loop still runs (else s3fs/adlfs print
    "Loop is not running" tracebacks at interpreter exit)."""
    from orbitcube.pipeline.cli import close_filesystems

    close_filesystems()
