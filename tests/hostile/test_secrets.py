"""A planted secret (:data:`CANARY_SECRET`) never appears in a stream, log file, store attribute, report or
error message: signed URLs of assets, literal secrets in recipes, credentials in URLs, SDK debug logs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml

from orbitcube.catalog.simulator import Mission, MissionConfig, simulate_mission
from orbitcube.catalog.storage import redact
from orbitcube.pipeline.reader import AssetSpec, SceneSpec
from tests.catalog.stac_server import serve
from tests.hostile.conftest import CANARY_SECRET, assert_clean_error, assert_no_secret, run_cli

SIGNED = f"sv=2023-01-03&se=2030-01-01&sig={CANARY_SECRET}&X-Amz-Signature={CANARY_SECRET}"


@pytest.fixture(scope="module")
def mission(tmp_path_factory: pytest.TempPathFactory) -> Mission:
    """A tiny Sentinel-2 mission (64 px tiles, ten days)."""
    cfg = MissionConfig(seed=4, tile_size=64, start=dt.date(2023, 5, 1), end=dt.date(2023, 5, 10))
    return simulate_mission(cfg, tmp_path_factory.mktemp("secret-mission"))


def _recipe(source: Path, out: Path, **extra) -> dict:
    return {
        "catalog": {"source": str(source), **extra.pop("catalog", {})},
        "search": {"datetime": "2023-05-01/2023-05-10"},
        "grid": {"crs": "EPSG:32632", "resolution": 40, "tile_shape": [64, 64]},
        "load": {"bands": ["red"], "mask": None},
        "output": {"path": str(out)},
        "cluster": {"n_workers": 1, "threads_per_worker": 1, **extra.pop("cluster", {})},
        **extra,
    }


@contextmanager
def failing_server() -> Iterator[str]:
    """An HTTP server on loopback that fails every request: 503 (a transient error: readers retry and log it)
    for paths starting ``/retry``, else 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_error(503 if self.path.startswith("/retry") else 404)

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args) -> None:
            pass

    with serve(Handler) as url:
        yield url


def _signed_catalog(mission: Mission, dest: Path, base: str) -> Path:
    """The mission's catalog with every asset href a signed URL on ``base``."""
    root = dest / "cat"
    shutil.copytree(mission.catalog_path.parent, root)
    for f in root.glob("*/*/*.json"):
        doc = json.loads(f.read_text())
        for a in doc["assets"].values():
            a["href"] = f"{base}/{f.parent.name}/{Path(a['href']).name}?{SIGNED}"
        f.write_text(json.dumps(doc))
    return root


def _texts(folder: Path) -> list[str]:
    return [p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file()]


def test_signed_urls_never_reach_stderr_logs_or_store_from_workers(mission, tmp_path) -> None:
    """A run on a LocalCluster of worker processes whose reads fail with a transient error (retried, then the
    task fails: Dask logs the task and its arguments on the worker): at -q, default and -vv, the secret is in no
    stream, log file or store file."""
    with failing_server() as server:
        for n, flags in enumerate((["-q"], [], ["-vv"])):
            base = f"{server}/retry" if flags == ["-vv"] else server  # one run through the retries (slow)
            root = _signed_catalog(mission, tmp_path / str(n), base)
            out = tmp_path / f"cube{n}.zarr"
            doc = _recipe(
                root,
                out,
                catalog={"allow": [server]},  # a loopback origin: only ever read when named
                cluster={"gdal_env": {"GDAL_HTTP_MAX_RETRY": "0", "AZURE_STORAGE_ACCESS_KEY": CANARY_SECRET}},
            )
            recipe = tmp_path / "recipe.yaml"
            recipe.write_text(yaml.safe_dump(doc))
            res = run_cli(*flags, "run", str(recipe), timeout=180)
            # (Dask's own "Compute Failed" record of the worker precedes the error line: not asserted here)
            errors = [ln for ln in res.err.splitlines() if ln.startswith("orbitcube: error:")]
            assert res.code != 0 and len(errors) == 1 and "cannot read" in errors[0], res.err
            assert (
                "Compute Failed" in res.err
            )  # the worker's log of the failed task (with its arguments) is here
            assert_no_secret(res.out, res.err)
            if flags == ["-vv"]:
                assert "retry 1 of" in res.err  # the reader's retry warning, logged on the worker
            for folder in (out, out.with_name(out.stem + "-report")):
                if folder.exists():
                    assert_no_secret(*_texts(folder))


def test_asset_spec_reprs_and_reader_messages_are_redacted() -> None:
    a = AssetSpec(f"/vsicurl/https://host/x.tif?{SIGNED}", 0)
    scene = SceneSpec("it", (a,), quality=a)
    assert_no_secret(repr(a), repr(scene), str(scene))
    assert "https://host/x.tif" in repr(a)


def test_recipe_validate_never_echoes_storage_values(tmp_path) -> None:
    cases = {
        "misspelt": {"s3": {"key": "AKIA", "secrett": CANARY_SECRET}},
        "numeric": {
            "s3": {"secret": 12345678901234567890, "endpoint_url": 5},
            "gs": "not-a-mapping " + CANARY_SECRET,
        },
    }
    for name, storage in cases.items():
        doc = {"catalog": {"source": "cat"}, "output": {"path": "o.zarr"}, "storage": storage}
        if name == "numeric":
            doc["cluster"] = {"gdal_env": {"AZURE_STORAGE_ACCESS_KEY": 98765432109876543210}}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        res = run_cli("recipe", "validate", str(path))
        assert_clean_error(res)
        assert "storage." in res.err
        assert_no_secret(res.out, res.err)
        assert_no_secret(res.err, secret="12345678901234567890")
        assert_no_secret(res.err, secret="98765432109876543210")
        if name == "misspelt":
            assert "secrett" in res.err  # the key is named, not its value


def test_publish_errors_never_show_userinfo(mission, tmp_path) -> None:
    for url in (f"s3://AKIAEXAMPLE:{CANARY_SECRET}@bucket/prefix", f"az://user:{CANARY_SECRET}@container/x"):
        res = run_cli("catalog", "publish", str(mission.catalog_path.parent), url)
        assert_clean_error(res, "credentials")
        assert_no_secret(res.out, res.err)


def test_redact_covers_userinfo_without_scheme_and_unquoted_values() -> None:
    for text in (
        f'Invalid bucket name "AKIA:{CANARY_SECRET}@bucket"',
        f"s3://k:{CANARY_SECRET}@b/x",
        f"https://h/x.tif?{SIGNED}",
    ):
        assert_no_secret(redact(text))
    assert_no_secret(redact("{'secret': 12345678901234567890}"), secret="12345678901234567890")


def test_the_log_filter_redacts_messages_arguments_and_tracebacks(tmp_path) -> None:
    from orbitcube.catalog.storage import RedactingFilter

    path = tmp_path / "log.txt"
    handler = logging.FileHandler(path)
    handler.addFilter(RedactingFilter())
    lg = logging.getLogger("some.library")
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    try:
        lg.info("GET %s", f"https://acct.blob.core.windows.net/c/x.tif?{SIGNED}")
        try:
            raise OSError(f"cannot open s3://AKIA:{CANARY_SECRET}@bucket/x")
        except OSError:
            lg.exception("failed")
    finally:
        lg.removeHandler(handler)
        handler.close()
    text = path.read_text()
    assert "GET https://acct.blob.core.windows.net/c/x.tif" in text and "OSError" in text
    assert_no_secret(text)


def test_library_loggers_stay_at_warning_unless_raised(tmp_path) -> None:
    """-vv raises orbitcube's loggers, not the SDKs' (which log headers and key ids); --debug-libs does."""
    probe = (
        "import logging, sys; from orbitcube.pipeline.cli import _configure_logging as c; "
        "c(2, False, '--debug-libs' in sys.argv); "
        "print([logging.getLogger(n).getEffectiveLevel() for n in ('botocore', 'azure', 's3fs', 'orbitcube.pipeline')])"
    )
    import subprocess
    import sys

    from tests.hostile.conftest import REPO

    def levels(*args: str) -> list[int]:
        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
        out = subprocess.run(
            [sys.executable, "-c", probe, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        return json.loads(out.stdout.strip())

    assert levels() == [logging.WARNING] * 3 + [logging.DEBUG]
    assert levels("--debug-libs") == [logging.DEBUG] * 4


def test_literal_secrets_of_a_recipe_reach_no_store_report_or_log(mission, tmp_path) -> None:
    """A successful -vv run whose recipe carries literal secrets (storage options, cluster.gdal_env): none in
    the streams, the run log, the report or the store's attributes and files."""
    out = tmp_path / "cube.zarr"
    doc = _recipe(
        mission.catalog_path,
        out,
        cluster={"gdal_env": {"AZURE_STORAGE_ACCESS_KEY": CANARY_SECRET}},
        storage={"s3": {"key": "AKIAEXAMPLE", "secret": CANARY_SECRET}, "az": {"sas_token": f"?{SIGNED}"}},
    )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(doc))
    res = run_cli("-vv", "run", str(recipe), timeout=180)
    assert res.code == 0, res.err
    report = out.with_name("cube-report")
    assert (report / "index.html").is_file() and (report / "run.log").is_file()
    assert_no_secret(res.out, res.err, *_texts(report), *_texts(out))


def test_client_side_read_errors_never_show_the_signed_url(mission, tmp_path) -> None:
    """Items without projection metadata have their headers read on the client while planning: a failure there
    (a 404 from a signed URL) is one error line without the signature."""
    with failing_server() as server:
        root = _signed_catalog(mission, tmp_path, server)
        for f in root.glob("*/*/*.json"):
            doc = json.loads(f.read_text())
            for d in (doc["properties"], *doc["assets"].values()):
                for k in [k for k in d if k.startswith("proj:")]:
                    del d[k]
            f.write_text(json.dumps(doc))
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(yaml.safe_dump(_recipe(root, tmp_path / "o.zarr", catalog={"allow": [server]})))
        res = run_cli("run", str(recipe), "--dry-run")
    assert_clean_error(res, "cannot open")
    assert_no_secret(res.out, res.err)
