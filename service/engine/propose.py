"""The resource an action proposes (R4 PlanDefinition.action.definition[x], §12.18.3.3, and
ActivityDefinition/$apply, §12.21.4.4).

Rules:
- `definitionCanonical` naming an ActivityDefinition: the definition applied for the call's subject
  (`activity.activity_resource`), its own dynamicValues, then the action's, set on it.
- An update or remove of an existing resource (the project's cds-target extension): a copy of the
  one resource the expression selects, the action's dynamicValues set on the copy.  Anything but
  exactly one resource with a type and an id proposes nothing, with an issue.
- Every proposed resource gets a generated narrative from its final structured content
  (`narrative.with_narrative`); its id derives from hookInstance, subject, plan and action.
"""

from __future__ import annotations

from typing import Any

from service.engine import narrative
from service.engine.activity import activity_resource
from service.engine.applymodel import ApplyContext
from service.engine.dynamic import Evaluated, apply_to_resource, evaluated
from service.engine.fhirjson import json_copy
from service.engine.fhirpath import Expression, to_python
from service.engine.model import ActionDef, ActivityDef, ContentSet
from service.engine.scope import Scope
from service.engine.terminology import canonical


def from_activity(scope: Scope, ctx: ApplyContext, activity: ActivityDef, resource_id: str,
                  action_values: list[Evaluated]) -> dict[str, Any] | None:
    """ActivityDefinition $apply: its resource, its dynamicValues and then the action's applied."""
    resource = activity_resource(activity, resource_id, ctx.subject, ctx.encounter, ctx.practitioner)
    return _finished(apply_to_resource(scope, resource, evaluated(scope, activity.dynamic_values) + action_values))


def from_definition(scope: Scope, content: ContentSet, ctx: ApplyContext, action: ActionDef, resource_id: str,
                    action_values: list[Evaluated]) -> dict[str, Any] | None:
    """The resource of the action's `definitionCanonical`, with the id `resource_id`."""
    definition = action.definition or ""
    activity = content.activities.get(canonical(definition))
    if activity is None:
        scope.issue(str(action.source), f"definition {definition} is not an ActivityDefinition")
        return None
    return from_activity(scope, ctx, activity, resource_id, action_values)


def from_target(scope: Scope, action: ActionDef, target: Expression,
                action_values: list[Evaluated]) -> dict[str, Any] | None:
    """update/remove: a copy of the existing resource, with the action's dynamicValues applied."""
    values = scope.evaluate(target, f"{action.source} (cds-target)")
    if not values or len(values) != 1:
        if values is not None:
            scope.issue(str(action.source), f"cds-target must select exactly one resource, got {len(values)}")
        return None
    found = to_python(values[0])
    if not isinstance(found, dict) or not found.get("resourceType") or not found.get("id"):
        scope.issue(str(action.source), "cds-target is not a resource with an id")
        return None
    return _finished(apply_to_resource(scope, json_copy(found), action_values))


def _finished(resource: dict[str, Any] | None) -> dict[str, Any] | None:
    return narrative.with_narrative(resource) if resource is not None else None
