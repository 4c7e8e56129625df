"""What a catalog may make orbitcube read: its own tree, and what the user allowed.

A STAC catalog is input written by someone else. Its links (child, item) and its asset hrefs decide which files
and URLs orbitcube opens, so a hostile or careless catalog could make a run read files of the machine it runs on
(``file:///etc/...``, ``../../../home/me/.ssh``), or reach the cloud metadata service (``169.254.169.254``) from
the workers. The rule, applied wherever links are followed and before any asset href reaches a reader:

* a **local** catalog may reference files under its own folder (after resolving ``..`` and symlinks);
* a **remote** catalog (``https://``, ``s3://``, ``az://`` ...) may reference its own origin (scheme, host and
  port; for object stores, the bucket or container);
* anything else only when the user allowed it: a recipe's ``catalog.allow`` list or the CLI's ``--allow``. An
  entry is a local folder (``/data/scenes``), a URL prefix (``https://example.org/cogs``, ``s3://bucket``) or a
  bare scheme (``s3``, ``https``: every host of that scheme). The object stores a recipe's ``storage`` block
  configures are allowed as well;
* loopback (127.0.0.0/8, ::1, ``localhost``), link-local (169.254.0.0/16, fe80::/10), unspecified addresses and
  cloud metadata host names are refused even under an allowed scheme, unless an entry names that host itself or
  the catalog is served from there (a catalog on 127.0.0.1 may reference its own origin);
* GDAL virtual-file and driver paths (``/vsicurl/...``, ``/vsizip/...``, ``NETCDF:...``) are never accepted as
  hrefs: they would reach a URL without passing this check.

No name is resolved and no connection made to decide: the check works on the href's text only. (A host name that
resolves to a private address is therefore not caught; allow only hosts you trust.)
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from orbitcube.catalog.errors import CatalogError

#: URL schemes whose "host" is a bucket or container name, not a network address
OBJECT_STORE_SCHEMES = frozenset({"s3", "az", "azure", "abfs", "abfss", "gs", "gcs"})
#: bare words taken as "every URL of this scheme" in an allow list (any other bare word is a relative folder)
KNOWN_SCHEMES = frozenset({*OBJECT_STORE_SCHEMES, "http", "https", "ftp", "file"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}
_METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
_METADATA_IPS = (ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200"))
_GDAL_SPECIAL = re.compile(r"^(/vsi[a-z0-9_]*/|[A-Za-z][A-Za-z0-9_]+:(?!//))")


@dataclass(frozen=True)
class AllowEntry:
    """One normalised allow-list entry: a local folder (``kind="local"``, ``path`` resolved), a whole URL scheme
    (``kind="scheme"``), or a URL prefix (``kind="url"``: scheme, ``netloc`` host[:port] in lower case, path)."""

    kind: str
    scheme: str = ""
    netloc: str = ""
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "local":
            return self.path
        if self.kind == "scheme":
            return f"{self.scheme}://"
        return f"{self.scheme}://{self.netloc}{self.path}"


def _netloc(scheme: str, href: str) -> str:
    p = urlsplit(href)
    host = (p.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = p.port
    except ValueError:
        port = None
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return host


def _scheme(href: str) -> str:
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", href)
    return m.group(1).lower() if m else ""


def _local_path(href: str, base: str | Path | None = None) -> str:
    """The resolved absolute path of a local href (``file://`` or a path; relative to ``base`` or the cwd)."""
    text = href
    if _scheme(text) == "file":
        p = urlsplit(text)
        if p.netloc not in ("", "localhost"):
            raise CatalogError(f"{href!r} names a file on another host ({p.netloc}); use a local path")
        from urllib.parse import unquote

        text = unquote(p.path)
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path(base or os.getcwd()) / path
    return os.path.realpath(path)


def parse_allow(entry: str, base: str | Path | None = None) -> AllowEntry:
    """Normalise one allow entry: ``/data/scenes`` or ``file:///data/scenes`` (a folder; relative paths from
    ``base``), ``s3`` / ``https://`` (a whole scheme), or a URL prefix ``https://host:port/path``."""
    text = str(entry).strip()
    if not text:
        raise CatalogError("an empty allow entry; give a folder, a URL prefix or a URL scheme")
    sch = _scheme(text)
    if sch == "file" and text.split("://", 1)[1] in ("", "*"):
        return AllowEntry("local", path="/")
    if sch == "file" or (not sch and (os.sep in text or text.startswith((".", "~")))):
        return AllowEntry("local", path=_local_path(text, base))
    if not sch:
        if text.lower() in KNOWN_SCHEMES:
            return AllowEntry("scheme", scheme=text.lower())
        return AllowEntry("local", path=_local_path(text, base))
    rest = text.split("://", 1)[1]
    if rest in ("", "*"):
        return AllowEntry("scheme", scheme=sch)
    path = (
        urlsplit(text).path.rstrip("/") if sch not in OBJECT_STORE_SCHEMES else "/" + rest.partition("/")[2]
    )
    return AllowEntry("url", scheme=sch, netloc=_netloc(sch, text), path=path.rstrip("/"))


def _origin(href: str) -> AllowEntry:
    sch = _scheme(href)
    return AllowEntry("url", scheme=sch, netloc=_netloc(sch, href), path="")


@dataclass(frozen=True)
class AccessPolicy:
    """Where one catalog's links and asset hrefs may point (see the module docstring).

    ``home`` is the catalog's own tree: a resolved local folder, or the origin of a remote catalog; ``allow`` the
    user's extra entries (normalised with :func:`parse_allow`). Build one with :meth:`for_catalog`. Frozen,
    small and picklable."""

    home: AllowEntry
    allow: tuple[AllowEntry, ...] = ()

    @classmethod
    def for_catalog(
        cls,
        source: str | Path,
        allow: Iterable[str] = (),
        *,
        stores: Iterable[str] = (),
        base: str | Path | None = None,
    ) -> AccessPolicy:
        """The policy of the catalog at ``source`` (a folder, a ``catalog.json`` path or a URL): its own tree,
        plus the ``allow`` entries and the object stores ``stores`` (a recipe's ``storage`` keys: schemes such as
        ``s3`` or prefixes such as ``s3://bucket/``). Relative local entries are taken from ``base``."""
        text = str(source)
        if _scheme(text) in ("", "file"):
            path = Path(_local_path(text, base))
            home = AllowEntry("local", path=str(path.parent if path.suffix == ".json" else path))
        else:
            home = _origin(text)
        entries = tuple(parse_allow(e, base) for e in (*allow, *stores))
        return cls(home, entries)

    def allowing(self, entries: Iterable[str], base: str | Path | None = None) -> AccessPolicy:
        """This policy with more allow entries."""
        return AccessPolicy(self.home, (*self.allow, *(parse_allow(e, base) for e in entries)))

    def describe(self) -> str:
        """The catalog's own tree and the allowed entries, for messages."""
        extra = ", ".join(str(e) for e in self.allow)
        return f"{self.home}" + (f" and {extra}" if extra else "")


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def special_host(host: str) -> bool:
    """True for loopback, link-local, unspecified and cloud-metadata hosts (IP literals in any notation
    ``inet_aton`` accepts, e.g. ``2852039166``; ``localhost`` and ``*.localhost``). No name is resolved."""
    h = host.strip("[]").lower().rstrip(".")
    if h in _METADATA_HOSTS or h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(h.split("%", 1)[0])
    except ValueError:
        try:
            ip = ipaddress.ip_address(socket.inet_aton(h))  # 127.1, 0x7f000001, 2130706433 ...
        except OSError:
            return False
    mapped = getattr(ip, "ipv4_mapped", None)
    ip = mapped or ip
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip in _METADATA_IPS


def _url_matches(href: str, sch: str, entry: AllowEntry) -> bool:
    if entry.scheme != sch or entry.netloc != _netloc(sch, href):
        return False
    if sch in OBJECT_STORE_SCHEMES:
        path = "/" + href.split("://", 1)[1].partition("/")[2].split("?", 1)[0]
    else:
        path = urlsplit(href).path
    path = os.path.normpath(path) if path else "/"  # no "/allowed/../secret"
    return not entry.path or path == entry.path or path.startswith(entry.path + "/")


def violation(href: str, policy: AccessPolicy) -> str | None:
    """Why ``href`` (absolute: a local path, ``file://`` or a URL) is not allowed by ``policy``; None when it
    is. Pure text: nothing is opened or resolved over the network."""
    text = str(href)
    sch = _scheme(text)
    if sch in ("", "file"):
        if not sch and _GDAL_SPECIAL.match(text):
            return "a GDAL virtual-file or driver path, which orbitcube never takes from a catalog"
        try:
            path = _local_path(text)
        except CatalogError as exc:
            return str(exc)
        folders = [e.path for e in (policy.home, *policy.allow) if e.kind == "local"]
        if any(_under(path, f) for f in folders):
            return None
        if policy.home.kind == "local":
            shown = "" if path == os.path.normpath(text.removeprefix("file://")) else f" (resolved: {path})"
            return f"outside the catalog folder {policy.home.path}{shown}"
        return "a local file, and the catalog is remote"
    if sch not in OBJECT_STORE_SCHEMES and not _netloc(sch, text):
        return "a URL without a host"
    origin = _origin(text)
    if policy.home == origin:
        return None
    special = sch not in OBJECT_STORE_SCHEMES and special_host(urlsplit(text).hostname or "")
    for entry in policy.allow:
        if entry.kind == "scheme" and entry.scheme == sch and not special:
            return None
        if entry.kind == "url" and _url_matches(text, sch, entry):
            return None
    if special:
        return "a loopback, link-local or cloud-metadata address"
    if policy.home.kind == "local":
        return f"a URL, and the catalog is the local folder {policy.home.path}"
    return f"not under the catalog's origin {policy.home}"


def suggestion(href: str) -> str:
    """The allow entry that would admit ``href``: its folder, or its origin."""
    sch = _scheme(str(href))
    if sch in ("", "file"):
        try:
            return os.path.dirname(_local_path(str(href)))
        except CatalogError:
            return str(href)
    return str(_origin(str(href)))


def check_href(href: str, policy: AccessPolicy | None, *, what: str = "href") -> None:
    """Raise CatalogError when ``policy`` does not allow ``href``; ``what`` names the item, asset or link for
    the message (e.g. ``"item 'S2A_...' asset 'B04'"``). ``policy=None`` allows everything (items a caller
    built itself)."""
    if policy is None:
        return
    why = violation(href, policy)
    if why is None:
        return
    from orbitcube.catalog.storage import redact

    hint = suggestion(href)
    raise CatalogError(
        f"{what}: {redact(href)} is {why}; a catalog may only reference its own tree ({redact(policy.describe())}) "
        f"and what you allow. If you trust it, allow it: recipe `catalog: {{allow: [{redact(hint)}]}}` or "
        f"CLI `--allow {redact(hint)}`"
    )


def item_hrefs(item: Any) -> list[tuple[str, str]]:
    """``(asset key, absolute href)`` of every asset of a pystac Item."""
    return [(k, a.get_absolute_href() or a.href) for k, a in item.assets.items()]


def check_items(items: Sequence[Any], policy: AccessPolicy | None) -> None:
    """Check every asset href of the pystac ``items`` (CatalogError naming the first item and asset refused)."""
    if policy is None:
        return
    for it in items:
        for key, href in item_hrefs(it):
            check_href(href, policy, what=f"item {it.id!r} asset {key!r}")


def guarded_stac_io(policy: AccessPolicy, inner: Any = None) -> Any:
    """A ``pystac.StacIO`` that checks every href against ``policy`` before ``inner`` (default: pystac's) reads
    it, so that walking a catalog never follows a link out of its tree."""
    import pystac

    if inner is None:
        default = pystac.StacIO.default()
        inner = default() if isinstance(default, type) else default

    class GuardedStacIO(pystac.StacIO):
        def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
            href = str(source.get_href() if isinstance(source, pystac.Link) else source)
            check_href(href, policy, what="catalog link")
            return inner.read_text(source, *args, **kwargs)

        def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
            inner.write_text(dest, txt, *args, **kwargs)

    return GuardedStacIO()


@contextmanager
def refusals() -> Iterator[None]:
    """Re-raise a policy refusal that a library (pystac wraps what its StacIO raises in a STACError) buried
    in an exception chain, as itself."""
    try:
        yield
    except CatalogError:
        raise
    except Exception as exc:
        e = exc.__cause__ or exc.__context__
        while e is not None:
            if isinstance(e, CatalogError):
                raise e from None
            e = e.__cause__ or e.__context__
        raise


def request_guard(policy: AccessPolicy):
    """A pystac-client ``request_modifier`` that refuses requests (search pages, ``next`` links) outside
    ``policy`` before they are sent."""

    def guard(request: Any) -> None:
        check_href(request.url, policy, what="STAC API link")

    return guard


__all__ = [
    "AccessPolicy",
    "AllowEntry",
    "check_href",
    "check_items",
    "guarded_stac_io",
    "parse_allow",
    "refusals",
    "request_guard",
    "special_host",
    "violation",
]
