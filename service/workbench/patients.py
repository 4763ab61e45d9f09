"""Where a dry run's patient comes from: a scenario case, a FHIR Bundle file, or a FHIR server.

Rules:
- A scenario case (plandefinitions/tests/README.md) is a CDS Hooks request with its moment `now`
  and its service: run as it is, at its own `now` (as tests/scenarios does), unless told otherwise.
- Moving a case in time (`shift`) moves every date and dateTime in its request by the same amount,
  keeping each value's precision and zone, so the patient's history keeps its shape around the new
  moment (data ages, durations and freshness windows read the same).
- A Bundle file (a collection, transaction or searchset) becomes the prefetch of a service: each
  prefetch key gets the Bundle's resources of the key's type (the Patient key: the Patient
  itself); resources of a type no key asks for (an Encounter's Location) go with every key whose
  query `_include`s other resources.  The engine reads the data, not the searches: what a key's
  search would have filtered out, its FHIRPath filters out too.
- A FHIR server: the request names `fhirServer` and sends no prefetch; the data layer fetches each
  key with the service's own templates, as a hook call without prefetch does.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from service.engine import PlanDef

_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
_DATETIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?)(Z|[+-]\d\d:\d\d)$")


@dataclass(frozen=True)
class Case:
    """A scenario case file, read."""

    path: Path
    description: str
    now: datetime
    service: str
    request: dict
    expect: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.stem}"

    @property
    def golden(self) -> Path:
        return self.path.with_name(self.path.stem + ".response.json")


def parse_moment(text: str) -> datetime:
    """An ISO 8601 date or dateTime; without a zone it is UTC (a date: midnight UTC)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def is_case(document: Any) -> bool:
    return isinstance(document, dict) and "request" in document and "service" in document and "now" in document


def read_case(path: Path) -> Case:
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not is_case(raw):
        raise ValueError(f"{path}: not a scenario case (needs now, service and request)")
    return Case(path, raw.get("description", ""), parse_moment(raw["now"]), raw["service"], raw["request"],
                raw.get("expect") or {})


def shift(value: Any, by: timedelta) -> Any:
    """`value` with every FHIR date and dateTime string moved by `by` (precision and zone kept)."""
    if isinstance(value, dict):
        return {k: shift(v, by) for k, v in value.items()}
    if isinstance(value, list):
        return [shift(v, by) for v in value]
    if not isinstance(value, str):
        return value
    if _DATE.match(value):
        return (date.fromisoformat(value) + timedelta(days=round(by.total_seconds() / 86400))).isoformat()
    match = _DATETIME.match(value)
    if match is None:
        return value
    moved = datetime.fromisoformat(value.replace("Z", "+00:00")) + by
    body, zone = match.groups()
    if "." in body:
        text = moved.isoformat(timespec="milliseconds")
    elif body.count(":") == 2:
        text = moved.isoformat(timespec="seconds")
    else:
        text = moved.isoformat(timespec="minutes")
    text = text[: -6] if moved.utcoffset() is not None else text
    return text + zone


def bundle_resources(document: dict) -> list[dict]:
    """The resources of a Bundle (or the resource itself)."""
    if document.get("resourceType") != "Bundle":
        return [document]
    entries = document.get("entry", [])
    return [e["resource"] for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def bundle_prefetch(plan: PlanDef, resources: list[dict]) -> dict[str, Any]:
    """The plan's prefetch keys filled from a Bundle's resources, by type (see the module rules)."""
    asked = {dr.type for dr in plan.data_requirements.values()}
    others = [r for r in resources if r.get("resourceType") not in asked]
    prefetch: dict[str, Any] = {}
    for key, dr in plan.data_requirements.items():
        if dr.type == "Patient":
            prefetch[key] = next((r for r in resources if r.get("resourceType") == "Patient"), None)
            continue
        chosen = [r for r in resources if r.get("resourceType") == dr.type]
        if dr.query and "_include" in dr.query:
            chosen += others
        prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(chosen),
                         "entry": [{"resource": r} for r in chosen]}
    return prefetch


def patient_id(resources: list[dict]) -> str:
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    if patient is None or not patient.get("id"):
        raise ValueError("the Bundle has no Patient with an id")
    return str(patient["id"])


def hook_request(hook: str, patient: str, *, prefetch: dict | None = None, draft_orders: dict | None = None,
                 selections: list[str] | None = None, fhir_server: str | None = None,
                 user: str = "Practitioner/example", encounter: str | None = None) -> dict:
    """A CDS Hooks 2.0 request body (§HTTP Request) for a dry run."""
    context: dict[str, Any] = {"userId": user, "patientId": patient}
    if encounter:
        context["encounterId"] = encounter
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = draft_orders or {"resourceType": "Bundle", "type": "collection", "entry": []}
    if hook == "order-select":
        context["selections"] = selections if selections is not None else [
            f"{r['resourceType']}/{r['id']}" for r in bundle_resources(context["draftOrders"]) if r.get("id")]
    # The same patient and hook give the same hookInstance, hence the same card and order ids.
    instance = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dah-cds-run/{hook}/{patient}"))
    body: dict[str, Any] = {"hookInstance": instance, "hook": hook, "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server:
        body["fhirServer"] = fhir_server
    return body
