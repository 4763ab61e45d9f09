"""The preview's runs, without Flask: a scenario case or a pasted Bundle through the services of a
hook, at a chosen moment, with the trace.

Rules:
- A scenario is a case of `<content folder>/tests/<RULE>/<name>.json` (plandefinitions/tests/README.md),
  chosen by its id `<RULE>/<name>` from the listing only (never a path from the form).
- Data comes only from what the page sends: `fhirServer` and `fhirAuthorization` are dropped and
  no fetcher is given, so a preview never contacts a FHIR server.  A prefetch key the data does
  not fill is sent as null ("no data", CDS Hooks 2.0 §Prefetch), never fetched.
- The case's own service gets the case's prefetch unchanged (the answer the golden shows); any
  other service, and a pasted Bundle, gets each prefetch key filled from the resources of its
  type: the Patient for a read (`Patient/{{context.patientId}}`), a searchset Bundle otherwise.
- Nothing is recorded in the feedback store: a preview is not a card shown to a clinician.  Given a
  history (service.web.preview_quiet), the run leaves out quiet cards as a real call does, and says
  which (`ServiceRun.quiet`).
- The content and its services are the runtime's (service.engine types, not imported here: the
  web layer reaches the engine only through hooks).
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service import jsonlimits
from service.errors import InvalidRequest, ServiceError
from service.feedback.store import CallScope, OrderKey
from service.hooks.call import call_service
from service.hooks.request import parse_hook_request
from service.hooks.suppression import QuietHistory

HOOKS = ("patient-view", "order-select", "order-sign")
ORDER_HOOKS = ("order-select", "order-sign")
PREVIEW_USER = "Practitioner/preview"


@dataclass(frozen=True)
class Scenario:
    id: str  # "<RULE>/<name>"
    description: str
    service: str
    hook: str
    now: str
    path: Path


@dataclass
class ServiceRun:
    service: str
    cards: list[dict] = field(default_factory=list)
    error: str | None = None
    quiet: list[dict] = field(default_factory=list)  # the cards left out as quiet (their trace entries)
    scope: CallScope | None = None  # what a decision marked on the run's cards is matched on
    orders: dict[tuple[str, str], list[OrderKey]] = field(default_factory=dict)  # by (card, suggestion) uuid
    at: datetime | None = None  # the run's moment
    quiet_rules: frozenset[str] = frozenset()  # the rules of the service with a quiet policy


def scenarios(content_dir: str | Path) -> list[Scenario]:
    """Every scenario case of the content folder, by id."""
    out = []
    for path in sorted(Path(content_dir).glob("tests/*/*.json")):
        if path.name.endswith(".response.json"):
            continue
        try:
            case = json.loads(path.read_text(encoding="utf-8"))
            request = case["request"]
            out.append(Scenario(f"{path.parent.name}/{path.stem}", str(case.get("description") or ""),
                                str(case.get("service") or ""), str(request.get("hook") or ""),
                                str(case.get("now") or ""), path))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return out


def parse_now(text: str, default: datetime) -> datetime:
    """An ISO 8601 moment (a date alone is noon UTC; no zone is UTC); `default` when empty."""
    text = text.strip()
    if not text:
        return default
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"the date {text[:40]!r} is not ISO 8601 (2026-03-01 or 2026-03-01T12:00:00Z)") from None
    if len(text) == 10:
        moment = moment.replace(hour=12)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_json(text: str, what: str, max_items: int) -> Any:
    try:
        return jsonlimits.parse(text.encode("utf-8", "surrogatepass"), max_items=max_items)
    except jsonlimits.JsonRejected as exc:
        raise InvalidRequest(f"{what}: {exc.message}") from None


def resources_of(value: Any) -> list[dict]:
    """The resources of a Bundle (entries), of a resource, or of a prefetch mapping, flattened."""
    out: list[dict] = []
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        for entry in value.get("entry") or []:
            if isinstance(entry, dict):
                out.extend(resources_of(entry.get("resource")))
    elif isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        out.append(value)
    return out


def prefetch_for(service: Any, resources: list[dict], patient_id: str) -> dict[str, Any]:
    """Each prefetch key of the service filled from `resources` by type (see the module rules)."""
    prefetch: dict[str, Any] = {}
    for key, requirement in service.plan.data_requirements.items():
        of_type = [r for r in resources if r.get("resourceType") == requirement.type]
        if requirement.query and requirement.query.startswith(f"{requirement.type}/"):
            match = [r for r in of_type if r.get("id") == patient_id] or of_type[:1]
            prefetch[key] = copy.deepcopy(match[0]) if match else None
        else:
            prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(of_type),
                             "entry": [{"resource": copy.deepcopy(r)} for r in of_type]}
    return prefetch


def _draft_orders(text: str, max_items: int) -> dict | None:
    if not text.strip():
        return None
    orders = parse_json(text, "draft orders", max_items)
    if not (isinstance(orders, dict) and orders.get("resourceType") == "Bundle"):
        raise InvalidRequest("draft orders: a FHIR Bundle of the orders being written is expected")
    return orders


def _selections(orders: dict) -> list[str]:
    return [f"{r['resourceType']}/{r['id']}" for r in resources_of(orders) if r.get("id")]


def base_request(hook: str, scenario: Scenario | None, bundle_text: str, orders_text: str,
                 max_items: int) -> tuple[dict, list[dict], str]:
    """The CDS Hooks request to start from, every resource it carries, and the patient id."""
    orders = _draft_orders(orders_text, max_items)
    if scenario is not None:
        body = json.loads(scenario.path.read_text(encoding="utf-8"))["request"]
        resources = [r for value in (body.get("prefetch") or {}).values() for r in resources_of(value)]
        patient_id = str((body.get("context") or {}).get("patientId") or "")
    else:
        if not bundle_text.strip():
            raise InvalidRequest("choose a scenario patient or paste a Bundle of the patient's data")
        bundle = parse_json(bundle_text, "the pasted Bundle", max_items)
        if not (isinstance(bundle, dict) and bundle.get("resourceType") == "Bundle"):
            raise InvalidRequest("the pasted data is not a FHIR Bundle")
        resources = resources_of(bundle)
        patients = [r for r in resources if r.get("resourceType") == "Patient" and isinstance(r.get("id"), str)]
        if not patients:
            raise InvalidRequest("the pasted Bundle has no Patient with an id")
        patient_id = patients[0]["id"]
        body = {"context": {"userId": PREVIEW_USER, "patientId": patient_id}}
    body = {k: v for k, v in body.items() if k not in ("fhirServer", "fhirAuthorization")}
    body["hook"] = hook
    body["hookInstance"] = str(uuid.uuid4())
    context = dict(body.get("context") or {})
    context.setdefault("userId", PREVIEW_USER)
    if hook in ORDER_HOOKS:
        if orders is not None:
            context["draftOrders"] = orders
        if "draftOrders" not in context:
            raise InvalidRequest(f"{hook} needs the draft orders being written (a Bundle)")
        if hook == "order-select":
            context["selections"] = context.get("selections") or _selections(context["draftOrders"])
        else:
            context.pop("selections", None)
    else:
        context.pop("draftOrders", None)
        context.pop("selections", None)
    body["context"] = context
    return body, resources, patient_id


def run(content: Any, services: list[Any], hook: str, scenario: Scenario | None, bundle_text: str,
        orders_text: str, now: datetime, guidance_base: str, max_items: int,
        history: QuietHistory | None = None) -> list[ServiceRun]:
    """Each service's cards (with their trace) and, given `history`, its quiet cards; or the error that
    stopped it."""
    body, resources, patient_id = base_request(hook, scenario, bundle_text, orders_text, max_items)
    runs = []
    for service in services:
        request = copy.deepcopy(body)
        if scenario is None or service.id != scenario.service or "prefetch" not in request:
            request["prefetch"] = prefetch_for(service, resources, patient_id)
        result = ServiceRun(service.id, at=now, quiet_rules=frozenset(service.plan.quiet))
        try:
            answer = call_service(content, service, parse_hook_request(request, service), now, None, trace=True,
                                  guidance_base=guidance_base, history=history)
            result.cards, result.quiet, result.scope, result.orders = (answer.cards, answer.quiet, answer.scope,
                                                                       answer.orders)
        except ServiceError as exc:
            details = [str(issue.to_fhir().get("diagnostics") or "") for issue in exc.issues]
            result.error = "; ".join([exc.message, *(d for d in details if d and d != exc.message)])
        runs.append(result)
    return runs
