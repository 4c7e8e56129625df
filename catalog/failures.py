"""What a storage failure is -- missing, denied, transient or other -- and the one retry loop for storage calls.

The SDKs of the object stores (adlfs/azure-storage, s3fs/botocore), fsspec, GDAL and the operating system raise
many exception types for the same few situations; :func:`classify` sorts them by type name, error code, errno and
message, so that every layer (the reader, the sink, the lock, the runner) retries the same failures, at most as
often as :data:`orbitcube.catalog.defaults.RETRY_POLICY` says, and reports the others with a fix.
"""

from __future__ import annotations

import errno
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from orbitcube.catalog.errors import CatalogError, OrbitcubeError
from orbitcube.catalog.storage import redact

__all__ = ["classify", "is_transient", "retry", "storage_error"]

log = logging.getLogger(__name__)

T = TypeVar("T")


# ----- errors and retries -------------------------------------------------------------------------------------------
_MISSING = {
    "NoSuchBucket",
    "NoSuchKey",
    "ContainerNotFound",
    "BlobNotFound",
    "ResourceNotFound",
    "NotFound",
    "404",
}
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "InvalidClientTokenId",
    "ExpiredToken",
    "403",
    "401",
}
_TRANSIENT_TYPES = {
    "ConnectionError",
    "ConnectionResetError",
    "ConnectionRefusedError",
    "ConnectionAbortedError",
    "BrokenPipeError",
    "TimeoutError",
    "ServerDisconnectedError",
    "ClientConnectionError",
    "ClientConnectorError",
    "ClientOSError",
    "ClientPayloadError",
    "ServerTimeoutError",
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "ServiceRequestError",
    "ServiceResponseError",
    "IncompleteReadError",
    "ResponseStreamingError",
}
_TRANSIENT_CODES = {
    "429",
    "500",
    "502",
    "503",
    "504",
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "ServerBusy",
}
_TRANSIENT_ERRNOS = {errno.ECONNRESET, errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EPIPE, errno.ECONNABORTED}
_TRANSIENT_TEXT = re.compile(
    r"(?i)connection (reset|refused|aborted|closed)|timed out|temporarily unavailable|service unavailable|"
    r"server disconnected|\b(429|50[234])\b|couldn't connect|could not connect|cannot connect"
)


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _codes(e: BaseException) -> set[str]:
    """Error codes and HTTP statuses an SDK exception carries (botocore ClientError, azure HttpResponseError)."""
    codes: set[str] = set()
    resp = getattr(e, "response", None)
    if isinstance(resp, Mapping):  # botocore ClientError
        err = resp.get("Error") or {}
        codes.add(str(err.get("Code", "")))
        codes.add(str((resp.get("ResponseMetadata") or {}).get("HTTPStatusCode", "")))
    for attr in ("status_code", "status", "error_code"):
        v = getattr(e, attr, None)
        if v is not None and not callable(v):
            codes.add(str(getattr(v, "value", v)))
    return codes - {"", "None"}


def classify(exc: BaseException) -> str:
    """What an object-storage error means: ``"missing"`` (no such bucket/container/object), ``"denied"`` (wrong
    or missing credentials), ``"transient"`` (worth retrying: connection reset/refused, timeouts, HTTP 429/5xx),
    or ``"other"``."""
    chain = _chain(exc)
    for e in chain:
        names = {t.__name__ for t in type(e).__mro__}
        codes = _codes(e)
        if isinstance(e, FileNotFoundError) or names & {"ResourceNotFoundError"} or codes & _MISSING:
            return "missing"
        if isinstance(e, PermissionError) or names & {"ClientAuthenticationError"} or codes & _DENIED:
            return "denied"
        if names & _TRANSIENT_TYPES or codes & _TRANSIENT_CODES:
            return "transient"
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
            return "transient"
    if any(_TRANSIENT_TEXT.search(str(e)) for e in chain):
        return "transient"
    return "other"


def is_transient(exc: BaseException) -> bool:
    """True when retrying the call that raised ``exc`` may succeed (see :func:`classify`)."""
    return classify(exc) == "transient"


_HINTS = {
    "missing": "the bucket/container or object does not exist; create the bucket/container or fix the URL",
    "denied": "access denied; check the credentials (storage options or AZURE_*/AWS_* environment variables)",
    "transient": "the storage service did not answer (connection refused/reset, timeout or HTTP 5xx); check the "
    "endpoint and that the service is up, then run again",
    "other": "check the URL, the endpoint and the credentials",
}


def storage_error(
    exc: BaseException, url: str, action: str = "access", error: type[OrbitcubeError] = CatalogError
) -> OrbitcubeError:
    """An ``error`` saying that ``action`` on ``url`` failed, why (see :func:`classify`) and how to fix it; the
    URL and the underlying message are redacted."""
    kind = classify(exc)
    detail = redact(f"{type(exc).__name__}: {exc}")[:400]
    return error(f"cannot {action} {redact(url)}: {_HINTS[kind]} ({detail})")


def retry(
    call: Callable[[], T],
    *,
    url: str,
    action: str = "access",
    attempts: int = 4,
    delay: float = 0.25,
    error: type[OrbitcubeError] = CatalogError,
    passthrough: tuple[type[BaseException], ...] = (),
) -> T:
    """Run ``call()``; retry it up to ``attempts`` times in all (delay ``delay`` s, doubling) while it fails with
    a transient error (:func:`is_transient`). Any other failure, or the last transient one, is raised as
    ``error`` via :func:`storage_error` naming ``url`` (redacted). OrbitcubeErrors and ``passthrough`` exception
    types are re-raised unchanged."""
    if attempts < 1:
        raise ValueError(f"attempts={attempts}; use 1 or more")
    for n in range(1, attempts + 1):
        try:
            return call()
        except (OrbitcubeError, *passthrough):
            raise
        except Exception as exc:  # the SDKs raise many types; classify() sorts them out
            if n < attempts and is_transient(exc):
                log.warning(
                    "%s %s failed (%s), retry %d of %d",
                    action,
                    redact(url),
                    redact(type(exc).__name__),
                    n,
                    attempts - 1,
                )
                time.sleep(delay * 2 ** (n - 1))
                continue
            raise storage_error(exc, url, action, error) from exc
    raise AssertionError("unreachable")  # pragma: no cover
