"""What a dry run calls: (service, CDS Hooks request, moment) for each service, from what the user
named (a scenario case, a Bundle file's resources, or a patient on a FHIR server).

Rules:
- A case goes to its own service at its own `now`, unless a hook or a service is named; `now`
  given, the clock is set to it (the data stay as written: old data read as old); with `shift`
  the case's dates move with the clock (to `now`, by default the present), as if the case were
  written today (`patients.shift`).
- A Bundle or a FHIR server's patient needs a hook or a service; its moment is `now` (None: the
  caller's present).
- On an order hook a request always carries `draftOrders` (empty when none are given) and, on
  order-select, `selections` (every draft when not given): the hooks' required context.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from service.engine import ContentSet, ServiceDef
from service.workbench import patients
from service.workbench.run import services_for

_EMPTY = {"resourceType": "Bundle", "type": "collection", "entry": []}


@dataclass(frozen=True)
class Job:
    service: ServiceDef
    body: dict  # the CDS Hooks request
    now: datetime | None  # None: the present


def case_jobs(content: ContentSet, case: patients.Case, *, hook: str | None = None, service: str | None = None,
              now: datetime | None = None, shift: bool = False, drafts: dict | None = None) -> list[Job]:
    request, moment = case.request, now or case.now
    if shift:
        moment = now or datetime.now(UTC)
        request = patients.shift(request, moment - case.now)
    chosen = services_for(content, hook=hook, service=service) if hook or service \
        else services_for(content, service=case.service)
    out = []
    for svc in chosen:
        body = dict(request, hook=hook or (request.get("hook") if request.get("hook") in svc.hooks else svc.hook))
        context = dict(body["context"])
        if drafts is not None:
            context["draftOrders"] = drafts
        if body["hook"] in ("order-select", "order-sign"):
            context.setdefault("draftOrders", _EMPTY)
        if body["hook"] == "order-select":
            context.setdefault("selections", [f"{r['resourceType']}/{r['id']}" for r in
                                              patients.bundle_resources(context["draftOrders"]) if r.get("id")])
        out.append(Job(svc, dict(body, context=context), moment))
    return out


def bundle_jobs(content: ContentSet, document: dict, *, hook: str | None = None, service: str | None = None,
                now: datetime | None = None, drafts: dict | None = None, encounter: str | None = None) -> list[Job]:
    if not (hook or service):
        raise ValueError("a Bundle needs --hook or --service")
    resources = patients.bundle_resources(document)
    patient = patients.patient_id(resources)
    out = []
    for svc in services_for(content, hook=hook, service=service):
        prefetch = patients.bundle_prefetch(svc.plan, resources)
        out.append(Job(svc, patients.hook_request(hook or svc.hook, patient, prefetch=prefetch, draft_orders=drafts,
                                                  encounter=encounter), now))
    return out


def server_jobs(content: ContentSet, fhir_server: str, patient: str | None, *, hook: str | None = None,
                service: str | None = None, now: datetime | None = None, drafts: dict | None = None,
                encounter: str | None = None) -> list[Job]:
    if not patient or not (hook or service):
        raise ValueError("--fhir-server needs --patient and --hook or --service")
    return [Job(svc, patients.hook_request(hook or svc.hook, patient, draft_orders=drafts, fhir_server=fhir_server,
                                           encounter=encounter), now)
            for svc in services_for(content, hook=hook, service=service)]
