"""Exceptions -> HTTP responses with a FHIR OperationOutcome body; never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from service.errors import ServiceError, Unauthorized
from service.logtext import shown

log = logging.getLogger("service.web")
_HTTP_ISSUE = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}


def outcome_response(status: int, outcome: dict):
    response = jsonify(outcome)
    response.status_code = status
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError):
        log.info("%s %s", exc.status, shown(exc.message, 500))
        response = outcome_response(exc.status, exc.operation_outcome())
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = exc.challenge
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code = exc.code or 500
        outcome = {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": _HTTP_ISSUE.get(code, "processing"), "diagnostics": exc.description or exc.name}]}
        return outcome_response(code, outcome)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        outcome = {"resourceType": "OperationOutcome", "issue": [
            {"severity": "fatal", "code": "exception", "diagnostics": "internal error; see the service log"}]}
        return outcome_response(500, outcome)
