"""Compile authored resources into the engine's model, one resource at a time.

Rules:
- A resource is a PlanDefinition, ActivityDefinition, Library, ValueSet or ConceptMap; a
  StructureDefinition (an extension definition shipped for other tools) is skipped quietly, other
  types are ignored with a warning issue and must validate against the fhir.resources R4B model.
- Each is registered under its canonical URL (or, lacking one, "Type/id", with a warning); a
  second version of a URL is kept as "url|version"; the same URL twice is an error.
- Every expression is parsed here (`Problems.expression`); a resource whose expressions use
  another language (text/cql) becomes a warning issue and serves nothing.
- Action elements with a closed set of codes (priority, selectionBehavior, condition.kind,
  action type, cqf-applicabilityBehavior, a named-event trigger's hook) must use one of them; an update or remove action
  names its target (cds-target) or a definition.
Nothing here follows a reference between resources: that is `link`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from service.engine.extensions import (
    EXT_APPLICABILITY_BEHAVIOR,
    EXT_FOR_EACH,
    EXT_IS_RECOMMENDED,
    EXT_PREFETCH_KEY,
    EXT_QUERY_PATTERN,
    EXT_TARGET,
    EXT_VARIABLE,
)
from service.engine.fhirjson import Element, Resource
from service.engine.fhirpath import Expression
from service.engine.model import (
    ActionDef,
    ActivityDef,
    Condition,
    DataRequirementDef,
    DynamicValue,
    LibraryDef,
    PlanDef,
    Source,
    Variable,
)
from service.engine.problems import Problems, Unsupported
from service.engine.quiet import quiet_policy, rule_policies

SUPPORTED_TYPES = ("PlanDefinition", "ActivityDefinition", "Library", "ValueSet", "ConceptMap")
# Shipped with the content for other tools (the project's extension definitions); nothing to run.
DEFINITION_TYPES = ("StructureDefinition",)
PRIORITIES = ("routine", "urgent", "asap", "stat")
SELECTION_BEHAVIORS = ("any", "all", "all-or-none", "exactly-one", "at-most-one", "one-or-more")
CONDITION_KINDS = ("applicability", "start", "stop")
ACTION_TYPES = ("create", "update", "remove", "fire-event")
# The hooks of the CDS Hooks hook registry (https://cds-hooks.org/, "Hooks"): a trigger naming
# another event would make a service no EHR calls (a typo such as `patient-veiw` included).
CDS_HOOKS = ("patient-view", "order-select", "order-sign", "order-dispatch", "appointment-book", "encounter-start",
             "encounter-discharge")


@dataclass
class Compiled:
    """The compiled resources of one content set, by canonical URL, before linking."""

    plans: dict[str, PlanDef] = field(default_factory=dict)
    activities: dict[str, ActivityDef] = field(default_factory=dict)
    libraries: dict[str, LibraryDef] = field(default_factory=dict)
    valuesets: dict[str, Resource] = field(default_factory=dict)
    conceptmaps: list[tuple[str, Resource]] = field(default_factory=list)
    resources: dict[str, Resource] = field(default_factory=dict)  # every loaded resource (for publishing)
    aliases: dict[str, str] = field(default_factory=dict)  # "Type/id" -> canonical key, for relative references
    files: dict[int, str] = field(default_factory=dict)  # id(resource) -> file it came from


def compile_resources(raws: list[tuple[str, Resource]], problems: Problems) -> Compiled:
    """Compile (file name, resource) pairs; problems are reported, the rest is compiled."""
    out = Compiled()
    for file, raw in raws:
        out.files[id(raw)] = file
        url = _register(file, raw, out, problems)
        if url is None:
            continue
        try:
            _compile(file, raw, url, out, problems)
        except Unsupported as skip:
            problems.issues.append(skip.issue)
            out.resources.pop(url, None)
    return out


def _register(file: str, raw: Resource, out: Compiled, problems: Problems) -> str | None:
    """The key the resource is known by, once it validates and its URL is free; else None."""
    rtype = raw["resourceType"]
    if rtype in DEFINITION_TYPES:
        return None
    if rtype not in SUPPORTED_TYPES:
        problems.issue(Source(file, rtype), f"{rtype} is not content; ignored")
        return None
    if not _validate_model(raw, file, problems):
        problems.broken.update(x for x in (raw.get("url"), f"{rtype}/{raw.get('id')}" if raw.get("id") else None) if x)
        return None
    url = raw.get("url")
    local = f"{rtype}/{raw['id']}" if raw.get("id") else None
    if not url:
        if not local:
            problems.error(Source(file, f"{rtype}.url"), "a canonical url (or at least an id) is required")
            return None
        problems.issue(Source(file, f"{rtype}.url"), f"no canonical url; referenced as {local}")
        url = local
    if url in out.resources:
        if raw.get("version") and raw.get("version") != out.resources[url].get("version"):
            url = f"{url}|{raw['version']}"  # another version of the same artifact
        else:
            problems.error(Source(file, f"{rtype}.url"), f"duplicate canonical url {url}")
            return None
    out.resources[url] = raw
    if local:
        out.aliases.setdefault(local, url)
    return url


def _compile(file: str, raw: Resource, url: str, out: Compiled, problems: Problems) -> None:
    rtype = raw["resourceType"]
    if rtype == "ValueSet":
        out.valuesets[url] = raw
    elif rtype == "ConceptMap":
        out.conceptmaps.append((file, raw))
    elif rtype == "Library":
        out.libraries[url] = LibraryDef(
            url, raw, Source(file, "Library"),
            variables(raw, "Library", file, problems),
            data_requirements(raw.get("dataRequirement"), "Library.dataRequirement", file, problems),
            [a["resource"] for a in raw.get("relatedArtifact", [])
             if a.get("type") == "depends-on" and a.get("resource")],
        )
    elif rtype == "ActivityDefinition":
        out.activities[url] = ActivityDef(url, raw, Source(file, rtype), _dynamic_values(raw, rtype, file, problems))
    else:
        for i, inner in enumerate(raw.get("contained", [])):
            if inner.get("resourceType") == "ActivityDefinition" and inner.get("id"):
                curl = f"{url}#{inner['id']}"
                where = f"PlanDefinition.contained[{i}]"
                out.activities[curl] = ActivityDef(curl, inner, Source(file, where),
                                                   _dynamic_values(inner, where, file, problems))
        actions = [_action(a, f"PlanDefinition.action[{i}]", file, problems)
                   for i, a in enumerate(raw.get("action", []))]
        plan = PlanDef(url, raw, Source(file, rtype), actions, quiet=rule_policies(actions))
        plan.variables = {v.name: v for v in variables(raw, rtype, file, problems)}
        out.plans[url] = plan


def _validate_model(raw: Resource, source_file: str, problems: Problems) -> bool:
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    try:
        get_fhir_model_class(raw["resourceType"]).model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            path = _loc_path(raw["resourceType"], err.get("loc", ()))
            problems.error(Source(source_file, path), f"FHIR R4 validation: {err.get('msg')}")
        return False
    return True


def _loc_path(root: str, loc: Iterable[int | str]) -> str:
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith("function-"):
            out += f".{part}"
    return out


def variables(raw: Resource, path: str, file: str, problems: Problems) -> list[Variable]:
    """The `variable` extensions (FHIR R4 extension-variable) of a resource, compiled."""
    out = []
    for i, ext in enumerate(raw.get("extension", [])):
        if ext.get("url") != EXT_VARIABLE:
            continue
        src = Source(file, f"{path}.extension[{i}].valueExpression")
        value = ext.get("valueExpression") or {}
        name = value.get("name")
        if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            problems.error(src, f"variable needs a valid name (got {name!r})")
            continue
        expr = problems.expression(value, src)
        if expr is not None:
            out.append(Variable(name, expr, src))
    return out


def data_requirements(items: list[Element] | None, path: str, file: str,
                      problems: Problems) -> list[DataRequirementDef]:
    """DataRequirements with their prefetch key (element id, cds-prefetch-key, or derived from the type)."""
    out = []
    for i, dr in enumerate(items or []):
        src = Source(file, f"{path}[{i}]")
        key = dr.get("id")
        query = None
        for ext in dr.get("extension", []):
            if ext.get("url") == EXT_PREFETCH_KEY:
                key = ext.get("valueString")
            elif ext.get("url") == EXT_QUERY_PATTERN:
                query = ext.get("valueString")
        rtype = dr.get("type")
        if not isinstance(rtype, str) or not rtype:  # R4 DataRequirement.type is 1..1
            problems.error(src, "dataRequirement needs a type")
            continue
        if not key:
            key = rtype[0].lower() + rtype[1:] + (str(i) if i else "")
            problems.issue(src, f"dataRequirement has no id; prefetch key {key!r} derived from its type")
        out.append(DataRequirementDef(key=key, type=rtype, raw=dr, source=src, query=query))
    return out


def _triggers(action: Element) -> frozenset[str] | None:
    names = [t.get("name") for t in action.get("trigger", []) if t.get("type") == "named-event" and t.get("name")]
    return frozenset(names) if names else None


def _check_codes(raw: Element, path: str, file: str, problems: Problems) -> None:
    """The action's coded elements take one of their allowed codes."""
    if raw.get("priority") is not None and raw["priority"] not in PRIORITIES:
        problems.error(Source(file, f"{path}.priority"), f"priority must be one of {PRIORITIES}")
    if raw.get("selectionBehavior") is not None and raw["selectionBehavior"] not in SELECTION_BEHAVIORS:
        problems.error(Source(file, f"{path}.selectionBehavior"),
                       f"selectionBehavior must be one of {SELECTION_BEHAVIORS}")
    type_code = ((raw.get("type") or {}).get("coding") or [{}])[0].get("code")
    if type_code is not None and type_code not in ACTION_TYPES:
        problems.error(Source(file, f"{path}.type"), f"action type must be one of {ACTION_TYPES}")
    for i, trigger in enumerate(raw.get("trigger", [])):
        # a named-event without a name is the service profile's error (service.engine.conformance), not a typo
        if trigger.get("type") == "named-event" and trigger.get("name") and trigger.get("name") not in CDS_HOOKS:
            near = difflib.get_close_matches(str(trigger.get("name")), CDS_HOOKS, n=1)
            problems.error(Source(file, f"{path}.trigger[{i}].name"),
                           f"hook {trigger.get('name')!r} is not a CDS Hooks hook"
                           + (f" (did you mean {near[0]!r}?)" if near else f"; hooks: {', '.join(CDS_HOOKS)}"))
    has_target = any(e.get("url") == EXT_TARGET for e in raw.get("extension", []))
    if type_code in ("update", "remove") and not has_target and not raw.get("definitionCanonical"):
        problems.error(Source(file, f"{path}.type"),
                       f"a {type_code} action needs a cds-target extension naming the resource it acts on")


def _conditions(raw: Element, path: str, file: str, problems: Problems) -> list[Condition]:
    out = []
    for i, cond in enumerate(raw.get("condition", [])):
        csrc = Source(file, f"{path}.condition[{i}]")
        if cond.get("kind") not in CONDITION_KINDS:
            problems.error(csrc, f"condition.kind must be one of {CONDITION_KINDS}")
        expr = problems.expression(cond.get("expression"), Source(file, f"{csrc.path}.expression"))
        if expr is not None:
            out.append(Condition(cond.get("kind"), expr, csrc))
    return out


@dataclass
class _Extensions:
    """What an action's extensions say (cds-for-each, cds-target, cds-is-recommended, cqf-applicabilityBehavior)."""

    behavior: str = "all"
    recommended: bool | Expression = False
    for_each: Expression | None = None
    target: Expression | None = None


def _extensions(raw: Element, path: str, file: str, problems: Problems) -> _Extensions:
    out = _Extensions()
    for i, ext in enumerate(raw.get("extension", [])):
        where = Source(file, f"{path}.extension[{i}].valueExpression")
        url = ext.get("url")
        if url == EXT_FOR_EACH:
            out.for_each = problems.expression(ext.get("valueExpression"), where)
        elif url == EXT_TARGET:
            out.target = problems.expression(ext.get("valueExpression"), where)
        elif url == EXT_IS_RECOMMENDED:
            if "valueExpression" in ext:
                out.recommended = problems.expression(ext["valueExpression"], where) or False
            else:
                out.recommended = bool(ext.get("valueBoolean"))
        elif url == EXT_APPLICABILITY_BEHAVIOR:
            out.behavior = ext.get("valueCode")
            if out.behavior not in ("all", "any"):
                problems.error(Source(file, f"{path}.extension"), "cqf-applicabilityBehavior must be 'all' or 'any'")
    return out


def _action(raw: Element, path: str, file: str, problems: Problems) -> ActionDef:
    conditions = _conditions(raw, path, file, problems)
    _check_codes(raw, path, file, problems)
    ext = _extensions(raw, path, file, problems)
    return ActionDef(
        raw=raw,
        path=path,
        source=Source(file, path),
        triggers=_triggers(raw),
        conditions=conditions,
        dynamic_values=_dynamic_values(raw, path, file, problems),
        definition=raw.get("definitionCanonical") or raw.get("definitionUri"),
        children=[_action(a, f"{path}.action[{i}]", file, problems) for i, a in enumerate(raw.get("action", []))],
        applicability_behavior=ext.behavior,
        is_recommended=ext.recommended,
        for_each=ext.for_each,
        target=ext.target,
        quiet=quiet_policy(raw, path, file, problems),
    )


def _dynamic_values(raw: Resource | Element, path: str, file: str, problems: Problems) -> list[DynamicValue]:
    out = []
    for i, dv in enumerate(raw.get("dynamicValue", [])):
        src = Source(file, f"{path}.dynamicValue[{i}]")
        if not dv.get("path"):
            problems.error(src, "dynamicValue.path is required")
            continue
        expr = problems.expression(dv.get("expression"), Source(file, f"{src.path}.expression"))
        if expr is not None:
            out.append(DynamicValue(dv["path"], expr, src))
    return out
