"""The one gate every endpoint passes before its handler (see routes.blueprint.before_request).

Rules, in order:
1. CORS preflight (OPTIONS) passes: browsers send it without credentials (Fetch standard).
2. Authentication (CDS Hooks 2.0 §Trusting CDS Clients; service.auth):
   - with trusted clients configured, every POST (hook calls, feedback, both `$apply`) needs a
     valid JWT whose `aud` is the exact URL called: `public_base_url` + path when configured,
     else the request's own root URL + path; so does the GET form of `$apply` (it names a
     patient).  Other GET requests (discovery, pages) carry no patient data and need none (the
     spec asks for authentication where a call "poses any risk of exposing sensitive data"), but
     a Bearer token sent with one is verified like any other, so a client's set-up errors show at
     discovery already;
   - open mode (no trusted clients, loopback bind only): callers from this machine only;
   - a failure is 401 with `WWW-Authenticate: Bearer` (plus `error="invalid_token"` when a token
     was sent, RFC 6750 §3.1) and an OperationOutcome that says only that; the reason goes to the
     log at INFO, never the token.
3. POST bodies are declared JSON (415).

`json_body()` reads the body within the input limits: at most `max_request_bytes` (413, checked
against Content-Length before reading, and while reading a chunked body), JSON within
service.jsonlimits (400 naming the rule broken: nesting depth, integer size, lone surrogates,
NaN; 413 for an array of more than `max_array_items`), and a body that stops arriving is a 408.

`fetchers()` gives the handlers the FHIR fetcher factory restricted to what the caller may name
(service.fhir.outbound): the authenticated client's `fhirServers`, or in open mode the rules
every outbound URL follows.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Request, current_app, g
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from service import jsonlimits
from service.auth import InvalidToken
from service.errors import InputTimeout, InvalidRequest, NotAuthenticated, NotJson, TooLarge
from service.fhir import outbound
from service.logtext import shown

log = logging.getLogger("service.auth")
_PUBLIC_METHODS = ("GET", "HEAD")


def guard(request: Request) -> None:
    authenticate(request)
    if request.method == "POST":
        mimetype = (request.mimetype or "").lower()
        if mimetype != "application/json" and not mimetype.endswith("+json"):
            raise NotJson(f"Content-Type must be application/json, got '{shown(request.mimetype or 'none', 100)}'")


def public_root(request: Request, public_base_url: str) -> str:
    """The root URL the service is reached at, without a trailing slash: `public_base_url` when
    configured (behind a proxy), else this request's root URL."""
    return (public_base_url or request.url_root).rstrip("/")


def audience(request: Request, public_base_url: str) -> str:
    """The URL the caller called, as its token's `aud` must name it (CDS Hooks 2.0 §Trusting CDS Clients)."""
    return public_root(request, public_base_url) + request.path


def authenticate(request: Request) -> None:
    g.cds_client = None
    if request.method == "OPTIONS":
        return
    runtime = current_app.extensions["cds"]
    verifier = runtime.authenticator
    if verifier is None:
        if not outbound.is_loopback_host(request.remote_addr or ""):
            _refuse(request, InvalidToken(f"open mode serves loopback callers only, not {request.remote_addr!r}",
                                          missing=True))
        return
    authorization = request.headers.get("Authorization")
    public = request.method in _PUBLIC_METHODS and not request.path.endswith("/$apply")
    if public and not (authorization or "").strip().lower().startswith("bearer "):
        return
    try:
        g.cds_client = verifier.verify(authorization, audience(request, runtime.config.public_base_url))
    except InvalidToken as exc:
        _refuse(request, exc)


def _refuse(request: Request, exc: InvalidToken) -> None:
    log.info("401 %s %s: %s", request.method, shown(request.path), shown(exc.reason))
    if exc.missing:
        raise NotAuthenticated("authentication required", token_sent=False)
    raise NotAuthenticated("invalid token", token_sent=True)


def fetchers(runtime, field: str):
    """The runtime's fetcher factory, restricted to the FHIR servers this caller may name in `field`."""
    client = g.get("cds_client")
    return outbound.restrict(runtime.fetcher_factory, None if client is None else client.fhir_servers, field)


def json_body(request: Request) -> Any:
    config = current_app.extensions["cds"].config
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise TooLarge(f"the request body is larger than {config.max_request_bytes} bytes") from None
    except ClientDisconnected as exc:
        if isinstance(exc.__context__, TimeoutError):  # the serving layer stopped waiting (service.serving)
            raise InputTimeout("the request body did not arrive in time") from None
        raise InvalidRequest("the request body ended before its declared length") from None
    except TimeoutError:
        raise InputTimeout("the request body did not arrive in time") from None
    if not raw.strip():
        raise InvalidRequest("request body is empty; a JSON object is required")
    try:
        return jsonlimits.parse(raw, max_items=config.max_array_items)
    except jsonlimits.JsonRejected as exc:
        error = TooLarge if exc.too_large else InvalidRequest
        raise error(f"request body: {exc.message}", expression=exc.path or None) from None
