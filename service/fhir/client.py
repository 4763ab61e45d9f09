"""FHIR REST client for the EHR's `fhirServer` (CDS Hooks 2.0 §FHIR Resource Access).

The only module that talks HTTP.  Rules:
- reads and searches (GET) for hook calls; `put` (PUT [base]/Type/id) and `transaction` (POST
  [base]) for publishing content and loading sample data;
- `Accept: application/fhir+json`, `Authorization: Bearer <token>` when a token is given; the
  token appears in no exception text and in no log line;
- retries (idempotent GET/PUT only; a transaction POST is never repeated) on connection
  errors and 502/503/504, with a short backoff; timeouts are not retried (the EHR is waiting
  for the cards);
- errors are service.errors types: 401/403 FhirAuthError, 404/410 FhirNotFoundError, other
  4xx FhirRequestRefused (a FhirServerError), 5xx and non-JSON bodies FhirServerError,
  timeout FhirTimeout, no connection FhirUnavailable;
  an error from an HTTP answer carries that answer's status as `server_status`;
- a 200 body is returned as is, even an OperationOutcome (the caller decides);
- `fetch` reads a `Type/id` URL and searches any other; `rest_of` completes a searchset page the
  caller already holds (a paginated prefetch) exactly as `search_all` completes its first page:
  pages are merged here and nowhere else;
- `search_all` follows searchset `next` links on the base URL's origin only (the token must not
  leave it), up to `max_pages`; when it stops early the merged Bundle keeps the unfollowed
  `next` link, carries the `SUBSETTED` meta.tag, and a warning is logged; a `next` link back to a
  page already read is a server fault (FhirServerError), not data;
- with a call `budget` (service.fhir.budget): every timeout is bounded by the time left, a call
  whose time has run out ends with FhirTimeout, and the budget's deadline shuts down a read the
  server keeps waiting (one byte every few seconds); retries and their backoff fit in it too;
- an answer is read as a stream and refused past `max_response_bytes` (or past the bytes left in
  the budget) without reading the rest (FhirTooLarge); its JSON is parsed within
  service.jsonlimits (nesting depth, number size);
- error texts: the exception's `message` (log, command line) names the request and may quote the
  server's OperationOutcome (token scrubbed, one line, bounded); its `reason`, the only text a CDS
  client sees, is the service's own words (service.errors.FhirAccessError);
- the base URL passes service.fhir.outbound's rules (http(s), no user:password@, canonical host);
  URLs from the server (next links, redirect targets) are logged without credentials, escaped and
  bounded (service.logtext);
- absolute URLs (next links, redirects) are used only on the base URL's origin and without
  `user:password@` (requests would send those as Basic credentials instead of the token);
- redirects of a GET are followed only on the base URL's origin, at most MAX_REDIRECTS; a
  redirect to another origin is an error and that origin is never contacted (other methods
  follow no redirect).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from urllib.parse import quote, urljoin, urlsplit

import requests

from service import jsonlimits, metrics
from service.errors import (
    FhirAuthError,
    FhirNotFoundError,
    FhirRequestRefused,
    FhirServerError,
    FhirTimeout,
    FhirTooLarge,
    FhirUnavailable,
)
from service.fhir import outbound, transport
from service.fhir.budget import Budget
from service.logtext import shown, url_shown

log = logging.getLogger("service.fhir")

RETRY_STATUS = frozenset({502, 503, 504})
BACKOFF_SECONDS = 0.1  # doubled on each retry
MAX_REDIRECTS = 5
MAX_RESPONSE_BYTES = 20_000_000
CHUNK_BYTES = 64 * 1024
# FHIR R4 §Search (_summary/_elements): an incomplete resource is marked with this meta.tag.
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "subsetted"}
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII (RFC 6750 b64token is a subset)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_READ = re.compile(r"^[A-Za-z]+/[^/?]+$")


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


class FhirClient:
    """Reads and searches one FHIR server on behalf of one CDS call."""

    def __init__(self, base_url: str, access_token: str | None = None, timeout: float = 10.0,
                 retries: int = 2, max_pages: int = 20, session: requests.Session | None = None,
                 budget: Budget | None = None, max_response_bytes: int = MAX_RESPONSE_BYTES):
        outbound.parse(base_url, "FHIR base URL")
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self.retries = max(0, retries)
        self.max_pages = max(1, max_pages)
        self.max_response_bytes = max(1, max_response_bytes)
        self.budget = budget
        self._session = session
        self._token = access_token
        self._origin = origin(self.base_url)
        if access_token is not None and not _TOKEN_CHARS.match(access_token):
            raise FhirAuthError("the fhirAuthorization access token is not a usable bearer token",
                                reason="the fhirAuthorization access token is not a usable bearer token")

    def __repr__(self) -> str:  # never shows the token
        return f"FhirClient({self.base_url!r}, token={'yes' if self._token else 'no'})"

    # ---- public -----------------------------------------------------------------------------

    def get(self, url: str) -> dict:
        """GET a read or search, relative to the base URL (or absolute on the base's origin)."""
        with self._session_scope() as session:
            return self._get(session, self._resolve(url))

    def put(self, resource: dict, timeout: float | None = None) -> dict:
        """PUT [base]/[type]/[id] (create with that id, or update): the resource as stored."""
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        rid = resource.get("id") if isinstance(resource, dict) else None
        if not isinstance(rtype, str) or not rtype or not isinstance(rid, str) or not rid:
            raise ValueError("put needs a FHIR resource with resourceType and id")
        path = f"{quote(rtype, safe='')}/{quote(rid, safe='')}"
        with self._session_scope() as session:
            url = self._resolve(path)
            stored = self._send(session, "PUT", url, resource, timeout=timeout)
            if stored is None:  # the server answered without a body (Prefer: return=minimal)
                stored = self._get(session, url)
            return stored

    def transaction(self, bundle: dict, timeout: float | None = None) -> dict:
        """POST a transaction (or batch) Bundle to the base URL: the transaction-response Bundle.
        Not retried: the server may have committed it."""
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" \
                or bundle.get("type") not in ("transaction", "batch"):
            raise ValueError("transaction needs a Bundle of type transaction or batch")
        with self._session_scope() as session:
            response = self._send(session, "POST", self.base_url, bundle, timeout=timeout, retry=False)
        if response is None or response.get("resourceType") != "Bundle":
            kind = "no body" if response is None else f"a {shown(response.get('resourceType'), 40)!r}"
            raise FhirServerError(f"FHIR server answered {kind}, not a Bundle, to POST {self.base_url}",
                                  reason="the FHIR server did not answer the transaction with a Bundle")
        return response

    def fetch(self, url: str) -> dict:
        """A read (`Type/id`) with GET; any other URL as a search, with all its pages (search_all)."""
        return self.get(url) if is_read(url) else self.search_all(url)

    def search_all(self, url: str) -> dict:
        """GET a search and every `next` page: one searchset Bundle with all entries."""
        with self._session_scope() as session:
            first_url = self._resolve(url)
            first = self._get(session, first_url)
            if first.get("resourceType") != "Bundle":
                return first
            return self._merge_pages(session, first, first_url, {first_url}, 1)

    def rest_of(self, bundle: dict) -> dict:
        """A searchset page the caller already holds (e.g. prefetched by the EHR) with every page its
        `next` link leads to merged in, as search_all merges them; the page itself counts toward no
        `max_pages`.  A Bundle without a next link is returned as it is."""
        if _next_link(bundle) is None:
            return bundle
        with self._session_scope() as session:
            return self._merge_pages(session, bundle, self.base_url, set(), 0)

    # ---- internals --------------------------------------------------------------------------

    def _merge_pages(self, session: requests.Session, first: dict, first_url: str, seen: set[str],
                     pages: int) -> dict:
        """`first` with the entries of every page its `next` links lead to (see the module rules)."""
        merged = copy.deepcopy(first)
        merged["entry"] = _entries(first, first_url)
        page = first
        while (next_url := _next_link(page)) is not None:
            absolute = urljoin(self.base_url, next_url)
            if not self._on_origin(absolute):
                return self._incomplete(merged, next_url, f"next link {url_shown(absolute)} is not on the origin "
                                                          f"of {self.base_url}; not followed")
            if absolute in seen:
                log.warning("next link %s repeats a page already read; the search is not used", url_shown(absolute))
                raise FhirServerError(f"FHIR server's next link {url_shown(absolute)} repeats a page of the "
                                      f"search {first_url}",
                                      reason="the FHIR server's search pages link back to a page already read")
            if pages >= self.max_pages:
                return self._incomplete(merged, next_url, f"search {first_url} has more than {self.max_pages} "
                                                          "pages; stopped")
            page = self._get(session, absolute)
            if page.get("resourceType") != "Bundle":
                raise FhirServerError(f"FHIR server answered a {shown(page.get('resourceType'), 40)!r}, not a "
                                      f"Bundle, to GET {url_shown(absolute)}",
                                      reason="the FHIR server answered a search page that is not a Bundle")
            seen.add(absolute)
            pages += 1
            merged["entry"].extend(_entries(page, absolute))
        merged["link"] = [link for link in _links(first) if link.get("relation") != "next"]
        if not merged["entry"]:
            del merged["entry"]
        return merged

    @contextmanager
    def _session_scope(self) -> Iterator[requests.Session]:
        """A session for one public call, inside the budget when there is one (its sockets are then
        shut down at the deadline)."""
        with self.budget.active() if self.budget is not None else nullcontext():
            if self._session is not None:
                yield self._session
            else:
                with transport.session() as session:
                    yield session

    def _resolve(self, url: str) -> str:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
            if not self._on_origin(url):
                raise FhirServerError(f"refusing to send the access token to {url_shown(url)}: not the origin of "
                                      f"{self.base_url}", reason="a FHIR URL is not on the FHIR server's origin")
            return url
        return self.base_url + url.lstrip("/")

    def _headers(self) -> dict:
        headers = {"Accept": "application/fhir+json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _get(self, session: requests.Session, url: str) -> dict:
        body = self._send(session, "GET", url, None)
        assert body is not None, "_send answers None only to a write without a body, never to a GET"
        return body

    def _time_left(self, method: str, url: str) -> float | None:
        """Seconds left in the call's budget (None: no budget); FhirTimeout when there are none."""
        if self.budget is None:
            return None
        left = self.budget.remaining()
        if left <= 0:
            raise self._out_of_time(method, url)
        return left

    def _out_of_time(self, method: str, url: str) -> FhirTimeout:
        seconds = f"{self.budget.seconds:g}" if self.budget is not None else "?"
        log.warning("%s %s: the call's %s s for FHIR requests ran out", method, url_shown(url), seconds)
        return FhirTimeout(f"{method} {url_shown(url)} not done within the call's {seconds} s for FHIR requests",
                           reason=f"the FHIR requests did not finish within the {seconds} s this service allows "
                                  "for them")

    def _send(self, session: requests.Session, method: str, url: str, payload: dict | None,
              timeout: float | None = None, retry: bool = True) -> dict | None:
        """One FHIR request (retries and redirects included), timed for service.metrics."""
        started = time.perf_counter()
        try:
            body = self._exchange(session, method, url, payload, timeout, retry)
        except Exception as exc:
            metrics.fhir_request(method, time.perf_counter() - started, type(exc).__name__)
            raise
        metrics.fhir_request(method, time.perf_counter() - started)
        return body

    def _exchange(self, session: requests.Session, method: str, url: str, payload: dict | None,
                  timeout: float | None, retry: bool) -> dict | None:
        per_read = self.timeout if timeout is None else timeout
        headers = self._headers()
        data = None
        if payload is not None:
            headers["Content-Type"] = "application/fhir+json"
            headers["Prefer"] = "return=representation"
            data = json.dumps(payload).encode("utf-8")
        retries = self.retries if retry else 0
        attempt = redirects = 0
        while True:
            left = self._time_left(method, url)
            wait = per_read if left is None else min(per_read, left)
            started = time.perf_counter()
            try:
                response = session.request(method, url, headers=headers, data=data, timeout=(wait, wait),
                                           allow_redirects=False, stream=True)
            except requests.Timeout:
                if self.budget is not None and self.budget.expired():
                    raise self._out_of_time(method, url) from None
                log.warning("%s %s timed out after %.1f s", method, url_shown(url), wait)
                raise FhirTimeout(f"FHIR server did not answer {method} {url_shown(url)} within {wait:g} s",
                                  reason=f"the FHIR server did not answer within {wait:g} s") from None
            except requests.ConnectionError as exc:
                if self.budget is not None and self.budget.expired():
                    raise self._out_of_time(method, url) from None
                if attempt < retries:
                    attempt += 1
                    log.warning("%s %s: %s, retry %d/%d", method, url_shown(url), type(exc).__name__, attempt, retries)
                    self._backoff(attempt)
                    continue
                raise FhirUnavailable(f"FHIR server unreachable for {method} {url_shown(url)} "
                                      f"({type(exc).__name__})") from None
            except requests.RequestException as exc:
                raise FhirServerError(f"{method} {url_shown(url)} failed ({type(exc).__name__})",
                                      reason="the request to the FHIR server failed") from None
            with response:
                elapsed = (time.perf_counter() - started) * 1000
                log.debug("%s %s -> %d (%.0f ms)", method, url_shown(url), response.status_code, elapsed)
                if response.is_redirect and method == "GET":
                    url = self._redirect_target(response, url, redirects)
                    redirects += 1
                    continue
                if response.status_code in RETRY_STATUS and attempt < retries:
                    attempt += 1
                    log.warning("%s %s -> %d, retry %d/%d", method, url_shown(url), response.status_code, attempt,
                                retries)
                    self._backoff(attempt)
                    continue
                raw = self._read(response, method, url)
            if method != "GET" and 200 <= response.status_code < 300 and not raw.strip():
                return None  # 204, or 200/201 with Prefer: return=minimal
            return self._body(response.status_code, raw, url, method)

    def _backoff(self, attempt: int) -> None:
        pause = BACKOFF_SECONDS * 2 ** (attempt - 1)
        if self.budget is not None:
            pause = min(pause, max(0.0, self.budget.remaining()))
        time.sleep(pause)

    def _read(self, response: requests.Response, method: str, url: str) -> bytes:
        """The answer's body, streamed, refused past the size limit without reading the rest."""
        limit = self.max_response_bytes
        left = self.budget.bytes_left() if self.budget is not None else None
        if left is not None and left < limit:
            limit = max(0, left)
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large(method, url, limit)
        body = bytearray()
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                body += chunk
                if len(body) > limit:
                    raise self._too_large(method, url, limit)
                if self.budget is not None and self.budget.expired():
                    raise self._out_of_time(method, url)
        except requests.RequestException as exc:
            if self.budget is not None and self.budget.expired():
                raise self._out_of_time(method, url) from None
            if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
                raise FhirTimeout(f"FHIR server stopped sending its answer to {method} {url_shown(url)}",
                                  reason="the FHIR server did not send its whole answer in time") from None
            raise FhirUnavailable(f"FHIR server broke off its answer to {method} {url_shown(url)} "
                                  f"({type(exc).__name__})", reason="the FHIR server broke off its answer") from None
        if self.budget is not None:
            self.budget.spend(len(body))
        return bytes(body)

    def _too_large(self, method: str, url: str, limit: int) -> FhirTooLarge:
        log.warning("%s %s: answer larger than %d bytes; not read", method, url_shown(url), limit)
        return FhirTooLarge(f"FHIR server's answer to {method} {url_shown(url)} is larger than {limit} bytes",
                            reason=f"the FHIR server's answers are larger than the {limit} bytes this service "
                                   "reads for one call")

    def _on_origin(self, url: str) -> bool:
        """`url` is on the base URL's origin and carries no credentials (which would replace the token)."""
        return origin(url) == self._origin and "@" not in urlsplit(url).netloc

    def _redirect_target(self, response: requests.Response, url: str, redirects: int) -> str:
        """The Location of a redirect answered to GET `url`, if it may be followed."""
        target = urljoin(url, response.headers.get("location", ""))
        if not self._on_origin(target):
            log.warning("GET %s redirected to another origin or to a URL with credentials; not followed",
                        url_shown(url))
            raise FhirServerError(f"FHIR server redirected GET {url_shown(url)} to another origin or to a URL with "
                                  "credentials; not followed",
                                  reason="the FHIR server redirected to another origin; not followed")
        if redirects >= MAX_REDIRECTS:
            raise FhirServerError(f"FHIR server redirected GET {url_shown(url)} more than {MAX_REDIRECTS} times; "
                                  "stopped", reason=f"the FHIR server redirected more than {MAX_REDIRECTS} times")
        return target

    def _body(self, status: int, raw: bytes, url: str, method: str = "GET") -> dict:
        shown_url = url_shown(url)
        if status in (401, 403):
            raise FhirAuthError(f"FHIR server refused the access token ({status}) for {method} {shown_url}",
                                reason=f"the FHIR server refused the access token (HTTP {status})",
                                server_status=status)
        if status in (404, 410):
            raise FhirNotFoundError(f"FHIR server answered {status} to {method} {shown_url}",
                                    reason=f"the FHIR server answered HTTP {status}", server_status=status)
        if 400 <= status < 500:
            raise FhirRequestRefused(f"FHIR server answered {status} to {method} {shown_url}{self._diagnostics(raw)}",
                                     reason=f"the FHIR server answered HTTP {status}", server_status=status)
        if not 200 <= status < 300:
            raise FhirServerError(f"FHIR server answered {status} to {method} {shown_url}{self._diagnostics(raw)}",
                                  reason=f"the FHIR server answered HTTP {status}", server_status=status)
        try:
            body = jsonlimits.parse(raw)
        except jsonlimits.JsonRejected as exc:
            raise FhirServerError(f"FHIR server answered {method} {shown_url} with a body that is not usable JSON "
                                  f"({exc.message})", reason="the FHIR server's answer is not JSON this service "
                                                             "can read") from None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise FhirServerError(f"FHIR server answered {method} {shown_url} with JSON that is not a FHIR resource",
                                  reason="the FHIR server's answer is not a FHIR resource")
        return body

    def _diagnostics(self, raw: bytes) -> str:
        """': <first OperationOutcome diagnostics>' when the error body has one (token scrubbed,
        one line, bounded): for the log and the command line only."""
        try:
            issue = jsonlimits.parse(raw)["issue"][0]
            text = str(issue.get("diagnostics") or (issue.get("details") or {}).get("text") or "")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return ""
        if self._token:
            text = text.replace(self._token, "***")
        return f": {shown(text)}" if text else ""

    def _incomplete(self, merged: dict, next_url: str, reason: str) -> dict:
        log.warning("%s; the merged Bundle is marked SUBSETTED", reason)
        merged["link"] = [link for link in _links(merged) if link.get("relation") != "next"]
        merged["link"].append({"relation": "next", "url": next_url})
        if not isinstance(merged.get("meta"), dict):
            merged["meta"] = {}
        if not isinstance(merged["meta"].get("tag"), list):
            merged["meta"]["tag"] = []
        tags = merged["meta"]["tag"]
        if not any(t.get("code") == SUBSETTED["code"] for t in tags if isinstance(t, dict)):
            tags.append(dict(SUBSETTED))
        if not merged["entry"]:
            del merged["entry"]
        return merged


def is_read(url: str) -> bool:
    """`Type/id`: a read (FHIR R4 RESTful API §read), not a search."""
    return bool(_READ.match(url))


def _links(bundle: dict) -> list[dict]:
    links = bundle.get("link")
    return [link for link in links if isinstance(link, dict)] if isinstance(links, list) else []


def _entries(bundle: dict, url: str) -> list:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise FhirServerError(f"FHIR server answered GET {url_shown(url)} with a Bundle whose entry is not an array "
                              "of objects", reason="the FHIR server answered a Bundle that is not well formed")
    return list(entries)


def _next_link(bundle: dict) -> str | None:
    for link in _links(bundle):
        if link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None
