"""Object storage: ``az://``, ``s3://``, ``gs://`` and ``https://`` hrefs and outputs beside local paths.

Reads of rasters go through GDAL's virtual file systems (:func:`to_gdal_path`, with the settings that make COG
range reads fast and the credentials in :func:`gdal_options`); Zarr stores and other files go through fsspec
(:func:`filesystem`, :func:`fsspec_options`: adlfs for Azure Blob Storage, s3fs for S3-compatible stores).

Credentials come from the environment (``AZURE_STORAGE_CONNECTION_STRING``, ``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL`` ...) or from *storage options*, a small mapping a recipe or caller passes::

    {"connection_string": "${AZURE_STORAGE_CONNECTION_STRING}"}                  # Azure (or account_name/_key,
                                                                                 #  sas_token)
    {"key": "...", "secret": "${AWS_SECRET_ACCESS_KEY}", "endpoint_url": "http://127.0.0.1:9000",
     "region": "us-east-1"}                                                      # S3 / S3-compatible

``${NAME}`` values are taken from the environment, so secrets need not be written into recipes. Secrets never
reach logs or stored metadata: :func:`redact` strips query strings (SAS tokens, signatures), user info and
account keys from any text before it is logged or recorded, and the credential values :func:`gdal_options`
returns are :class:`Secret` strings whose ``repr`` is ``'***'`` (they travel inside Dask graphs, whose reprs
distributed logs when a task fails).

Errors: :func:`storage_error` turns what fsspec, the cloud SDKs or GDAL raise into an
:class:`~orbitcube.catalog.errors.OrbitcubeError` naming the URL (without secrets) and the fix; :func:`retry` repeats a call
a bounded number of times when the error is transient (connection reset or refused, timeouts, HTTP 429/5xx).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import rasterio.session

from orbitcube.catalog.defaults import FAST_COG_READS
from orbitcube.catalog.errors import CatalogError

__all__ = [
    "AZURE_SCHEMES",
    "GdalCredentials",
    "RedactingFilter",
    "SECRET_GDAL_KEYS",
    "Secret",
    "StorageURL",
    "filesystem",
    "from_gdal_path",
    "fsspec_options",
    "gdal_options",
    "is_remote",
    "parse_url",
    "redact",
    "resolve_options",
    "scheme",
    "stac_io",
    "to_gdal_path",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

_VSI = {"az": "/vsiaz/", "azure": "/vsiaz/", "abfs": "/vsiaz/", "s3": "/vsis3/", "gs": "/vsigs/"}
_FROM_VSI = {"/vsiaz/": "az://", "/vsis3/": "s3://", "/vsigs/": "gs://"}
AZURE_SCHEMES = ("az", "azure", "abfs")

#: GDAL configuration keys whose values are credentials (wrapped in :class:`Secret`)
SECRET_GDAL_KEYS = frozenset(
    {
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_SAS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "GS_ACCESS_KEY_ID",
        "GS_SECRET_ACCESS_KEY",
        "GS_OAUTH2_REFRESH_TOKEN",
    }
)
#: environment variables GDAL understands, copied into :func:`gdal_options` so that workers on other machines get
#: them too (per family, only when the storage options name no credentials of that family)
_ENV_AZURE = (
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_SAS",
    "AZURE_NO_SIGN_REQUEST",
)
_ENV_AWS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_S3_ENDPOINT",
    "AWS_HTTPS",
    "AWS_VIRTUAL_HOSTING",
    "AWS_NO_SIGN_REQUEST",
    "AWS_REQUEST_PAYER",
)
_AZURE_OPTS = ("connection_string", "account_name", "account_key", "sas_token")
_AWS_OPTS = ("key", "secret", "token", "endpoint_url", "region", "client_kwargs")
#: storage option -> the GDAL configuration option that carries it (sas_token, anon, endpoint_url: see gdal_options)
_GDAL_NAMES = {
    "connection_string": "AZURE_STORAGE_CONNECTION_STRING",
    "account_name": "AZURE_STORAGE_ACCOUNT",
    "account_key": "AZURE_STORAGE_ACCESS_KEY",
    "key": "AWS_ACCESS_KEY_ID",
    "secret": "AWS_SECRET_ACCESS_KEY",
    "token": "AWS_SESSION_TOKEN",
    "region": "AWS_REGION",
}
#: s3fs passes ``config_kwargs`` to botocore's Config (e.g. {"retries": {"max_attempts": 3}})

_SECRET_KV = re.compile(
    r"(?i)\b(AccountKey|SharedAccessSignature|SharedAccessKey|sig|se|skoid|sktid|X-Amz-Signature|"
    r"X-Amz-Credential|X-Amz-Security-Token|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|AZURE_STORAGE_ACCESS_KEY|"
    r"AZURE_STORAGE_SAS_TOKEN|AZURE_STORAGE_CONNECTION_STRING|secret|password|passwd|pwd|token)=([^;&\s'\"]+)"
)
_SECRET_FIELD = re.compile(
    r"(?i)([\"']?(?:account_key|secret|secret_access_key|aws_secret_access_key|sas_token|connection_string|"
    r"password|token|session_token|credential|credentials)[\"']?\s*[:=]\s*)([\"'])(?:(?!\2).)*\2"
)
_SECRET_BARE = re.compile(  # the same fields of a JSON or Python repr with an unquoted value (a number)
    r"(?i)([\"'](?:account_key|secret|secret_access_key|aws_secret_access_key|sas_token|connection_string|"
    r"password|token|session_token|credential|credentials)[\"']\s*:\s*)(?![\"'*])([^\s,;}\])]+)"
)
#: ``user:password@`` left without its scheme (SDK messages quote "KEY:SECRET@bucket" as a bucket name)
_USERINFO = re.compile(r"(?<![\w.%+~-])[\w.%+~-]+:[^\s/'\"@]+@(?=[\w\[])")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


class Secret(str):
    """A credential: a ``str`` (GDAL and fsspec get the value) whose ``repr`` is ``'***'``, so that logged reprs of
    Dask tasks, specs or option dicts never show it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


#: credentials rasterio.Env refuses as plain options ("AWS credentials are handled exclusively by boto3"); they
#: reach GDAL through :class:`GdalCredentials`, passed as ``session=``
_SESSION_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class GdalCredentials(rasterio.session.Session):
    """A rasterio session that hands fixed credentials (GDAL configuration options such as
    ``AWS_SECRET_ACCESS_KEY``) to GDAL: ``rasterio.Env(session=GdalCredentials({...}))``.

    Small, picklable, hashable (it travels inside Dask graphs), and its ``repr`` names the keys only."""

    def __init__(self, options: Mapping[str, str]) -> None:
        self._items = tuple(sorted((str(k), Secret(v)) for k, v in options.items()))

    @classmethod
    def hascreds(cls, config: Mapping[str, Any]) -> bool:
        return all(k in config for k in _SESSION_KEYS[:2])

    @property
    def credentials(self) -> dict[str, str]:
        return dict(self._items)

    def get_credential_options(self) -> dict[str, str]:
        return {k: str(v) for k, v in self._items}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GdalCredentials) and other._items == self._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __lt__(self, other: object) -> bool:  # so that sorted(options.items()) never fails
        return repr(self) < repr(other)

    def __reduce__(self):
        return (GdalCredentials, (dict(self._items),))

    def __dask_tokenize__(self):
        return ("GdalCredentials", self._items)

    def __repr__(self) -> str:
        return f"GdalCredentials({', '.join(k for k, _ in self._items)})"


@dataclass(frozen=True)
class StorageURL:
    """A parsed href: ``scheme`` ("" for local paths), ``bucket`` (container/bucket/host; "" locally), ``key``
    (object key, or the local path)."""

    scheme: str
    bucket: str
    key: str

    @property
    def is_remote(self) -> bool:
        return self.scheme not in ("", "file")


def scheme(href: str) -> str:
    """The URL scheme of ``href`` in lower case ("" for local paths)."""
    return urlsplit(str(href)).scheme.lower() if "://" in str(href) else ""


def is_remote(href: str) -> bool:
    """True for object-store and HTTP(S) hrefs, False for local paths and ``file://``."""
    return scheme(href) not in ("", "file")


def parse_url(href: str) -> StorageURL:
    """Split ``href`` (``az://container/key``, ``s3://bucket/key``, ``https://host/path``, ``file:///p``, ``/p``)."""
    s = scheme(href)
    if s in ("", "file"):
        return StorageURL(s, "", str(href).removeprefix("file://"))
    rest = str(href).split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return StorageURL(s, bucket, key.split("?", 1)[0] if s in _VSI else key)


def to_gdal_path(href: str) -> str:
    """What GDAL opens for ``href``: ``az://c/k`` -> ``/vsiaz/c/k``, ``s3://b/k`` -> ``/vsis3/b/k``,
    ``gs://`` -> ``/vsigs/``, ``https://...`` -> ``/vsicurl/https://...``; local paths and ``/vsi...`` unchanged."""
    s = scheme(href)
    if s in ("", "file"):
        return str(href).removeprefix("file://")
    if s in _VSI:
        return _VSI[s] + str(href).split("://", 1)[1]
    if s in ("http", "https"):
        return f"/vsicurl/{href}"
    raise CatalogError(
        f"unsupported URL scheme {s!r} in {redact(href)}; use az://, s3://, gs://, https:// or a local path"
    )


def from_gdal_path(path: str) -> str:
    """The href a GDAL path stands for (``/vsiaz/c/k`` -> ``az://c/k``, ``/vsicurl/URL`` -> URL), for messages."""
    p = str(path)
    if p.startswith("/vsicurl/"):
        return p.removeprefix("/vsicurl/")
    for prefix, sch in _FROM_VSI.items():
        if p.startswith(prefix):
            return sch + p.removeprefix(prefix)
    return p


def _expand(value: Any) -> Any:
    """``${NAME}`` -> os.environ["NAME"] (CatalogError naming NAME when unset); nested dicts too."""
    if isinstance(value, Mapping):
        return {k: _expand(v) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise CatalogError(
                f"storage option refers to ${{{name}}}, but the environment variable {name} is unset; export it "
                "or write the value into the storage options"
            )
        return os.environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, value)


def resolve_options(storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Storage options with ``${ENV}`` references expanded."""
    return {k: _expand(v) for k, v in (storage_options or {}).items()}


def _endpoint_settings(endpoint: str) -> dict[str, str]:
    p = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    return {
        "AWS_S3_ENDPOINT": p.netloc,
        "AWS_HTTPS": "YES" if p.scheme == "https" else "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
    }


def gdal_options(storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """GDAL configuration options for fast COG reads (:data:`FAST_COG_READS`) plus credentials.

    Credentials come from ``storage_options`` (Azure: ``connection_string`` | ``account_name`` + ``account_key``
    | ``sas_token``; S3: ``key``, ``secret``, ``token``, ``endpoint_url``, ``region``; ``${ENV}`` references
    expanded) or, for a family (Azure / AWS) the options do not configure, from the GDAL/AWS/Azure variables of
    this process's environment (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` become ``AWS_S3_ENDPOINT``,
    ``AWS_HTTPS`` and ``AWS_VIRTUAL_HOSTING``). Use as ``rasterio.Env(**gdal_options(opts))``; pass the dict into
    Dask graphs so remote workers read with the same settings. Values are strings (credential values are
    :class:`Secret`) except ``GDAL_CACHEMAX`` (bytes, an int as rasterio wants it) and ``"session"``: rasterio refuses ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` as
    options, so AWS keys travel in a :class:`GdalCredentials` session (``rasterio.Env(session=...)``).
    """
    o = resolve_options(storage_options)
    env = dict(FAST_COG_READS)
    if not any(o.get(k) for k in _AZURE_OPTS):
        env.update({k: os.environ[k] for k in _ENV_AZURE if os.environ.get(k)})
    if not any(o.get(k) for k in _AWS_OPTS):
        env.update({k: os.environ[k] for k in _ENV_AWS if os.environ.get(k)})
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint and "AWS_S3_ENDPOINT" not in env:
            env.update(_endpoint_settings(endpoint))
    env.update({_GDAL_NAMES[k]: v for k, v in o.items() if k in _GDAL_NAMES and v})
    if o.get("sas_token"):
        env["AZURE_STORAGE_SAS_TOKEN"] = o["sas_token"].lstrip("?")
    if o.get("anon"):
        env["AZURE_NO_SIGN_REQUEST" if o.get("account_name") else "AWS_NO_SIGN_REQUEST"] = "YES"
    endpoint = o.get("endpoint_url") or (o.get("client_kwargs") or {}).get("endpoint_url")
    if endpoint:
        env.update(_endpoint_settings(endpoint))
    out: dict[str, Any] = {
        k: Secret(v) if k in SECRET_GDAL_KEYS else v if isinstance(v, int) else str(v) for k, v in env.items()
    }
    creds = {k: out.pop(k) for k in _SESSION_KEYS if k in out}
    if creds:
        out["session"] = GdalCredentials(creds)
    return out


def fsspec_options(url: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments for the fsspec filesystem of ``url`` (adlfs for az://, s3fs for s3://).

    Without options adlfs and s3fs read the usual environment variables themselves
    (``AZURE_STORAGE_CONNECTION_STRING``, ``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL`` ...)."""
    o = resolve_options(storage_options)
    s = scheme(url)
    # no cached directory listings: a run's client, its workers and other runs all write the same prefixes, and
    # a stale listing makes a freshly created array look missing (seen with adlfs, which caches ``exists``)
    nocache = {"use_listings_cache": False}
    if s in AZURE_SCHEMES:
        keys = ("connection_string", "account_name", "account_key", "sas_token", "anon", "account_host")
        return {**{k: o[k] for k in keys if k in o}, **nocache}
    if s == "s3":
        out: dict[str, Any] = {k: o[k] for k in ("key", "secret", "token", "anon", "config_kwargs") if k in o}
        out.update(nocache)
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
    except (ImportError, ValueError, TypeError) as exc:
        raise CatalogError(f"cannot open a filesystem for {redact(url)}: {redact(exc)}") from exc


def stac_io(storage_options: Mapping[str, Any] | None = None):
    """A ``pystac.StacIO`` that reads and writes STAC JSON through fsspec for object-store URLs (``az://``,
    ``s3://``, ``gs://``) with ``storage_options``, and like pystac's default for local paths and HTTP(S):
    ``pystac.Catalog.from_file("az://c/catalog.json", stac_io=stac_io(opts))``, ``catalog.save(stac_io=...)``.
    Errors are CatalogErrors naming the (redacted) URL."""
    import pystac

    class FsspecStacIO(pystac.stac_io.DefaultStacIO):
        def read_text_from_href(self, href: str) -> str:
            if scheme(href) in (*_VSI, *AZURE_SCHEMES):
                from orbitcube.catalog.failures import retry

                fs = filesystem(href, storage_options)
                return retry(lambda: fs.cat_file(href).decode("utf-8"), url=href, action="read STAC file")
            return super().read_text_from_href(href)

        def write_text_to_href(self, href: str, txt: str) -> None:
            if scheme(href) in (*_VSI, *AZURE_SCHEMES):
                from orbitcube.catalog.failures import retry

                fs = filesystem(href, storage_options)
                retry(lambda: fs.pipe_file(href, txt.encode("utf-8")), url=href, action="write STAC file")
                return
            super().write_text_to_href(href, txt)

    return FsspecStacIO()


def redact(text: Any) -> str:
    """``text`` with secrets removed: URL query strings (SAS tokens, ``X-Amz-Signature``/``-Credential``) and user
    info (``user:password@``, with or without the URL's scheme), ``AccountKey=``/``sig=``/``se=``/``secret=``/
    ``password=`` values, and ``"secret": "..."``-style fields of JSON or Python reprs (quoted or not)."""
    s = str(text)

    def strip_url(m: re.Match) -> str:
        raw = m.group(0)
        try:
            p = urlsplit(raw)
            host = p.hostname or ""
            if ":" in host:  # an IPv6 literal keeps its brackets
                host = f"[{host}]"
            if p.port:
                host = f"{host}:{p.port}"
        except ValueError:  # e.g. a port that is not a number: keep scheme and host only
            return raw.split("?", 1)[0].split("@")[-1]
        return urlunsplit((p.scheme, host, p.path, "", ""))

    s = _URL.sub(strip_url, s)
    s = _USERINFO.sub("***@", s)
    s = _SECRET_KV.sub(lambda m: f"{m.group(1)}=***", s)
    s = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}{m.group(2)}***{m.group(2)}", s)
    return _SECRET_BARE.sub(lambda m: f"{m.group(1)}***", s)


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record with secrets removed (:func:`redact`) from its message and
    its traceback text: attach it to a handler (``handler.addFilter(RedactingFilter())``) so that nothing that
    handler writes, from orbitcube or from a library, carries a SAS token, signature, password or key."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 (a bad format string: leave it to the handler's own error path)
            return True
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
