"""FHIR operations PlanDefinition/$apply and ActivityDefinition/$apply (R4 §12.18.4.1,
§12.21.4.1), with the CPG IG's `data`, `prefetchData`, `useServerData` and `dataEndpoint`
parameters.  No Flask here.

Data for each of the plan's prefetch keys comes from, in order: a `prefetchData` part with
that key; the `data` Bundle (its entries of the key's resource type; the subject Patient
or the encounter for a Patient or Encounter key); or, when `useServerData` is true, the
`dataEndpoint` FHIR server, resolved by service.data as a hook call's prefetch is (no token).
Without `useServerData` a key given nowhere has no data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from service import data as data_layer
from service.engine import (
    ApplyContext,
    ContentSet,
    DataIndex,
    PlanDef,
    Terminology,
    apply_activity,
    apply_plan,
    stable_id,
)
from service.errors import InvalidRequest, NotFound, Unprocessable
from service.fhir.reader import ReaderFactory
from service.logtext import shown
from service.operations.careplan import care_plan
from service.operations.request import ApplyRequest


def plan_apply(content: ContentSet, request: ApplyRequest, ref: str | None, now: datetime,
               fetcher_factory: ReaderFactory | None = None, trace: bool = False) -> dict:
    plan = _artifact(request, ref, content.plan, "PlanDefinition")
    index = DataIndex(content.terminology)  # the call's data, draft orders included, indexed once
    ctx = _context(request, now, _data_for(plan, content.terminology, request, now, fetcher_factory, index), index)
    return care_plan(apply_plan(content, plan, ctx), trace)


def activity_apply(content: ContentSet, request: ApplyRequest, ref: str | None, now: datetime,
                   fetcher_factory: ReaderFactory | None = None) -> dict:
    activity = _artifact(request, ref, content.activity, "ActivityDefinition")
    scope = PlanDef(activity.url, {}, activity.source, [], activity.variables, activity.data_requirements)
    index = DataIndex(content.terminology)
    ctx = _context(request, now, _data_for(scope, content.terminology, request, now, fetcher_factory, index), index)
    resource, issues = apply_activity(content, activity, ctx)
    if resource is None:
        raise Unprocessable(f"ActivityDefinition {activity.url} could not be applied: "
                            + "; ".join(i["message"] for i in issues), expression="url")
    return resource


def _artifact(request: ApplyRequest, ref: str | None, lookup: Callable[[str], Any], kind: str) -> Any:
    """The artifact named by the path or the `url` parameter."""
    name = ref or request.url
    artifact = lookup(name) if name else None
    if artifact is None:
        raise NotFound(f"no {kind} '{shown(name, 200)}'", expression="url")
    return artifact


def _context(request: ApplyRequest, now: datetime, data: dict[str, Any], index: DataIndex) -> ApplyContext:
    return ApplyContext(now=now, subject=request.subject, data=data, hook=request.hook,
                        hook_instance=stable_id(request.subject, now.isoformat()), encounter=request.encounter,
                        practitioner=request.practitioner, draft_orders=request.draft_orders,
                        selections=list(request.selections), index=index)


def _sent(plan: PlanDef, request: ApplyRequest) -> dict[str, Any]:
    """The keys the caller gave: `prefetchData`, then the `data` Bundle's entries for the other keys."""
    sent: dict[str, Any] = dict(request.prefetch_data)
    if request.data is None:
        return sent
    entries = [e.get("resource") for e in request.data.get("entry", []) if isinstance(e.get("resource"), dict)]
    for key, dr in plan.data_requirements.items():
        if key in sent:
            continue
        of_type = [r for r in entries if r.get("resourceType") == dr.type]
        if dr.type in ("Patient", "Encounter"):
            sent[key] = next((r for r in of_type if f"{r['resourceType']}/{r.get('id')}"
                              in (request.subject, request.encounter)), None)
        else:
            sent[key] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in of_type]}
    return sent


def _data_for(plan: PlanDef, terminology: Terminology, request: ApplyRequest, now: datetime,
              fetcher_factory: ReaderFactory | None, index: DataIndex) -> dict[str, Any]:
    data = _sent(plan, request)
    missing = [key for key in plan.data_requirements if key not in data]
    if not missing:
        return data
    if not request.use_server_data:
        return data | {key: None for key in missing}
    if not request.data_endpoint:
        raise InvalidRequest("useServerData needs a dataEndpoint Endpoint with an address", expression="dataEndpoint")
    context = {"patientId": request.patient_id, "encounterId": request.encounter_id,
               "userId": request.practitioner, "draftOrders": request.draft_orders}
    tokens = data_layer.Tokens({k: v for k, v in context.items() if v is not None}, request.practitioner, now,
                                 index)
    fhir = fetcher_factory(request.data_endpoint, None) if fetcher_factory is not None else None
    return data | data_layer.resolve(plan, terminology, tokens, data, fhir)
