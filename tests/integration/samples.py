"""Helpers for the integration tests that put sample patients on the FHIR server and call hooks
without prefetch.  Ids get a per-run prefix, so repeated runs and cases that reuse ids
(Condition/cond-1 ...) do not overwrite each other, even on a persistent server (HAPI)."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime
from pathlib import Path

from service.content.publish import LoadReport, load_document, rewrite_references
from service.fhir.client import FhirClient

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "plandefinitions" / "tests"
RUN = uuid.uuid4().hex[:8]  # one per test run


def case(relative: str) -> dict:
    return json.loads((CASES / relative).read_text())


def case_now(data: dict) -> datetime:
    return datetime.fromisoformat(data["now"].replace("Z", "+00:00"))


def load_case(client: FhirClient, data: dict, label: str, extra: list[dict] | None = None) -> LoadReport:
    """Store the case's prefetch resources (plus `extra`) with ids prefixed `<RUN>-<label>-`."""
    document = copy.deepcopy(data)
    if extra:
        document["request"]["prefetch"]["_extra"] = {
            "resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in extra]}
    report = load_document(client, document, label, id_mode="auto", id_prefix=f"{RUN}-{label}-")
    assert isinstance(report, LoadReport), report
    return report


def request_without_prefetch(data: dict, report: LoadReport, base_url: str, token: str | None = None) -> dict:
    """The case's request with no prefetch, pointing at the server and at the stored ids."""
    request = copy.deepcopy(data["request"])
    request.pop("prefetch", None)
    context = request["context"]
    context["patientId"] = report.id_of(f"Patient/{context['patientId']}")
    if context.get("encounterId"):
        context["encounterId"] = report.id_of(f"Encounter/{context['encounterId']}")
    rewrite_references(context.get("draftOrders"), {old: new for old, new in report.ids.items()})
    request["fhirServer"] = base_url
    if token is not None:
        request["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                        "scope": "user/*.read", "subject": "dah-cds"}
    return request


def cards_digest(response: dict) -> list[tuple]:
    """What must match between a prefetched and a fetched call: rule, indicator, summary."""
    return sorted((c["source"].get("topic", {}).get("code"), c["indicator"], c["summary"]) for c in response["cards"])


def topics(response: dict) -> list[str]:
    return sorted(c["source"].get("topic", {}).get("code") for c in response["cards"])
