"""Load authored content and lint it strictly; all problems are reported together.

Rules:
- Every `*.json` directly in the content folder is one FHIR R4 resource (PlanDefinition,
  ActivityDefinition, Library, ValueSet or ConceptMap; other types are ignored with a warning)
  and must validate against the fhir.resources R4B model.  Subfolders (scenario tests) are not
  content.
- Every expression is parsed at load; canonical references (definitionCanonical, library,
  Library depends-on, ValueSet URLs used in expressions) must resolve; `%variables` must be
  defined; variable dependencies must not form a cycle; the unit a string literal names in
  `inUnit('...')`, `dose('...')` or `dailyDose('...')` must be valid UCUM in its usual spelling
  ('mg', not 'MG', which UCUM reads as megagauss): conversions of patient data fail quietly,
  so a typo in the content must fail loudly.
- ConceptMaps: every strength property is "<decimal> <UCUM unit>" and every dose form a product
  map uses is listed in a dose-form -> route map (`service.engine.products`).
- A PlanDefinition (or ActivityDefinition) whose expressions use another language (text/cql)
  is loaded as a warning issue and serves nothing; the rest of the content set still loads.
- Any other problem is fatal: ContentErrors names file and path for each.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from service.engine import ucum, units
from service.engine.fhirpath import STANDARD_VARIABLES, Expression
from service.engine.model import (
    EXT_APPLICABILITY_BEHAVIOR,
    EXT_FOR_EACH,
    EXT_TARGET,
    EXT_IS_RECOMMENDED,
    EXT_PREFETCH_KEY,
    EXT_QUERY_PATTERN,
    EXT_SERVICE_ID,
    EXT_VARIABLE,
    ActionDef,
    ActivityDef,
    Condition,
    ContentIssue,
    ContentSet,
    DataRequirementDef,
    DynamicValue,
    LibraryDef,
    PlanDef,
    ServiceDef,
    Source,
    Variable,
)
from service.engine.terminology import Terminology, TerminologyError, canonical
from service.errors import ContentError, ContentErrors, ExpressionError, UnsupportedLanguage

# Variables the engine binds for every evaluation (see service.engine.apply).
ENGINE_VARIABLES = frozenset({"now", "hook", "selections", "draftOrders", "subject", "userId", "encounterId"})
ITEM = "item"  # bound by cds-for-each inside the action's subtree
SUPPORTED_TYPES = ("PlanDefinition", "ActivityDefinition", "Library", "ValueSet", "ConceptMap")
UNIT_FUNCTIONS = ("inUnit", "dose", "dailyDose")  # their first argument is a UCUM unit
PRIORITIES = ("routine", "urgent", "asap", "stat")
SELECTION_BEHAVIORS = ("any", "all", "all-or-none", "exactly-one", "at-most-one", "one-or-more")
CONDITION_KINDS = ("applicability", "start", "stop")
ACTION_TYPES = ("create", "update", "remove", "fire-event")
PACKAGE_FILES = ("package.json", ".index.json")  # FHIR NPM package manifests, not resources
_VALUESET_URL = re.compile(r"'(https?://[^']*/ValueSet/[^']*)'")


class _Skip(Exception):
    """The resource uses an unsupported expression language: load it as an issue."""

    def __init__(self, source: Source, message: str):
        self.issue = ContentIssue(source, message)


class _Loader:
    def __init__(self):
        self.errors: list[ContentError] = []
        self.issues: list[ContentIssue] = []

    def error(self, source: Source, message: str) -> None:
        error = ContentError(source.file, source.path, message)
        if not any(e.file == error.file and e.path == error.path and e.message == error.message for e in self.errors):
            self.errors.append(error)  # a Library's expressions are checked once per plan using it

    def expression(self, node: dict | None, source: Source) -> Expression | None:
        if not isinstance(node, dict) or not node.get("expression"):
            self.error(source, "expression is missing (Expression.expression is required here)")
            return None
        try:
            return Expression(node["expression"], node.get("language", "text/fhirpath"))
        except UnsupportedLanguage as exc:
            raise _Skip(source, exc.message) from None
        except ExpressionError as exc:
            self.error(source, exc.message)
            return None


def _validate_model(raw: dict, source_file: str, loader: _Loader) -> bool:
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    try:
        get_fhir_model_class(raw["resourceType"]).model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            path = _loc_path(raw["resourceType"], err.get("loc", ()))
            loader.error(Source(source_file, path), f"FHIR R4 validation: {err.get('msg')}")
        return False
    return True


def _loc_path(root: str, loc) -> str:
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith("function-"):
            out += f".{part}"
    return out


def _variables(raw: dict, path: str, file: str, loader: _Loader) -> list[Variable]:
    out = []
    for i, ext in enumerate(raw.get("extension", [])):
        if ext.get("url") != EXT_VARIABLE:
            continue
        src = Source(file, f"{path}.extension[{i}].valueExpression")
        value = ext.get("valueExpression") or {}
        name = value.get("name")
        if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            loader.error(src, f"variable needs a valid name (got {name!r})")
            continue
        expr = loader.expression(value, src)
        if expr is not None:
            out.append(Variable(name, expr, src))
    return out


def _data_requirements(items: list, path: str, file: str, loader: _Loader) -> list[DataRequirementDef]:
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
        if not key:
            if not dr.get("type"):
                loader.error(src, "dataRequirement needs a type")
                continue
            key = dr["type"][0].lower() + dr["type"][1:] + (str(i) if i else "")
            loader.issues.append(ContentIssue(src, f"dataRequirement has no id; prefetch key {key!r} derived from its type"))
        out.append(DataRequirementDef(key=key, type=dr.get("type"), raw=dr, source=src, query=query))
    return out


def _triggers(action: dict) -> frozenset[str] | None:
    names = [t.get("name") for t in action.get("trigger", []) if t.get("type") == "named-event" and t.get("name")]
    return frozenset(names) if names else None


def _action(raw: dict, path: str, file: str, loader: _Loader) -> ActionDef:
    src = Source(file, path)
    conditions = []
    for i, cond in enumerate(raw.get("condition", [])):
        csrc = Source(file, f"{path}.condition[{i}]")
        if cond.get("kind") not in CONDITION_KINDS:
            loader.error(csrc, f"condition.kind must be one of {CONDITION_KINDS}")
        expr = loader.expression(cond.get("expression"), Source(file, f"{csrc.path}.expression"))
        if expr is not None:
            conditions.append(Condition(cond.get("kind"), expr, csrc))
    if raw.get("priority") is not None and raw["priority"] not in PRIORITIES:
        loader.error(Source(file, f"{path}.priority"), f"priority must be one of {PRIORITIES}")
    if raw.get("selectionBehavior") is not None and raw["selectionBehavior"] not in SELECTION_BEHAVIORS:
        loader.error(Source(file, f"{path}.selectionBehavior"), f"selectionBehavior must be one of {SELECTION_BEHAVIORS}")
    type_code = ((raw.get("type") or {}).get("coding") or [{}])[0].get("code")
    if type_code is not None and type_code not in ACTION_TYPES:
        loader.error(Source(file, f"{path}.type"), f"action type must be one of {ACTION_TYPES}")
    has_target = any(e.get("url") == EXT_TARGET for e in raw.get("extension", []))
    if type_code in ("update", "remove") and not has_target and not raw.get("definitionCanonical"):
        loader.error(Source(file, f"{path}.type"), f"a {type_code} action needs a cds-target extension naming the resource it acts on")
    behavior = "all"
    recommended: bool | Expression = False
    for_each = target = None
    for i, ext in enumerate(raw.get("extension", [])):
        where = Source(file, f"{path}.extension[{i}].valueExpression")
        if ext.get("url") == EXT_FOR_EACH:
            for_each = loader.expression(ext.get("valueExpression"), where)
        elif ext.get("url") == EXT_TARGET:
            target = loader.expression(ext.get("valueExpression"), where)
        if ext.get("url") == EXT_IS_RECOMMENDED:
            if "valueExpression" in ext:
                recommended = loader.expression(ext["valueExpression"], Source(file, f"{path}.extension[{i}].valueExpression")) or False
            else:
                recommended = bool(ext.get("valueBoolean"))
        if ext.get("url") == EXT_APPLICABILITY_BEHAVIOR:
            behavior = ext.get("valueCode")
            if behavior not in ("all", "any"):
                loader.error(Source(file, f"{path}.extension"), "cqf-applicabilityBehavior must be 'all' or 'any'")
    return ActionDef(
        raw=raw,
        path=path,
        source=src,
        triggers=_triggers(raw),
        conditions=conditions,
        dynamic_values=_dynamic_values(raw, path, file, loader),
        definition=raw.get("definitionCanonical") or raw.get("definitionUri"),
        children=[_action(a, f"{path}.action[{i}]", file, loader) for i, a in enumerate(raw.get("action", []))],
        applicability_behavior=behavior,
        is_recommended=recommended,
        for_each=for_each,
        target=target,
    )


def _dynamic_values(raw: dict, path: str, file: str, loader: _Loader) -> list[DynamicValue]:
    out = []
    for i, dv in enumerate(raw.get("dynamicValue", [])):
        src = Source(file, f"{path}.dynamicValue[{i}]")
        if not dv.get("path"):
            loader.error(src, "dynamicValue.path is required")
            continue
        expr = loader.expression(dv.get("expression"), Source(file, f"{src.path}.expression"))
        if expr is not None:
            out.append(DynamicValue(dv["path"], expr, src))
    return out


def _walk(actions: list[ActionDef]):
    for a in actions:
        yield a
        yield from _walk(a.children)


def _expressions(plan: PlanDef):
    for v in plan.variables.values():
        yield v.expression, v.source
    for a in _walk(plan.actions):
        for c in a.conditions:
            yield c.expression, c.source
        for dv in a.dynamic_values:
            yield dv.expression, dv.source
        if isinstance(a.is_recommended, Expression):
            yield a.is_recommended, a.source
        for extra in (a.for_each, a.target):
            if extra is not None:
                yield extra, a.source


def _scoped_expressions(plan: PlanDef):
    """(expression, source, whether %item is bound there) for every expression of the plan."""
    for v in plan.variables.values():
        yield v.expression, v.source, False

    def walk(actions, bound):
        for a in actions:
            if a.for_each is not None:
                yield a.for_each, a.source, bound
            inner = bound or a.for_each is not None
            for c in a.conditions:
                yield c.expression, c.source, inner
            for dv in a.dynamic_values:
                yield dv.expression, dv.source, inner
            for extra in (a.target, a.is_recommended):
                if isinstance(extra, Expression):
                    yield extra, a.source, inner
            yield from walk(a.children, inner)

    yield from walk(plan.actions, False)


def load_content(directory: str | Path) -> ContentSet:
    """Load and lint every resource in `directory`; raise ContentErrors listing all problems."""
    directory = Path(directory)
    loader = _Loader()
    if not directory.is_dir():
        raise ContentErrors([ContentError(str(directory), "", "content folder does not exist")])
    raws: list[tuple[str, dict]] = []
    for path in sorted(directory.glob("*.json")):
        if path.name in PACKAGE_FILES:
            continue
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            loader.error(Source(path.name, ""), f"not readable JSON: {exc}")
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("resourceType"), str):
            loader.error(Source(path.name, ""), "not a FHIR resource (no resourceType)")
            continue
        raws.append((path.name, raw))
    return build_content(raws, loader)


def build_content(raws: list[tuple[str, dict]], loader: _Loader | None = None) -> ContentSet:
    """Build a ContentSet from (file name, resource) pairs (a folder, or a FHIR server's resources)."""
    loader = loader or _Loader()
    plans: dict[str, PlanDef] = {}
    activities: dict[str, ActivityDef] = {}
    libraries: dict[str, LibraryDef] = {}
    valuesets: dict[str, dict] = {}
    conceptmaps: list[tuple[str, dict]] = []
    resources: dict[str, dict] = {}
    aliases: dict[str, str] = {}  # "Type/id" -> canonical key, for relative references
    for file, raw in raws:
        rtype = raw["resourceType"]
        if rtype not in SUPPORTED_TYPES:
            loader.issues.append(ContentIssue(Source(file, rtype), f"{rtype} is not content; ignored"))
            continue
        if not _validate_model(raw, file, loader):
            continue
        url = raw.get("url")
        local = f"{rtype}/{raw['id']}" if raw.get("id") else None
        if not url and not local:
            loader.error(Source(file, f"{rtype}.url"), "a canonical url (or at least an id) is required")
            continue
        if not url:
            loader.issues.append(ContentIssue(Source(file, f"{rtype}.url"), f"no canonical url; referenced as {local}"))
            url = local
        if url in resources:
            if raw.get("version") and raw.get("version") != resources[url].get("version"):
                url = f"{url}|{raw['version']}"  # another version of the same artifact
            else:
                loader.error(Source(file, f"{rtype}.url"), f"duplicate canonical url {url}")
                continue
        resources[url] = raw
        if local:
            aliases.setdefault(local, url)
        try:
            if rtype == "ValueSet":
                valuesets[url] = raw
            elif rtype == "ConceptMap":
                conceptmaps.append((file, raw))
            elif rtype == "Library":
                libraries[url] = LibraryDef(
                    url, raw, Source(file, "Library"),
                    _variables(raw, "Library", file, loader),
                    _data_requirements(raw.get("dataRequirement"), "Library.dataRequirement", file, loader),
                    [a["resource"] for a in raw.get("relatedArtifact", []) if a.get("type") == "depends-on" and a.get("resource")],
                )
            elif rtype == "ActivityDefinition":
                activities[url] = ActivityDef(url, raw, Source(file, rtype), _dynamic_values(raw, rtype, file, loader))
            else:
                for i, inner in enumerate(raw.get("contained", [])):
                    if inner.get("resourceType") == "ActivityDefinition" and inner.get("id"):
                        curl = f"{url}#{inner['id']}"
                        activities[curl] = ActivityDef(curl, inner, Source(file, f"PlanDefinition.contained[{i}]"),
                                                       _dynamic_values(inner, f"PlanDefinition.contained[{i}]", file, loader))
                plan = PlanDef(url, raw, Source(file, rtype),
                               [_action(a, f"PlanDefinition.action[{i}]", file, loader) for i, a in enumerate(raw.get("action", []))])
                plan.variables = {v.name: v for v in _variables(raw, rtype, file, loader)}
                plans[url] = plan
        except _Skip as skip:
            loader.issues.append(skip.issue)
            resources.pop(url, None)

    terminology = Terminology(valuesets, conceptmaps)
    for url, vs in valuesets.items():
        try:
            terminology.expand(url)
        except TerminologyError as exc:
            loader.error(Source(_file_of(raws, vs), "ValueSet.compose"), str(exc))
    for file, path, message in terminology.medications.lint():
        loader.error(Source(file, path), message)
    libraries = _Aliased(libraries, aliases)
    activities = _Aliased(activities, aliases)
    plans_by_ref = _Aliased(plans, aliases)
    for act in list(activities.values()):
        if not _link_activity(act, libraries, terminology, loader):
            del activities[act.url]
            continue
        _check_valuesets(((dv.expression, dv.source) for dv in act.dynamic_values), terminology, loader)
        _check_units(((dv.expression, dv.source) for dv in act.dynamic_values), loader)
    for plan in list(plans.values()):
        try:
            _link_plan(plan, libraries, activities, plans_by_ref, terminology, loader)
        except _Unsupported as exc:
            loader.issues.append(ContentIssue(plan.source, str(exc)))
            del plans[plan.url]
    services = _services(plans, loader)
    if loader.errors:
        raise ContentErrors(loader.errors)
    return ContentSet(dict(plans), dict(activities), dict(libraries), terminology, services, loader.issues, resources)


class _Aliased(dict):
    """A table by canonical URL that also answers relative ("Library/x") and versioned references."""

    def __init__(self, table: dict, aliases: dict[str, str]):
        super().__init__(table)
        self.aliases = aliases

    def resolve(self, ref: str | None):
        if not ref:
            return None
        for key in (ref, canonical(ref)):
            if key in self:
                return self[key]
            alias = self.aliases.get(key) or self.aliases.get(key.rsplit("/", 2)[-2] + "/" + key.rsplit("/", 1)[-1]
                                                              if key.count("/") >= 2 else key)
            if alias in self:
                return self[alias]
        return None


def _file_of(raws, resource) -> str:
    return next((f for f, r in raws if r is resource), "?")


CQL_CONTENT = ("text/cql", "application/elm+json", "application/elm+xml")


class _Unsupported(Exception):
    """A PlanDefinition or ActivityDefinition depends on logic this engine cannot run (CQL)."""


def _library_closure(urls: list[str], libraries: dict[str, LibraryDef], src: Source, loader: _Loader) -> list[LibraryDef]:
    seen: list[LibraryDef] = []

    def visit(url: str, stack: tuple[str, ...]):
        if url.split("/")[-2:-1] and url.split("/")[-2] != "Library" and "/Library/" not in url:
            return  # depends-on a ValueSet or CodeSystem: terminology, not logic
        lib = libraries.resolve(url)
        if lib is not None and any(c.get("contentType") in CQL_CONTENT for c in lib.raw.get("content", [])) \
                and not lib.variables:
            raise _Unsupported(f"depends on Library {lib.url}, whose logic is CQL (expression language not supported)")
        if lib is None:
            loader.error(src, f"library {url} does not resolve to a loaded Library")
            return
        if lib.url in stack:
            loader.error(lib.source, f"Library depends-on cycle: {' -> '.join(stack + (lib.url,))}")
            return
        for dep in lib.depends_on:
            visit(dep, stack + (lib.url,))
        if lib not in seen:
            seen.append(lib)

    for url in urls:
        visit(url, ())
    return seen


def _library_scope(urls, libraries, src: Source, loader: _Loader, requirements: dict) -> dict[str, Variable]:
    """Variables of the Libraries `urls` name (with their depends-on), and their data requirements."""
    scope: dict[str, Variable] = {}
    for lib in _library_closure(urls, libraries, src, loader):
        for var in lib.variables:
            if var.name in scope:
                loader.error(var.source, f"variable %{var.name} is already defined at {scope[var.name].source}")
            scope[var.name] = var
        for dr in lib.data_requirements:
            if dr.key in requirements and requirements[dr.key].raw != dr.raw:
                loader.error(dr.source, f"prefetch key {dr.key!r} is defined differently at {requirements[dr.key].source}")
            requirements[dr.key] = dr
    return scope


def _link_activity(act: ActivityDef, libraries, terminology, loader: _Loader) -> bool:
    """Link an activity to its Libraries; False when it depends on CQL (reported, skipped)."""
    if not act.raw.get("library"):
        return True
    try:
        act.variables = _library_scope(act.raw["library"], libraries, Source(act.source.file, "ActivityDefinition.library"),
                                       loader, act.data_requirements)
    except _Unsupported as exc:
        loader.issues.append(ContentIssue(act.source, str(exc)))
        return False
    known = ENGINE_VARIABLES | STANDARD_VARIABLES | set(act.variables) | set(act.data_requirements)
    for dv in act.dynamic_values:
        missing = sorted(dv.expression.variables - known)
        if missing:
            loader.error(dv.source, "undefined variable(s): " + ", ".join("%" + m for m in missing))
    return True


def _link_plan(plan: PlanDef, libraries, activities, plans, terminology, loader: _Loader) -> None:
    scope = _library_scope(plan.raw.get("library", []), libraries, Source(plan.source.file, "PlanDefinition.library"),
                           loader, plan.data_requirements)
    for name, var in plan.variables.items():
        if name in scope:
            loader.error(var.source, f"variable %{name} is already defined at {scope[name].source}")
        scope[name] = var
    for a in _walk(plan.actions):
        for dr in _data_requirements(a.raw.get("input"), f"{a.path}.input", plan.source.file, loader):
            plan.data_requirements.setdefault(dr.key, dr)
        if a.definition:
            ref = plan.url + a.definition if a.definition.startswith("#") else a.definition  # contained
            target = activities.resolve(ref) or plans.resolve(ref)
            if target is None:
                loader.error(Source(plan.source.file, f"{a.path}.definitionCanonical"),
                             f"{a.definition} does not resolve to a loaded ActivityDefinition or PlanDefinition")
            else:
                a.definition = target.url
    plan.variables = scope
    known = ENGINE_VARIABLES | STANDARD_VARIABLES | set(scope) | set(plan.data_requirements)
    for var in scope.values():
        if ITEM in var.expression.variables:
            loader.error(var.source, "%item exists only inside a cds-for-each action; a variable cannot use it")
    for expr, src, item_bound in _scoped_expressions(plan):
        missing = sorted(expr.variables - known - ({ITEM} if item_bound else set()))
        if missing:
            loader.error(src, "undefined variable(s): " + ", ".join("%" + m for m in missing)
                         + (" (%item exists only under a cds-for-each action)" if ITEM in missing else ""))
    _check_valuesets(_expressions(plan), terminology, loader)
    _check_units(_expressions(plan), loader)
    _check_cycles(scope, loader)
    plan.hooks = sorted({h for a in _walk(plan.actions) for h in (a.triggers or ())})
    # The same activities' expressions see the plan's variables: check them too.
    for a in _walk(plan.actions):
        act = activities.resolve(a.definition)
        for dv in act.dynamic_values if act else ():
            missing = sorted(dv.expression.variables - known)
            if missing:
                loader.error(dv.source, f"undefined variable(s) when applied from {plan.url}: "
                             + ", ".join("%" + m for m in missing))


def _check_valuesets(exprs, terminology: Terminology, loader: _Loader) -> None:
    for expr, src in exprs:
        for url in _VALUESET_URL.findall(expr.text):
            if url not in terminology:
                loader.error(src, f"ValueSet {url} is not in the content")


def _check_units(exprs, loader: _Loader) -> None:
    for expr, src in exprs:
        for name, args in expr.calls():
            unit = args[0] if name in UNIT_FUNCTIONS and args else None
            if unit is None:
                continue
            usual = units.spelling(unit)
            if not ucum.is_unit(unit):
                loader.error(src, f"{name}({unit!r}): {unit!r} is not a UCUM unit (http://unitsofmeasure.org)"
                             + (f"; write {usual!r}" if usual else ""))
            elif units.usual_ucum(unit) is None:
                loader.error(src, f"{name}({unit!r}): write {usual!r} ({unit!r} is another UCUM unit, or a "
                                  "variant spelling)")


def _check_cycles(scope: dict[str, Variable], loader: _Loader) -> None:
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = stack[stack.index(name):] + [name]
            loader.error(scope[name].source, "variable dependency cycle: " + " -> ".join("%" + c for c in cycle))
            return
        state[name] = 1
        for dep in sorted(scope[name].expression.variables & scope.keys()):
            visit(dep, stack + [name])
        state[name] = 2

    for name in scope:
        visit(name, [])


def _services(plans: dict[str, PlanDef], loader: _Loader) -> dict[str, ServiceDef]:
    """`<plan id>-<hook>` per hook; a plan naming its service id serves all its hooks under it."""
    services: dict[str, ServiceDef] = {}
    for plan in plans.values():
        custom = next((e.get("valueString") for e in plan.raw.get("extension", []) if e.get("url") == EXT_SERVICE_ID), None)
        wanted = [(custom, tuple(plan.hooks))] if custom else [(f"{plan.id}-{h}", (h,)) for h in plan.hooks]
        for sid, hooks in wanted:
            if not hooks:
                continue
            if sid in services:
                loader.error(plan.source, f"CDS service id {sid!r} is also produced by {services[sid].plan.source.file}")
                continue
            services[sid] = ServiceDef(sid, hooks, plan)
    return services
