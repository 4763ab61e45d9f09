"""FHIR operations PlanDefinition/$apply and ActivityDefinition/$apply (R4 §12.18.4.1,
§12.21.4.1), with the CPG IG's `data`, `prefetchData`, `useServerData` and `dataEndpoint`
parameters.  No Flask here.

Data for each of the plan's prefetch keys comes from, in order: a `prefetchData` part with
that key; the `data` Bundle (its entries of the key's resource type; the subject Patient
for a Patient key); or, when `useServerData` is true, the `dataEndpoint` FHIR server, queried
with the same templates as CDS Hooks prefetch.  PlanDefinition output is an R4 CarePlan
with the RequestGroup and the proposed resources contained (as the reference
implementation does).  Project parameters (not in the base spec) for hook-shaped calls:
`hook` (valueCode), `draftOrders` (resource Bundle) and `selections` (valueString, repeating).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from service.engine import ApplyContext, ApplyResult, AppliedAction, ContentSet, apply_activity, apply_plan
from service.engine.apply import stable_id
from service.engine.model import PlanDef
from service.errors import InvalidRequest, NotFound, Unprocessable
from service import data as data_layer
from service.logtext import shown

TRACE_EXTENSION = "http://example.org/fhir/StructureDefinition/cds-apply-trace"
_SINGLE = ("subject", "encounter", "practitioner", "organization", "userType", "userLanguage", "userTaskContext",
           "setting", "settingContext", "url", "hook", "useServerData", "data", "dataEndpoint", "draftOrders")


def parse_parameters(body: Any) -> dict[str, Any]:
    """Parameters resource -> {name: value or [values]}; 400 naming what is wrong.  `parameter`
    and `part` are arrays of objects with a string `name` (R4 Parameters), whatever else arrives."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidRequest("the body must be a FHIR Parameters resource", expression="resourceType")
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list):
        raise InvalidRequest("Parameters.parameter must be an array", expression="Parameters.parameter")
    params: dict[str, Any] = {"prefetchData": [], "selections": []}
    for i, p in enumerate(parameters):
        where = f"Parameters.parameter[{i}]"
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise InvalidRequest(f"{where} needs a name (a string)", expression=where)
        name = p["name"]
        if name == "prefetchData":
            parts = p.get("part")
            if not isinstance(parts, list) or not all(isinstance(q, dict) and isinstance(q.get("name"), str)
                                                      for q in parts):
                raise InvalidRequest(f"{where}.part must be an array of parameters, each with a name (a string)",
                                 expression=f"{where}.part")
            named = {q["name"]: q for q in parts}
            key = named.get("key", {}).get("valueString")
            if not isinstance(key, str) or not key or "data" not in named:
                raise InvalidRequest(f"{where} (prefetchData) needs parts 'key' (valueString) and 'data' (resource)",
                                 expression=where)
            params["prefetchData"].append((key, named["data"].get("resource")))
            continue
        value = p.get("resource", next((v for k, v in p.items() if k.startswith("value")), None))
        if value is None:
            raise InvalidRequest(f"parameter '{shown(name, 100)}' has no value", expression=where)
        if name == "selections":
            params["selections"].append(value)
        elif name in params and name in _SINGLE:
            raise InvalidRequest(f"parameter '{shown(name, 100)}' may appear only once", expression=where)
        else:
            params[name] = value
    return params


def _reference(params: dict, name: str, kind: str | None = None, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"parameter {name!r} is required", expression=name)
        return None
    if not isinstance(value, str) or "/" not in value or (kind and not value.startswith(kind + "/")):
        raise InvalidRequest(f"parameter {name!r} must be a reference like '{kind or 'Type'}/id', got "
                         f"{shown(repr(value), 80)}", expression=name)
    return value


def _bundle_of(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def _data_for(plan: PlanDef, terminology, params: dict, subject: str, fetcher_factory) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, resource in params["prefetchData"]:
        if resource is not None:
            data_layer.check_value(key, resource)
        data[key] = resource
    bundle = params.get("data")
    if bundle is not None:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise InvalidRequest("parameter 'data' must be a Bundle", expression="data")
        data_layer.check_value("data", bundle)
    entries = [e.get("resource") for e in (bundle or {}).get("entry", []) if isinstance(e.get("resource"), dict)]
    missing = []
    for key, dr in plan.data_requirements.items():
        if key in data:
            continue
        if bundle is not None:
            of_type = [r for r in entries if r.get("resourceType") == dr.type]
            if dr.type in ("Patient", "Encounter"):
                data[key] = next((r for r in of_type if f"{r['resourceType']}/{r.get('id')}" in (subject, params.get("encounter"))), None)
            else:
                data[key] = _bundle_of(of_type)
        else:
            missing.append(key)
    if missing and params.get("useServerData") is True:
        endpoint = params.get("dataEndpoint")
        address = endpoint.get("address") if isinstance(endpoint, dict) else None
        if not address:
            raise InvalidRequest("useServerData needs a dataEndpoint Endpoint with an address", expression="dataEndpoint")
        context = {"patientId": subject.split("/", 1)[1],
                   "encounterId": (params.get("encounter") or "/").split("/", 1)[1] or None}
        fetched = data_layer.resolve(plan, terminology, data_layer.Tokens(context), data, fetcher_factory(address, None))
        data.update(fetched)
    else:
        for key in missing:
            data[key] = None
    return data


def _context(params: dict, now: datetime, subject: str) -> ApplyContext:
    hook = params.get("hook")
    if hook is not None and not isinstance(hook, str):
        raise InvalidRequest("parameter 'hook' must be a code", expression="hook")
    draft = params.get("draftOrders")
    if draft is not None and (not isinstance(draft, dict) or draft.get("resourceType") != "Bundle"):
        raise InvalidRequest("parameter 'draftOrders' must be a Bundle", expression="draftOrders")
    return ApplyContext(now=now, subject=subject, hook=hook, hook_instance=stable_id(subject, now.isoformat()),
                        encounter=_reference(params, "encounter", "Encounter"),
                        practitioner=_reference(params, "practitioner"), draft_orders=draft,
                        selections=[s for s in params["selections"] if isinstance(s, str)])


def _prepare(params: dict, ref: str | None, lookup: Callable, kind: str):
    """The artifact named by the path or the `url` parameter, and the subject."""
    ref = ref or params.get("url")
    if not ref:
        raise InvalidRequest("type-level $apply needs the 'url' parameter", expression="url")
    if not isinstance(ref, str):
        raise InvalidRequest("parameter 'url' must be a canonical URL (a string)", expression="url")
    artifact = lookup(ref)
    if artifact is None:
        raise NotFound(f"no {kind} '{shown(ref, 200)}'", expression="url")
    return artifact, _reference(params, "subject", "Patient", required=True)


def plan_apply(content: ContentSet, ref: str | None, body: Any, now: datetime,
               fetcher_factory: Callable | None = None, trace: bool = False) -> dict:
    params = parse_parameters(body)
    plan, subject = _prepare(params, ref, content.plan, "PlanDefinition")
    ctx = _context(params, now, subject)
    ctx.data = _data_for(plan, content.terminology, params, subject, fetcher_factory)
    return care_plan(apply_plan(content, plan, ctx), trace)


def activity_apply(content: ContentSet, ref: str | None, body: Any, now: datetime,
                   fetcher_factory: Callable | None = None) -> dict:
    params = parse_parameters(body)
    activity, subject = _prepare(params, ref, content.activity, "ActivityDefinition")
    ctx = _context(params, now, subject)
    scope = PlanDef(activity.url, {}, activity.source, [], activity.variables, activity.data_requirements)
    ctx.data = _data_for(scope, content.terminology, params, subject, fetcher_factory)
    resource, issues = apply_activity(content, activity, ctx)
    if resource is None:
        raise Unprocessable(f"ActivityDefinition {activity.url} could not be applied: "
                            + "; ".join(i["message"] for i in issues), expression="url")
    return resource


# ---- output --------------------------------------------------------------------------------


def _rg_action(action: AppliedAction, contained: list[dict]) -> dict:
    out: dict = {"id": action.id.replace("/", "-")}
    for name, value in (("title", action.title), ("description", action.description),
                        ("textEquivalent", action.text_equivalent), ("priority", action.priority),
                        ("selectionBehavior", action.selection_behavior), ("groupingBehavior", action.grouping_behavior)):
        if value:
            out[name] = value
    if action.code:
        out["code"] = action.code
    if action.documentation:
        out["documentation"] = action.documentation
    if action.type:
        out["type"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/action-type", "code": action.type}]}
    if action.resource is not None:
        contained.append(action.resource)
        out["resource"] = {"reference": f"#{action.resource['id']}"}
    children = [_rg_action(c, contained) for c in action.children]
    if children:
        out["action"] = children
    return out


def care_plan(result: ApplyResult, trace: bool = False) -> dict:
    ctx = result.context
    contained: list[dict] = []
    actions = [_rg_action(a, contained) for a in result.actions]
    group_id = "request-group"
    request_group = {"resourceType": "RequestGroup", "id": group_id, "status": "draft", "intent": "proposal",
                     "instantiatesCanonical": [result.plan.url], "subject": {"reference": ctx.subject},
                     "authoredOn": ctx.now.isoformat()}
    if actions:
        request_group["action"] = actions
    plan = {"resourceType": "CarePlan", "id": stable_id(ctx.hook_instance, result.plan.url, "careplan"),
            "contained": [request_group, *contained], "instantiatesCanonical": [result.plan.url],
            "status": "draft", "intent": "proposal", "subject": {"reference": ctx.subject},
            "activity": [{"reference": {"reference": f"#{group_id}"}}]}
    if ctx.encounter:
        plan["encounter"] = {"reference": ctx.encounter}
    if trace:
        import json

        plan["extension"] = [{"url": TRACE_EXTENSION, "valueString": json.dumps(
            {"actions": result.trace, "issues": result.issues}, default=str)}]
    return plan
