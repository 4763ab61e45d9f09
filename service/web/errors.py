"""Errors -> HTTP responses with a FHIR OperationOutcome body; never a stack trace.

ANSWERS is the one table from a domain error type (service.errors) to the HTTP status and the
OperationOutcome issue code (http://hl7.org/fhir/issue-type) it is answered with; an error's
most specific type listed decides.  Data the service needs but cannot get is 412 (CDS Hooks 2.0
§Prefetch: "the CDS Service ... SHOULD return a 412"), said with the FHIR failure's own code.
A 401 carries `WWW-Authenticate: Bearer`, with `error="invalid_token"` when a token was sent
(RFC 6750 §3, §3.1).
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from service.errors import (
    DataUnavailable,
    FhirAccessError,
    FhirAuthError,
    FhirNotFoundError,
    FhirServerError,
    FhirTimeout,
    FhirTooLarge,
    FhirUnavailable,
    InputTimeout,
    InvalidRequest,
    Issue,
    NotAuthenticated,
    NotFound,
    NotJson,
    NotPermitted,
    ServiceError,
    TooLarge,
    Unprocessable,
)
from service.logtext import shown

log = logging.getLogger("service.web")

ANSWERS: dict[type[ServiceError], tuple[int, str]] = {
    InvalidRequest: (400, "invalid"),
    NotAuthenticated: (401, "login"),
    NotPermitted: (403, "forbidden"),
    NotFound: (404, "not-found"),
    InputTimeout: (408, "timeout"),
    DataUnavailable: (412, "incomplete"),
    FhirAccessError: (412, "incomplete"),
    FhirTimeout: (412, "timeout"),
    FhirUnavailable: (412, "transient"),
    FhirAuthError: (412, "security"),
    FhirNotFoundError: (412, "not-found"),
    FhirServerError: (412, "exception"),
    FhirTooLarge: (412, "too-costly"),
    TooLarge: (413, "too-costly"),
    NotJson: (415, "not-supported"),
    Unprocessable: (422, "processing"),
    ServiceError: (500, "exception"),
}
_HTTP_ISSUE = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}


def answer(error: ServiceError) -> tuple[int, dict]:
    """The HTTP status and OperationOutcome for `error`."""
    status, code = next(ANSWERS[t] for t in type(error).__mro__ if t in ANSWERS)
    issues = error.issues or [Issue(code, error.detail, expression=(error.expression,) if error.expression else ())]
    return status, {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


def outcome_response(status: int, outcome: dict):
    response = jsonify(outcome)
    response.status_code = status
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError):
        status, outcome = answer(exc)
        log.info("%s %s", status, shown(exc.message, 500))
        response = outcome_response(status, outcome)
        if isinstance(exc, NotAuthenticated):
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if exc.token_sent else "Bearer"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = exc.code or 500
        outcome = {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": _HTTP_ISSUE.get(code, "processing"),
             "diagnostics": exc.description or exc.name}]}
        return outcome_response(code, outcome)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        outcome = {"resourceType": "OperationOutcome", "issue": [
            {"severity": "fatal", "code": "exception", "diagnostics": "internal error; see the service log"}]}
        return outcome_response(500, outcome)
