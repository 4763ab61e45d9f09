"""Shared pieces of the conformance tests: the base request (on the synthetic content,
tests/protocol_content.py), OperationOutcome checks, a JSON walker for the spec's "no null or
empty elements" rule, and the prefetch-template parser that checks §Prefetch query restrictions."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

from tests.protocol_content import patient_view_request

HOOK_INSTANCE = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
SUPPORTED_HOOKS = ("patient-view", "order-select", "order-sign")
# Hook library (cds-hooks.hl7.org/hooks/STU1): context fields a service MAY use as prefetch tokens.
TOKEN_FIELDS = {
    "patient-view": {"userId", "patientId", "encounterId"},
    "order-select": {"userId", "patientId", "encounterId"},
    "order-sign": {"userId", "patientId", "encounterId"},
}
USER_TOKENS = {"userPractitionerId", "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}
TOKEN = re.compile(r"\{\{(.*?)\}\}")


def base_request() -> dict:
    """A proto-patient-view call with every key prefetched (tests/fixtures/requests/patient-view-high.json)."""
    return patient_view_request()


def draft_orders() -> dict:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "MedicationRequest", "id": "rx1", "status": "draft", "intent": "order",
        "medicationCodeableConcept": {"text": "something"}, "subject": {"reference": "Patient/p1"}}}]}


def minimal_request(hook: str, prefetch_keys=()) -> dict:
    """A valid call for `hook` whose prefetch sends every given key as null (no data)."""
    context: dict = {"userId": "Practitioner/u1", "patientId": "p1", "encounterId": "e1"}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = draft_orders()
    if hook == "order-select":
        context["selections"] = ["MedicationRequest/rx1"]
    return {"hook": hook, "hookInstance": HOOK_INSTANCE, "context": context,
            "prefetch": {key: None for key in prefetch_keys}}


def outcome(response, status: int) -> list[dict]:
    """The issues of a FHIR OperationOutcome answered with `status` (never a stack trace)."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"] and all(i["severity"] in ("fatal", "error", "warning", "information") for i in body["issue"])
    assert "Traceback" not in text
    return body["issue"]


def issue_text(issues: list[dict]) -> str:
    return " ".join(i.get("diagnostics", "") + " " + " ".join(i.get("expression", [])) for i in issues)


def empties(value: Any, path: str = "") -> list[str]:
    """Paths of null, "", [] and {} anywhere in a JSON value (§Use of JSON)."""
    found = []
    if value is None or value == "" or value == [] or value == {}:
        return [path or "(root)"]
    if isinstance(value, dict):
        for key, item in value.items():
            found += empties(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += empties(item, f"{path}[{i}]")
    return found


def cards_of(responses) -> Iterator[tuple[str, dict, dict]]:
    """(case id, request, card) over the collected scenario responses."""
    for case_id, request, body in responses:
        for card in body["cards"]:
            yield case_id, request, card


# ---- §Prefetch query restrictions ----------------------------------------------------------

# Parameters of the RECOMMENDED subset, by kind.  Reference/token parameters are compared by
# equality (a comma list is a search OR); `:in` is the only modifier allowed on tokens.
REFERENCE_PARAMS = {"patient", "subject", "encounter", "requester", "performer"}
TOKEN_PARAMS = {"_id", "code", "status", "category", "clinical-status", "verification-status", "intent",
                "type", "identifier"}
DATE_PARAMS = {"date", "authoredon", "onset-date", "recorded-date", "occurrence", "issued", "period"}
DATE_PREFIXES = ("eq", "lt", "gt", "ge", "le")


def query_restriction_findings(template: str) -> list[str]:
    """What in one prefetch template is outside the §Prefetch query restrictions subset."""
    filled = TOKEN.sub("X", template)
    parts = urlsplit(filled)
    findings = []
    if "?" not in filled:
        if not re.fullmatch(r"[A-Z][A-Za-z]+/[^/?]+", parts.path):
            findings.append(f"{template!r} is neither an instance read nor a type-level search")
        return findings
    if not re.fullmatch(r"[A-Z][A-Za-z]+", parts.path):
        findings.append(f"{template!r} is not a type-level search")
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        base, _, modifier = name.partition(":")
        if base in REFERENCE_PARAMS and not modifier:
            continue
        if base in TOKEN_PARAMS and modifier in ("", "in"):
            continue
        if base in DATE_PARAMS and not modifier and (value == "X" or value[:2] in DATE_PREFIXES):
            continue
        if base == "_count" and not modifier and value.isdigit():
            continue
        if base == "_sort" and not modifier:
            continue
        findings.append(f"{name}={value}")
    return findings


def tokens(template: str) -> list[str]:
    return [t.strip() for t in TOKEN.findall(template)]


# ---- a real FHIR server stub (stdlib http.server on a free loopback port) -----------------------


@dataclass
class Seen:
    """One GET the stub received: path below /fhir/, parsed query, headers, and the decoded
    relative URL (`Observation?patient=1`)."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    url: str


class FhirStub:
    """A FHIR server on 127.0.0.1:<free port>/fhir.  `answer(seen) -> (status, body, delay_s)`."""

    def __init__(self, answer):
        self.answer = answer
        self.seen: list[Seen] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                parts = urlsplit(self.path)
                path = parts.path.removeprefix("/fhir/")
                url = unquote(path + ("?" + parts.query if parts.query else ""))
                seen = Seen(path, parse_qs(parts.query), dict(self.headers.items()), url)
                stub.seen.append(seen)
                status, body, delay = stub.answer(seen)
                time.sleep(delay)
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the service gave up (timeout)
                    pass

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def urls(self) -> list[str]:
        return [s.url for s in self.seen]


def outcome_body(code: str, text: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


def searchset(entries: list, next_url: str | None = None) -> dict:
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle
