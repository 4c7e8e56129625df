"""Storage access of one run, resolved once: which options (credentials, endpoints) apply to which URL, the GDAL
settings the reads run under, the fsspec options of writes, and the retry policy.

A recipe's ``storage:`` block (options per URL scheme or prefix, ``${ENV}`` references allowed) and its
``cluster.gdal_env`` become one frozen, picklable :class:`Storage` on the client: ``${ENV}`` references are
expanded there (a CatalogError names an unset variable before any work starts) and every credential becomes a
:class:`~orbitcube.catalog.storage.Secret` (its repr is ``'***'``). Every stage receives this object -- the
catalog search, the read tasks (GDAL options inside the graph), the Zarr writes on the workers (fsspec options
inside the graph) -- so remote workers need no credentials of their own and a shared cluster keeps none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orbitcube.catalog.defaults import RETRY_POLICY, RetryPolicy
from orbitcube.catalog.storage import (
    SECRET_GDAL_KEYS,
    Secret,
    filesystem,
    fsspec_options,
    gdal_options,
    is_remote,
    resolve_options,
    stac_io,
)

__all__ = ["SECRET_OPTIONS", "Storage"]

#: storage options whose values are credentials (kept as Secret strings once expanded)
SECRET_OPTIONS = frozenset({"connection_string", "account_key", "sas_token", "key", "secret", "token"})


def _secret(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: Secret(v) if k in SECRET_OPTIONS and isinstance(v, str) else v for k, v in options.items()}


def _prefix(key: str) -> str:
    return key if "://" in key else f"{key}://"


@dataclass(frozen=True)
class Storage:
    """Storage options per URL prefix or scheme (``${ENV}`` expanded, credentials as Secret strings), extra GDAL
    options for every read, and the retry policy. Build with :meth:`resolve`; small and picklable, it travels
    inside Dask graphs."""

    entries: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    gdal_env: tuple[tuple[str, Any], ...] = ()
    retry: RetryPolicy = field(default=RETRY_POLICY)

    @classmethod
    def resolve(
        cls, storage: Mapping[str, Mapping[str, Any]] | None = None, gdal_env: Mapping[str, Any] | None = None
    ) -> Storage:
        """The storage of a run: ``storage`` maps a scheme (``s3``) or URL prefix (``s3://bucket/``) to its
        options (see :data:`orbitcube.pipeline.recipe.STORAGE_OPTIONS`); ``gdal_env`` adds GDAL options to every
        read. ``${ENV}`` references are expanded now, on the client (CatalogError naming an unset variable)."""
        entries = tuple((key, _secret(resolve_options(opts))) for key, opts in (storage or {}).items())
        env = tuple(
            (k, Secret(v) if k in SECRET_GDAL_KEYS else v)
            for k, v in sorted(resolve_options(gdal_env or {}).items())
        )
        return cls(entries, env)

    def options(self, url: str | Path) -> dict[str, Any]:
        """The options for ``url``: the longest matching prefix (a bare scheme matches every URL of that scheme);
        {} for local paths or when nothing matches."""
        url = str(url)
        if "://" not in url or url.startswith("file://"):
            return {}
        best: Mapping[str, Any] = {}
        length = -1
        for key, opts in self.entries:
            p = _prefix(key)
            if url.startswith(p) and len(p) > length:
                best, length = opts, len(p)
        return dict(best)

    @property
    def stores(self) -> list[str]:
        """The schemes and prefixes this storage configures (the object stores a catalog may reference)."""
        return [key for key, _ in self.entries]

    def read_env(self, hrefs: Iterable[str]) -> dict[str, Any]:
        """GDAL options the reads of ``hrefs`` run under: fast-COG settings and the credentials of the entries that
        match the hrefs (else those of the environment) when any href is remote, then ``gdal_env``. Local files
        only: just ``gdal_env`` (the reader's defaults suit local files)."""
        env: dict[str, Any] = {}
        seen: list[dict[str, Any]] = []
        remote = False
        for href in hrefs:
            remote = remote or is_remote(href)
            opts = self.options(href)
            if opts and opts not in seen:
                seen.append(opts)
        if remote:
            for opts in seen or [{}]:
                env.update(gdal_options(opts))
        env.update(dict(self.gdal_env))
        return env

    def fsspec(self, url: str | Path) -> dict[str, Any]:
        """fsspec keyword arguments for ``url`` (adlfs for az://, s3fs for s3://)."""
        return fsspec_options(str(url), self.options(url))

    def filesystem(self, url: str | Path):
        """The fsspec filesystem of ``url``, configured from the matching options."""
        return filesystem(str(url), self.options(url))

    def stac_io(self, url: str | Path):
        """A pystac StacIO reading ``url``'s catalog with the matching options."""
        return stac_io(self.options(url))

    def __repr__(self) -> str:
        return f"Storage(stores={self.stores}, gdal_env={[k for k, _ in self.gdal_env]})"
