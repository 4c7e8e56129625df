"""Object storage: ``az://``, ``s3://``, ``gs://`` and ``https://`` hrefs and outputs beside local paths.

Reads of rasters go through GDAL's virtual file systems (:func:`to_gdal_path`, with the settings that make COG
range reads fast and the credentials in :func:`gdal_options`); Zarr stores and other files go through fsspec
(:func:`filesystem`, :func:`fsspec_options`: adlfs for Azure Blob Storage, s3fs for S3-compatible stores).

Credentials come from the environment (GDAL and the SDKs read ``AZURE_STORAGE_CONNECTION_STRING``,
``AWS_ACCESS_KEY_ID`` ...) or from *storage options*, a small mapping a recipe or caller passes::

    {"connection_string": "${AZURE_STORAGE_CONNECTION_STRING}"}                  # Azure (or account_name/_key,
                                                                                 #  sas_token)
    {"key": "...", "secret": "${AWS_SECRET_ACCESS_KEY}", "endpoint_url": "http://127.0.0.1:9000",
     "region": "us-east-1"}                                                      # S3 / S3-compatible

``${NAME}`` values are taken from the environment, so secrets need not be written into recipes. Secrets never
reach logs or stored metadata: :func:`redact` strips query strings (SAS tokens, signatures), user info and
account keys from any text before it is logged or recorded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from catalog.errors import CatalogError

_VSI = {"az": "/vsiaz/", "azure": "/vsiaz/", "abfs": "/vsiaz/", "s3": "/vsis3/", "gs": "/vsigs/"}
FAST_COG_READS: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_VERSION": "2TLS",
    "VSI_CACHE": "TRUE",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.TIFF,.json,.xml",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
}
_SECRET_KEYS = re.compile(r"(?i)(AccountKey|SharedAccessSignature|sig|secret|password|token)=([^;&\s]+)")


def scheme(href: str) -> str:
    """The URL scheme of ``href`` ("" for local paths)."""
    return urlsplit(str(href)).scheme.lower() if "://" in str(href) else ""


def is_remote(href: str) -> bool:
    """True for object-store and HTTP(S) hrefs, False for local paths and ``file://``."""
    return scheme(href) not in ("", "file")


def to_gdal_path(href: str) -> str:
    """What GDAL opens for ``href``: ``az://c/k`` -> ``/vsiaz/c/k``, ``s3://b/k`` -> ``/vsis3/b/k``,
    ``gs://`` -> ``/vsigs/``, ``https://...`` -> ``/vsicurl/https://...``; local paths unchanged."""
    s = scheme(href)
    if s in ("", "file"):
        return str(href).removeprefix("file://")
    if s in _VSI:
        return _VSI[s] + str(href).split("://", 1)[1]
    if s in ("http", "https"):
        return f"/vsicurl/{href}"
    raise CatalogError(
        f"unsupported URL scheme {s!r} in {redact(href)}; use az://, s3://, gs://, https:// or a path"
    )


def _expand(value: Any) -> Any:
    """``${NAME}`` -> os.environ["NAME"] (CatalogError naming NAME when unset)."""
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise CatalogError(
                f"storage option refers to ${{{name}}}, but the environment variable {name} is unset"
            )
        return os.environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, value)


def resolve_options(storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Storage options with ``${ENV}`` references expanded."""
    return {k: _expand(v) for k, v in (storage_options or {}).items()}


def _parse_connection_string(cs: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in cs.split(";") if "=" in part)


def gdal_options(storage_options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """GDAL configuration options for fast COG reads plus the credentials in ``storage_options`` (Azure:
    ``connection_string`` | ``account_name`` + ``account_key`` | ``sas_token``; S3: ``key``, ``secret``,
    ``endpoint_url``, ``region``). Without options GDAL reads the usual environment variables itself."""
    o = resolve_options(storage_options)
    env = dict(FAST_COG_READS)
    if o.get("connection_string"):
        env["AZURE_STORAGE_CONNECTION_STRING"] = o["connection_string"]
    if o.get("account_name"):
        env["AZURE_STORAGE_ACCOUNT"] = o["account_name"]
    if o.get("account_key"):
        env["AZURE_STORAGE_ACCESS_KEY"] = o["account_key"]
    if o.get("sas_token"):
        env["AZURE_STORAGE_SAS_TOKEN"] = o["sas_token"].lstrip("?")
    if o.get("key"):
        env["AWS_ACCESS_KEY_ID"] = o["key"]
    if o.get("secret"):
        env["AWS_SECRET_ACCESS_KEY"] = o["secret"]
    if o.get("region"):
        env["AWS_REGION"] = o["region"]
    endpoint = o.get("endpoint_url") or (o.get("client_kwargs") or {}).get("endpoint_url")
    if endpoint:
        p = urlsplit(endpoint)
        env["AWS_S3_ENDPOINT"] = p.netloc
        env["AWS_HTTPS"] = "YES" if p.scheme == "https" else "NO"
        env["AWS_VIRTUAL_HOSTING"] = "FALSE"
    return env


def fsspec_options(url: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments for the fsspec filesystem of ``url`` (adlfs for az://, s3fs for s3://)."""
    o = resolve_options(storage_options)
    s = scheme(url)
    if s in ("az", "azure", "abfs"):
        keys = ("connection_string", "account_name", "account_key", "sas_token", "anon")
        return {k: o[k] for k in keys if k in o}
    if s == "s3":
        out: dict[str, Any] = {k: o[k] for k in ("key", "secret", "anon") if k in o}
        client = dict(o.get("client_kwargs") or {})
        if o.get("endpoint_url"):
            client["endpoint_url"] = o["endpoint_url"]
        if o.get("region"):
            client["region_name"] = o["region"]
        if client:
            out["client_kwargs"] = client
        return out
    return dict(o)


def filesystem(url: str, storage_options: Mapping[str, Any] | None = None):
    """The fsspec filesystem for ``url`` (local, az://, s3://, ...), configured from ``storage_options``."""
    import fsspec

    try:
        return fsspec.filesystem(scheme(url) or "file", **fsspec_options(url, storage_options))
    except (ImportError, ValueError) as exc:
        raise CatalogError(f"cannot open a filesystem for {redact(url)}: {exc}") from exc


def redact(text: Any) -> str:
    """``text`` with secrets removed: URL query strings and user info, ``AccountKey=``/``sig=``/``secret=`` values."""
    s = str(text)

    def strip_url(m: re.Match) -> str:
        p = urlsplit(m.group(0))
        host = p.hostname or ""
        if p.port:
            host = f"{host}:{p.port}"
        return urlunsplit((p.scheme, host, p.path, "", ""))

    s = re.sub(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+", strip_url, s)
    return _SECRET_KEYS.sub(lambda m: f"{m.group(1)}=***", s)
