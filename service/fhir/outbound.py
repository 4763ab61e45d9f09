"""Where the service may send requests: the rules every outbound URL passes before a
connection is made (CDS Hooks 2.0 §Security and Safety; the allowlist is what the
§Trusting CDS Clients agreement lets a client name).

Every outbound base URL (an EHR's `fhirServer`, a `$apply` `dataEndpoint`, a JWK Set `jku`,
the content server):
- is absolute `http` or `https`, with no user name or password in it (`user:pw@host` would
  replace the bearer token by Basic credentials and put a password in logs);
- names its host canonically: a DNS name whose last label starts with a letter, a dotted-quad
  IPv4 address or a bracketed IPv6 address (so `http://2130706433/`, `0x7f.1` or `127.1`, which
  resolvers read as 127.0.0.1, are refused rather than guessed at);
- has no query or fragment, no `.`/`..` path segment, no encoded `/` or `\\` in its path
  (an allowlisted prefix must mean what it says).

A URL a trusted client names must, in addition, be `https` unless its host is loopback, and
lie under one of that client's `fhirServers`: same scheme, host and port (default ports made
explicit) and a path equal to, or below, the listed path.  `restrict(factory, allowed)` wraps the
per-call fetcher factory with these checks: the rules for every URL when the call names it (400),
the allowlist when the service is about to use it (403; a client that prefetches everything may
name a server it is not trusted with: it is never contacted).  Either way the check comes before
any FhirClient, and so any connection, exists.  Messages never repeat the URL (it may carry
credentials).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from service.errors import InvalidRequest, NotPermitted
from service.fhir.reader import FhirReader, ReaderFactory

_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_LAST_LABEL = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)


class UnsafeUrl(InvalidRequest):
    """400: an outbound URL breaks the rules above (the message names the field, not the URL)."""


@dataclass(frozen=True)
class BaseUrl:
    """A checked base URL, normalised for comparison."""

    scheme: str
    host: str
    port: int
    path: str  # without a trailing "/"; "" for the root

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)

    def contains(self, other: BaseUrl) -> bool:
        """`other` is this URL or below it (same origin, path prefix at a segment boundary)."""
        return (self.scheme, self.host, self.port) == (other.scheme, other.host, other.port) and (
            other.path == self.path or other.path.startswith(self.path + "/"))


def is_loopback_host(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1 (brackets and one trailing dot allowed)."""
    host = host.strip().lower().strip("[]").removesuffix(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _canonical_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return "%" not in host  # no IPv6 zone ids
    except ValueError:
        pass
    if not host.isascii() or len(host) > 253:
        return False
    labels = host.split(".")
    return all(_LABEL.match(label) for label in labels) and bool(_LAST_LABEL.match(labels[-1]))


def parse(url: Any, field: str = "fhirServer") -> BaseUrl:
    """Check `url` against the rules every outbound base URL follows; UnsafeUrl if it breaks one."""

    def refuse(why: str) -> UnsafeUrl:
        return UnsafeUrl(f"{field} {why}", expression=field)

    if not isinstance(url, str) or not url:
        raise refuse("must be an absolute http(s) URL")
    if _FORBIDDEN_CHARS.search(url):
        raise refuse("must not contain spaces, control characters or backslashes")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise refuse("must be an absolute http(s) URL")
    if "@" in parts.netloc:
        raise refuse("must not carry user credentials (user:password@host)")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise refuse("must be a base URL, without query or fragment")
    host = (parts.hostname or "").removesuffix(".")
    if not host or not _canonical_host(host):
        raise refuse("must name its host as a DNS name, a dotted-quad IPv4 or a bracketed IPv6 address")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise refuse("has an invalid port") from None
    if _ENCODED_SEPARATOR.search(parts.path):
        raise refuse("must not contain an encoded '/' or '\\' in its path")
    segments = parts.path.split("/")
    if any(unquote(s) in (".", "..") for s in segments):
        raise refuse("must not contain '.' or '..' path segments")
    return BaseUrl(scheme, host, port, parts.path.rstrip("/"))


def parse_trusted(url: Any, field: str = "fhirServer") -> BaseUrl:
    """`parse`, and https unless the host is loopback (what an allowlist may hold)."""
    base = parse(url, field)
    if base.scheme != "https" and not base.loopback:
        raise UnsafeUrl(f"{field} must use https (plain http only on a loopback host)", expression=field)
    return base


def check_trusted(url: Any, allowed: Iterable[BaseUrl], field: str = "fhirServer") -> BaseUrl:
    """The URL a trusted client named: refused unless it lies under one of `allowed`."""
    base = parse_trusted(url, field)
    if not any(a.contains(base) for a in allowed):
        raise NotPermitted(f"{field} is not a FHIR server this CDS client is trusted to name", expression=field)
    return base


def restrict(factory: ReaderFactory, allowed: Iterable[BaseUrl] | None, field: str = "fhirServer") -> ReaderFactory:
    """`factory` with the outbound checks applied first.  `allowed` None: the rules for every
    URL only (no trusted clients configured); otherwise the calling client's FHIR servers, checked
    when the first request is made (a call whose data all came with it never needs the server)."""
    allowed = None if allowed is None else tuple(allowed)

    def guarded(base_url: str, token: str | None) -> FhirReader:
        parse(base_url, field)
        if allowed is None:
            return factory(base_url, token)

        def make() -> FhirReader:
            check_trusted(base_url, allowed, field)
            return factory(base_url, token)

        return _Checked(make)

    return guarded


class _Checked:
    """A FhirReader made (and its server checked) on first use."""

    def __init__(self, make: Callable[[], FhirReader]):
        self._make = make
        self._reader: FhirReader | None = None

    def _get(self) -> FhirReader:
        if self._reader is None:
            self._reader = self._make()
        return self._reader

    def fetch(self, url: str) -> dict:
        return self._get().fetch(url)

    def rest_of(self, bundle: dict) -> dict:
        return self._get().rest_of(bundle)
