"""Run-store locks: one writer per output store at a time.

* Local stores: an exclusive ``flock`` on ``<store>.lock`` beside the store, the store's path resolved first
  (symbolic links, ``..``), so that every name of one folder shares one lock. The operating system releases it when
  the process dies, so a killed run never leaves a stale lock.
* Object-store stores (``az://``, ``s3://``): a *lease object* ``<store>.lock`` beside the store, created with a
  conditional put (``If-None-Match: *``: Azure Blob Storage and S3 both refuse to overwrite an existing object), and
  renewed by a heartbeat thread every ``ttl / 4`` seconds. A second run finds the object and is refused while the
  holder's last heartbeat is younger than ``ttl``. A lease whose holder stopped renewing it (killed run) is taken
  over after ``ttl`` with a conditional overwrite (``If-Match: <etag>``), so two runs racing for a stale lease
  cannot both win. A holder that finds its lease taken over (it stalled for longer than ``ttl``) reports it on its
  next :meth:`StoreLock.check`, before recording another tile.

  Guarantee: at most one live run writes a store, provided the writers' clocks agree to within ``ttl / 2`` and no
  writer stalls for longer than ``ttl`` between heartbeats; a killed run blocks the store for at most ``ttl``
  seconds. Object stores without conditional writes (other fsspec file systems) get a best-effort lease (plain
  create-if-absent check and overwrite).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from orbitcube.pipeline.errors import SinkError

log = logging.getLogger(__name__)

#: seconds after its last heartbeat that a lease object counts as abandoned
LOCK_TTL_S = 120.0


class StoreLock:
    """A held lock; :meth:`check` raises SinkError if it was lost (a lease taken over by another run)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.lost: str | None = None

    def check(self) -> None:
        """Raise SinkError when the lock is no longer held."""
        if self.lost:
            raise SinkError(self.lost)


def lock_url(store: str | Path) -> str:
    """Where the lock of ``store`` lives: ``<store>.lock`` beside it."""
    return str(store).rstrip("/") + ".lock"


@contextlib.contextmanager
def store_lock(
    path: str | Path,
    storage_options: Mapping[str, Any] | None = None,
    *,
    ttl: float = LOCK_TTL_S,
) -> Iterator[StoreLock]:
    """Hold the lock of the run store ``path`` (local folder or ``az://`` / ``s3://`` URL) for the duration.

    A second holder is refused with SinkError naming the holder and what to do. See the module docstring for
    what each kind of lock guarantees; ``ttl`` (seconds) applies to object-store leases only."""
    from orbitcube.catalog.storage import is_remote

    if is_remote(str(path)):
        with _lease(str(path), storage_options, ttl) as held:
            yield held
    else:
        # one lock per store, however it is reached: symbolic links and relative paths resolved, so that two
        # runs through different names of the same folder exclude each other
        with _flock(Path(os.path.realpath(path)), shown=str(path)) as held:
            yield held


@contextlib.contextmanager
def _flock(path: Path, shown: str | None = None) -> Iterator[StoreLock]:
    import fcntl

    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        same = f" (the store {path})" if shown and shown != str(path) else ""
        raise SinkError(
            f"{shown or path}{same} is being written by another run ({holder}); wait for it to finish or choose "
            "another output path"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield StoreLock(str(lock))
    finally:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


# ----- object-store leases ------------------------------------------------------------------------------------------
def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Lease(StoreLock):
    """The lease object of one run; see the module docstring."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None, ttl: float) -> None:
        from orbitcube.catalog.storage import filesystem, redact, scheme

        super().__init__(redact(lock_url(url)))
        if ttl <= 0:
            raise SinkError(f"lock ttl={ttl}; use a positive number of seconds")
        self.url = lock_url(url)
        self.store = redact(url)
        self.scheme = scheme(url)
        self.fs = filesystem(url, storage_options)
        self.key = self.url.split("://", 1)[1]
        self.ttl = float(ttl)
        self.owner = uuid.uuid4().hex
        self.started = _now()
        self.etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- object-store primitives
    def _body(self) -> bytes:
        return json.dumps(
            {
                "owner": self.owner,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": self.started.isoformat(timespec="seconds"),
                "heartbeat": _now().isoformat(timespec="milliseconds"),
                "ttl_s": self.ttl,
            }
        ).encode()

    def _put(self, *, create: bool = False, if_match: str | None = None) -> None:
        """Write the lease body: create-if-absent, overwrite-if-unchanged (``if_match`` etag) or plain overwrite.
        Raises FileExistsError when the condition fails."""
        kwargs: dict[str, Any] = {}
        if create:
            kwargs["mode"] = "create"
        elif if_match is not None and self.scheme == "s3":
            kwargs["IfMatch"] = if_match
        elif if_match is not None and self.scheme in ("az", "azure", "abfs"):
            from azure.core import MatchConditions

            kwargs.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        try:
            out = self.fs.pipe_file(self.key, self._body(), **kwargs)
        except FileExistsError:
            raise
        except (
            Exception
        ) as exc:  # S3: OSError "pre-conditions ... did not hold"; Azure: ResourceModifiedError
            if _precondition_failed(exc):
                raise FileExistsError(self.key) from exc
            raise
        self.etag = _etag_of(out) or self._info()[1]

    def _info(self) -> tuple[dict | None, str | None]:
        """(lease body, etag) as stored now; (None, None) when there is no lease object."""
        self.fs.invalidate_cache(self.key)
        try:
            info = self.fs.info(self.key)
            body = json.loads(self.fs.cat_file(self.key))
        except FileNotFoundError:
            return None, None
        except ValueError:  # not JSON: someone else's object
            body = {}
        return body, _etag_of(info)

    # -- life cycle
    def acquire(self) -> None:
        from orbitcube.catalog.failures import retry

        def create() -> None:
            self._put(create=True)

        try:
            retry(
                create,
                url=self.url,
                action="create the run lock",
                error=SinkError,
                passthrough=(FileExistsError,),
            )
        except FileExistsError:
            retry(self._take_over_if_stale, url=self.url, action="check the run lock", error=SinkError)
        self._thread = threading.Thread(
            target=self._beat, name=f"orbitcube-lease-{self.owner[:8]}", daemon=True
        )
        self._thread.start()
        log.info("locked %s (lease %s, ttl %.0f s)", self.store, self.where, self.ttl)

    def _take_over_if_stale(self) -> None:
        body, etag = self._info()
        if body is None:  # released meanwhile
            self._put(create=True)
            return
        try:
            seen = dt.datetime.fromisoformat(body["heartbeat"])
            ttl = float(body.get("ttl_s", self.ttl))
        except (KeyError, TypeError, ValueError):
            seen, ttl = dt.datetime.min.replace(tzinfo=dt.UTC), self.ttl
        age = (_now() - seen).total_seconds()
        holder = f"pid {body.get('pid', '?')} on {body.get('host', '?')}, started {body.get('started', '?')}"
        if age < ttl:
            raise SinkError(
                f"{self.store} is being written by another run ({holder}; last heartbeat {age:.0f} s ago); wait "
                f"for it to finish or choose another output path. If that run is dead, its lease {self.where} "
                f"expires {ttl - age:.0f} s from now (or delete that object)"
            )
        try:
            self._put(if_match=etag)
        except FileExistsError:
            raise SinkError(
                f"{self.store}: another run took over the abandoned lease {self.where} at the same time; "
                "wait for it to finish or choose another output path"
            ) from None
        log.warning("took over the abandoned lease %s (%s; silent for %.0f s)", self.where, holder, age)

    def _beat(self) -> None:
        from orbitcube.catalog.failures import is_transient
        from orbitcube.catalog.storage import redact

        while not self._stop.wait(self.ttl / 4):
            try:
                self._put(if_match=self.etag)
            except FileExistsError:
                self.lost = (
                    f"the lease {self.where} on {self.store} was taken over by another run (this run did not "
                    f"renew it for {self.ttl:.0f} s); stop this run, or rerun it when the other one has finished"
                )
                log.error("%s", self.lost)
                return
            except Exception as exc:  # keep beating through transient outages; the next beat may get through
                level = logging.WARNING if is_transient(exc) else logging.ERROR
                log.log(level, "cannot renew the lease %s: %s", self.where, redact(exc))

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.lost:
            return
        try:
            body, _ = self._info()
            if body and body.get("owner") == self.owner:
                self.fs.rm_file(self.key)
                self.fs.invalidate_cache(self.key)
        except Exception as exc:  # the lease then simply expires after ttl
            from orbitcube.catalog.storage import redact

            log.warning("cannot remove the lease %s (%s); it expires by itself", self.where, redact(exc))


@contextlib.contextmanager
def _lease(url: str, storage_options: Mapping[str, Any] | None, ttl: float) -> Iterator[StoreLock]:
    lease = _Lease(url, storage_options, ttl)
    lease.acquire()
    try:
        yield lease
    finally:
        lease.release()


def _etag_of(meta: Any) -> str | None:
    if not isinstance(meta, Mapping):
        return None
    for k in ("ETag", "etag", "Etag"):
        if meta.get(k):
            return str(meta[k])
    return None


def _precondition_failed(exc: BaseException) -> bool:
    e: BaseException | None = exc
    while e is not None:
        names = {t.__name__ for t in type(e).__mro__}
        if names & {"ResourceModifiedError", "ResourceExistsError", "PreconditionFailed"}:
            return True
        if (
            getattr(e, "status_code", None) == 412
            or "pre-condition" in str(e)
            or "PreconditionFailed" in str(e)
        ):
            return True
        e = e.__cause__ or e.__context__
    return False


__all__ = [
    "LOCK_TTL_S",
    "StoreLock",
    "lock_url",
    "store_lock",
]
