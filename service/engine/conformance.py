"""Check PlanDefinitions against the CDS Hooks Clinical Reasoning IG profile
`CDSHooksServicePlanDefinition` (http://hl7.org/fhir/uv/cds-hooks-clinical-reasoning/
StructureDefinition/cdshooksserviceplandefinition), so that another engine reads the content as
this one does.

Rules:
- `PlanDefinition.extension:cdsHooksEndpoint` (cqf-cdsHooksEndpoint) is 0..1 here and 1..1 in the
  profile: more than one, or a value that is not a non-empty `valueUri`, is an error; its last
  path segment (the service id, `service.engine.link.endpoint_service_id`) must be usable as a
  URL path segment (CDS Hooks 2.0 §Discovery: `{baseUrl}/cds-services/{service.id}`).
- A plan without the endpoint still serves (`<plan id>-<hook>` per hook) but does not conform:
  a warning issue.  A plan triggered by several hooks implements several CDS Hooks services and
  cannot conform to a profile that names one endpoint: the warning says so (split it per hook).
  A plan with the endpoint but no hook trigger would serve nothing: an error.
  A plan only applied by other plans' actions (a rules plan nested in per-hook service plans,
  `service.engine.link.nest`) is not a service: it needs no endpoint.
- Hooks are triggers (`action.trigger`) of type `named-event` whose `name` is the hook (IG
  §CDS Hooks Services, FHIR R4 TriggerDefinition): any other trigger type, or a named-event
  without a name, would be ignored at run time, so it is an error.
"""

from __future__ import annotations

import re

from service.engine.extensions import EXT_CDS_HOOKS_ENDPOINT
from service.engine.link import endpoint_service_id, walk
from service.engine.model import PlanDef, Source
from service.engine.problems import Problems

PROFILE = "http://hl7.org/fhir/uv/cds-hooks-clinical-reasoning/StructureDefinition/cdshooksserviceplandefinition"
HOOK_TRIGGER = "named-event"
# RFC 3986 unreserved characters: an id that needs no escaping in `/cds-services/{id}`.
_SERVICE_ID = re.compile(r"[A-Za-z0-9._~-]+")


def check_service_plan(plan: PlanDef, problems: Problems) -> None:
    """Report where `plan` departs from the IG's CDSHooksServicePlanDefinition profile."""
    _check_endpoint(plan, problems)
    _check_triggers(plan, problems)


def _check_endpoint(plan: PlanDef, problems: Problems) -> None:
    file = plan.source.file
    found = [(i, e) for i, e in enumerate(plan.raw.get("extension", [])) if e.get("url") == EXT_CDS_HOOKS_ENDPOINT]
    if len(found) > 1:
        problems.error(Source(file, f"PlanDefinition.extension[{found[1][0]}]"),
                       "more than one cqf-cdsHooksEndpoint: a PlanDefinition implements one CDS Hooks service "
                       f"({PROFILE}: cdsHooksEndpoint 1..1)")
    for i, ext in found:
        value = ext.get("valueUri")
        where = Source(file, f"PlanDefinition.extension[{i}]")
        others = sorted(k for k in ext if k.startswith("value") and k != "valueUri")
        if others or not isinstance(value, str) or not value.strip():
            problems.error(where, "cqf-cdsHooksEndpoint needs a non-empty valueUri (the service's URI or id)"
                           + (f", not {others[0]}" if others else ""))
            continue
        sid = endpoint_service_id(plan.raw)
        if sid is None or not _SERVICE_ID.fullmatch(sid):
            problems.error(where, f"cqf-cdsHooksEndpoint {value!r}: the service id (its last path segment) may use "
                           "only letters, digits and . _ ~ -")
    if found and not plan.hooks:
        problems.error(Source(file, f"PlanDefinition.extension[{found[0][0]}]"),
                       "cqf-cdsHooksEndpoint names a service, but no action has a named-event trigger: it would "
                       "answer no hook (give the action that applies its rules the hook's trigger)")
    if not found and plan.hooks and not plan.nested_in:
        served = ", ".join(f"{plan.id}-{h}" for h in plan.hooks)
        if len(plan.hooks) > 1:
            message = (f"triggered by {len(plan.hooks)} hooks, it implements {len(plan.hooks)} CDS Hooks services "
                       f"({served}); the IG profile CDSHooksServicePlanDefinition names one service per "
                       "PlanDefinition (cqf-cdsHooksEndpoint 1..1): split it per hook to conform")
        else:
            message = (f"no cqf-cdsHooksEndpoint (valueUri {served!r}): served as {served}, but not conformant "
                       "to the IG profile CDSHooksServicePlanDefinition")
        problems.issue(Source(file, "PlanDefinition.extension"), message)


def _check_triggers(plan: PlanDef, problems: Problems) -> None:
    for action in walk(plan.actions):
        for i, trigger in enumerate(action.raw.get("trigger", [])):
            where = Source(plan.source.file, f"{action.path}.trigger[{i}]")
            kind = trigger.get("type")
            if kind != HOOK_TRIGGER:
                problems.error(where, f"trigger type {kind!r} is not supported: a CDS Hooks service is triggered by "
                               f"a {HOOK_TRIGGER!r} trigger whose name is the hook")
            elif not isinstance(trigger.get("name"), str) or not trigger["name"].strip():
                problems.error(where, f"a {HOOK_TRIGGER!r} trigger needs the hook as its name (e.g. 'patient-view')")
