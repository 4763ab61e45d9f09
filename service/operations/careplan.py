"""`$apply` output (R4 §12.18.4.1): an R4 CarePlan with the RequestGroup and the proposed resources
contained, as the reference implementation does; with the trace, an extension holding it."""

from __future__ import annotations

import json
from typing import Any

from service.engine import EXT_APPLY_TRACE, AppliedAction, ApplyResult, stable_id

TRACE_EXTENSION = EXT_APPLY_TRACE  # the $apply trace on the CarePlan


def _rg_action(action: AppliedAction, contained: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": action.id.replace("/", "-")}
    for name, value in (("title", action.title), ("description", action.description),
                        ("textEquivalent", action.text_equivalent), ("priority", action.priority),
                        ("selectionBehavior", action.selection_behavior),
                        ("groupingBehavior", action.grouping_behavior)):
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


def care_plan(result: ApplyResult, trace: bool = False) -> dict[str, Any]:
    ctx = result.context
    contained: list[dict[str, Any]] = []
    actions = [_rg_action(a, contained) for a in result.actions]
    group_id = "request-group"
    request_group: dict[str, Any] = {
        "resourceType": "RequestGroup", "id": group_id, "status": "draft", "intent": "proposal",
        "instantiatesCanonical": [result.plan.url], "subject": {"reference": ctx.subject},
        "authoredOn": ctx.now.isoformat()}
    if actions:
        request_group["action"] = actions
    plan: dict[str, Any] = {
        "resourceType": "CarePlan", "id": stable_id(ctx.hook_instance, result.plan.url, "careplan"),
        "contained": [request_group, *contained], "instantiatesCanonical": [result.plan.url],
        "status": "draft", "intent": "proposal", "subject": {"reference": ctx.subject},
        "activity": [{"reference": {"reference": f"#{group_id}"}}]}
    if ctx.encounter:
        plan["encounter"] = {"reference": ctx.encounter}
    if trace:
        plan["extension"] = [{"url": TRACE_EXTENSION, "valueString": json.dumps(
            {"actions": result.trace, "issues": result.issues}, default=str)}]
    return plan
