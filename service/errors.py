"""Typed errors of the service, said in the service's own terms; no Flask, no protocol status.

An error that can reach a client is a `ServiceError`; `service.web.errors` maps each type to its
answer (status and OperationOutcome issue code, R4 `OperationOutcome.issue`) in one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue (codes from http://hl7.org/fhir/issue-type)."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


class ServiceError(Exception):
    """An error a caller is told about.  `message` is for the log and the command line; `issues`,
    when given, are the OperationOutcome issues a client sees (e.g. every violation of a request),
    otherwise service.web.errors makes one issue of `detail` at `expression`."""

    def __init__(self, message: str, *, issues: list[Issue] | None = None, expression: str | None = None):
        super().__init__(message)
        self.message = message
        self.issues = list(issues or [])
        self.expression = expression

    @property
    def detail(self) -> str:
        """The text a client may see."""
        return self.message


class InvalidRequest(ServiceError):
    """The body is not JSON, or is JSON that breaks the protocol's schema or the operation's parameters."""


class NotAuthenticated(ServiceError):
    """The caller's credentials are missing (`token_sent` False) or not acceptable (RFC 6750 §3.1)."""

    def __init__(self, message: str, *, token_sent: bool):
        super().__init__(message)
        self.token_sent = token_sent


class NotPermitted(ServiceError):
    """The caller is known but may not ask for this (e.g. a FHIR server it is not trusted to name)."""


class NotFound(ServiceError):
    """No such service, resource or card."""


class InputTimeout(ServiceError):
    """The request's body did not arrive within the time the service waits for it."""


class TooLarge(ServiceError):
    """The request is larger than the service accepts (body bytes, array items, feedback items)."""


class NotJson(ServiceError):
    """The request body is not declared as JSON."""


class DataUnavailable(ServiceError):
    """Data the service needs is neither sent nor fetchable (CDS Hooks 2.0 §Prefetch)."""


class Unprocessable(ServiceError):
    """Well-formed but semantically unusable (e.g. feedback for a card never issued)."""


# ---- FHIR server access (raised by service.fhir; a hook call answers it as data unavailable) ----


class FhirAccessError(DataUnavailable):
    """The EHR's FHIR server could not supply data the service needs.

    Two texts: `message` says what happened to which request, for the log and the command line
    (it may quote the other server's error text, scrubbed of the token); the OperationOutcome a
    CDS client gets holds only `reason`, said in the service's own words.  Text from another
    server is never passed on to a client: it may carry anything, the access token included.
    `server_status` is the status the FHIR server answered with, when it answered."""

    default_reason = "the FHIR server could not supply the data"

    def __init__(self, message: str, *, reason: str | None = None, expression: str | None = None,
                 server_status: int | None = None):
        super().__init__(message, expression=expression)
        self.reason = reason or self.default_reason
        self.server_status = server_status

    @property
    def detail(self) -> str:
        return self.reason

    def about(self, subject: str, expression: str | None = None) -> FhirAccessError:
        """The same failure said of `subject` (e.g. "prefetch key 'observations'")."""
        return type(self)(f"{subject}: {self.message}", reason=f"{subject}: {self.reason}",
                          expression=expression or self.expression, server_status=self.server_status)


class FhirTimeout(FhirAccessError):
    default_reason = "the FHIR server did not answer in time"


class FhirUnavailable(FhirAccessError):
    default_reason = "the FHIR server is unreachable"


class FhirAuthError(FhirAccessError):
    """The FHIR server answered 401/403 to the bearer token the EHR gave us."""

    default_reason = "the FHIR server refused the access token"


class FhirNotFoundError(FhirAccessError):
    default_reason = "the FHIR server does not have the resource"


class FhirServerError(FhirAccessError):
    default_reason = "the FHIR server's answer could not be used"


class FhirRequestRefused(FhirServerError):
    """The FHIR server refused the request itself as one it will not carry out (an answer in the 4xx class
    other than the token or a missing resource), e.g. client-assigned ids it does not allow."""

    default_reason = "the FHIR server refused the request"


class FhirTooLarge(FhirServerError):
    """The FHIR server's answers are larger than the service reads for one call."""

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
