"""Typed errors of the service; no Flask here.

Every error that can reach a client carries an HTTP status and one or more FHIR
OperationOutcome issues (R4 `OperationOutcome.issue`: severity, code, diagnostics,
expression).  `service.web` maps them to responses in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue (codes from http://hl7.org/fhir/issue-type)."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_fhir(self) -> dict:
        issue = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


class ServiceError(Exception):
    """An error answered to the client with `status` and an OperationOutcome."""

    status = 500
    issue_code = "exception"

    def __init__(self, message: str, *, issues: list[Issue] | None = None, expression: str | None = None):
        super().__init__(message)
        self.message = message
        self.issues = issues or [
            Issue(self.issue_code, message, expression=(expression,) if expression else ())
        ]

    def operation_outcome(self) -> dict:
        return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in self.issues]}


class BadRequest(ServiceError):
    """400: the body is not JSON, or is JSON that breaks the protocol's schema."""

    status = 400
    issue_code = "invalid"


class Unauthorized(ServiceError):
    """401: the caller's credentials are missing or not acceptable.  `challenge` is the
    `WWW-Authenticate` header value (RFC 6750 §3)."""

    status = 401
    issue_code = "login"

    def __init__(self, message: str, *, challenge: str = "Bearer"):
        super().__init__(message)
        self.challenge = challenge


class Forbidden(ServiceError):
    """403: the caller is known but may not ask for this (e.g. a FHIR server it is not trusted to name)."""

    status = 403
    issue_code = "forbidden"


class NotFound(ServiceError):
    """404: no such service, resource or card."""

    status = 404
    issue_code = "not-found"


class MethodNotAllowed(ServiceError):
    status = 405
    issue_code = "not-supported"


class RequestTimeout(ServiceError):
    """408: the request's body did not arrive within the time the service waits for it."""

    status = 408
    issue_code = "timeout"


class PayloadTooLarge(ServiceError):
    """413: the request is larger than the service accepts (body bytes, array items, feedback items)."""

    status = 413
    issue_code = "too-costly"


class UnsupportedMediaType(ServiceError):
    """415: the request body is not declared as JSON."""

    status = 415
    issue_code = "not-supported"


class PreconditionFailed(ServiceError):
    """412: data the service needs is neither prefetched nor fetchable (CDS Hooks 2.0 §Prefetch)."""

    status = 412
    issue_code = "incomplete"


class Unprocessable(ServiceError):
    """422: well-formed but semantically unusable (e.g. feedback for a card never issued)."""

    status = 422
    issue_code = "processing"


# ---- FHIR server access (raised by service.fhir, answered as 412 by the hook layer) ----


class FhirAccessError(PreconditionFailed):
    """The EHR's FHIR server could not supply data the service needs.

    Two texts: `message` says what happened to which request, for the log and the command line
    (it may quote the other server's error text, scrubbed of the token); the OperationOutcome a
    CDS client gets holds only `reason`, said in the service's own words.  Text from another
    server is never passed on to a client: it may carry anything, the access token included."""

    default_reason = "the FHIR server could not supply the data"

    def __init__(self, message: str, *, reason: str | None = None, expression: str | None = None):
        super().__init__(message, expression=expression)
        self.reason = reason or self.default_reason
        self.expression = expression
        self.issues = [Issue(self.issue_code, self.reason, expression=(expression,) if expression else ())]
        self.http_status: int | None = None

    def about(self, subject: str, expression: str | None = None) -> "FhirAccessError":
        """The same failure said of `subject` (e.g. "prefetch key 'observations'")."""
        error = type(self)(f"{subject}: {self.message}", reason=f"{subject}: {self.reason}",
                           expression=expression or self.expression)
        error.http_status = self.http_status
        return error


class FhirTimeout(FhirAccessError):
    issue_code = "timeout"
    default_reason = "the FHIR server did not answer in time"


class FhirUnavailable(FhirAccessError):
    issue_code = "transient"
    default_reason = "the FHIR server is unreachable"


class FhirAuthError(FhirAccessError):
    """The FHIR server answered 401/403 to the bearer token the EHR gave us."""

    issue_code = "security"
    default_reason = "the FHIR server refused the access token"


class FhirNotFoundError(FhirAccessError):
    issue_code = "not-found"
    default_reason = "the FHIR server does not have the resource"


class FhirServerError(FhirAccessError):
    issue_code = "exception"
    default_reason = "the FHIR server's answer could not be used"


class FhirTooLarge(FhirServerError):
    """The FHIR server's answers are larger than the service reads for one call."""

    issue_code = "too-costly"
    default_reason = "the FHIR server's answer is larger than this service reads"


# ---- configuration (raised at start; the service refuses to start) ----


class ConfigurationError(Exception):
    """The configuration cannot be served safely or is malformed; the message says what to change."""


# ---- authored content (raised at load; the service refuses to start) ----


class ContentError(Exception):
    """Authored content is invalid; names the file and the path inside it."""

    def __init__(self, file: str, path: str, message: str):
        super().__init__(f"{file}: {path}: {message}")
        self.file = file
        self.path = path
        self.message = message


class ContentErrors(Exception):
    """All the problems found in one content set, reported together."""

    def __init__(self, errors: list[ContentError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


# ---- FHIRPath ----


class ExpressionError(Exception):
    """A FHIRPath expression could not be parsed (at load) or evaluated (at run time)."""

    def __init__(self, expression: str, message: str):
        super().__init__(f"{message} in expression {expression!r}")
        self.expression = expression
        self.message = message


class UnsupportedLanguage(ExpressionError):
    """The expression language is not text/fhirpath (e.g. text/cql)."""
