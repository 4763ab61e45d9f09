"""Link compiled resources: follow their references and give each plan its scope.

Rules:
- References resolve by canonical URL, by relative reference ("Library/x") or by a versioned
  canonical ("url|1.0"); a contained ActivityDefinition by "#id" against its plan.
- A plan's scope is its Libraries' variables (depends-on followed, in dependency order) and its
  own; a name defined twice, or a depends-on cycle, is an error.  Data requirements of the
  Libraries and of the actions' `input` become the plan's prefetch keys; a key defined twice
  differently is an error.
- A plan or activity depending on a Library whose logic is CQL is loaded as a warning issue
  and serves nothing (`Unsupported`).
- Nested plans (R4 §12.18.3.3: an action whose definition is a PlanDefinition applies it, its
  result nested): the action holds the resolved plan (`ActionDef.plan`), so a call pays nothing to
  find it.  The nesting plan's prefetch keys and quiet policies include the nested plan's (its
  service asks for the data its rules read); a nesting cycle, or a nested plan that is not loaded
  (its logic is CQL), is an error at the action's definitionCanonical.
- Services: a plan only applied by other plans (a rules plan) and without cqf-cdsHooksEndpoint
  serves nothing itself; otherwise `<plan id>-<hook>` per hook; a plan naming its service (the standard
  cqf-cdsHooksEndpoint extension, whose last path segment is the service id: `sle-dah-patient-view`
  or `https://host/cds-services/sle-dah-patient-view`) serves all its hooks under that id; one id
  produced twice is an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

from service.engine.compile import data_requirements
from service.engine.extensions import EXT_CDS_HOOKS_ENDPOINT
from service.engine.fhirjson import Element
from service.engine.model import (
    ActionDef,
    ActivityDef,
    DataRequirementDef,
    LibraryDef,
    PlanDef,
    ServiceDef,
    Source,
    Variable,
)
from service.engine.problems import Problems
from service.engine.terminology import canonical

CQL_CONTENT = ("text/cql", "application/elm+json", "application/elm+xml")

_Def = TypeVar("_Def")


class Unsupported(Exception):
    """A PlanDefinition or ActivityDefinition depends on logic this engine cannot run (CQL)."""


class Aliased(dict[str, _Def]):
    """A table by canonical URL that also answers relative ("Library/x") and versioned references."""

    def __init__(self, table: Mapping[str, _Def], aliases: dict[str, str]) -> None:
        super().__init__(table)
        self.aliases = aliases

    def resolve(self, ref: str | None) -> _Def | None:
        if not ref:
            return None
        for key in (ref, canonical(ref)):
            if key in self:
                return self[key]
            alias = self.aliases.get(key) or self.aliases.get(key.rsplit("/", 2)[-2] + "/" + key.rsplit("/", 1)[-1]
                                                              if key.count("/") >= 2 else key)
            if alias is not None and alias in self:
                return self[alias]
        return None


def walk(actions: list[ActionDef]) -> Iterator[ActionDef]:
    """Every action of a tree, parents first."""
    for a in actions:
        yield a
        yield from walk(a.children)


def _library_closure(urls: list[str], libraries: Aliased[LibraryDef], src: Source,
                     problems: Problems) -> list[LibraryDef]:
    seen: list[LibraryDef] = []

    def visit(url: str, stack: tuple[str, ...]) -> None:
        if url.split("/")[-2:-1] and url.split("/")[-2] != "Library" and "/Library/" not in url:
            return  # depends-on a ValueSet or CodeSystem: terminology, not logic
        lib = libraries.resolve(url)
        if lib is not None and any(c.get("contentType") in CQL_CONTENT for c in lib.raw.get("content", [])) \
                and not lib.variables:
            raise Unsupported(f"depends on Library {lib.url}, whose logic is CQL (expression language not supported)")
        if lib is None:
            if problems.is_broken(url):  # reported where it is invalid; its plans are not checked further
                problems.unchecked.add(src.file)
            else:
                problems.error(src, f"library {url} does not resolve to a loaded Library")
            return
        if lib.url in stack:
            problems.error(lib.source, f"Library depends-on cycle: {' -> '.join(stack + (lib.url,))}")
            return
        for dep in lib.depends_on:
            visit(dep, stack + (lib.url,))
        if lib not in seen:
            seen.append(lib)

    for url in urls:
        visit(url, ())
    return seen


def _library_scope(urls: list[str], libraries: Aliased[LibraryDef], src: Source, problems: Problems,
                   requirements: dict[str, DataRequirementDef]) -> dict[str, Variable]:
    """Variables of the Libraries `urls` name (with their depends-on), and their data requirements."""
    scope: dict[str, Variable] = {}
    for lib in _library_closure(urls, libraries, src, problems):
        for var in lib.variables:
            if var.name in scope:
                problems.error(var.source, f"variable %{var.name} is already defined at {scope[var.name].source}")
            scope[var.name] = var
        for dr in lib.data_requirements:
            if dr.key in requirements and requirements[dr.key].raw != dr.raw:
                problems.error(dr.source,
                               f"prefetch key {dr.key!r} is defined differently at {requirements[dr.key].source}")
            requirements[dr.key] = dr
    return scope


def link_activity(act: ActivityDef, libraries: Aliased[LibraryDef], problems: Problems) -> None:
    """An activity's Libraries become its scope (for $apply of the activity on its own).
    Raises Unsupported when it depends on CQL."""
    if act.raw.get("library"):
        where = Source(act.source.file, "ActivityDefinition.library")
        act.variables = _library_scope(act.raw["library"], libraries, where, problems, act.data_requirements)


def link_plan(plan: PlanDef, libraries: Aliased[LibraryDef], activities: Aliased[ActivityDef], plans: Aliased[PlanDef],
              problems: Problems) -> None:
    """A plan's scope, prefetch keys, resolved definitions and hooks.  Raises Unsupported when it
    depends on CQL."""
    scope = _library_scope(plan.raw.get("library", []), libraries, Source(plan.source.file, "PlanDefinition.library"),
                           problems, plan.data_requirements)
    for name, var in plan.variables.items():
        if name in scope:
            problems.error(var.source, f"variable %{name} is already defined at {scope[name].source}")
        scope[name] = var
    for a in walk(plan.actions):
        for dr in data_requirements(a.raw.get("input"), f"{a.path}.input", plan.source.file, problems):
            plan.data_requirements.setdefault(dr.key, dr)
        if a.definition:
            ref = plan.url + a.definition if a.definition.startswith("#") else a.definition  # contained
            target = activities.resolve(ref) or plans.resolve(ref)
            if target is not None:
                a.definition = target.url
            elif not problems.is_broken(ref):  # an invalid definition is reported where it is invalid
                problems.error(Source(plan.source.file, f"{a.path}.definitionCanonical"),
                               f"{a.definition} does not resolve to a loaded ActivityDefinition or PlanDefinition")
    plan.variables = scope
    plan.hooks = sorted({h for a in walk(plan.actions) for h in (a.triggers or ())})


def nest(plans: Mapping[str, PlanDef], known: Mapping[str, PlanDef], problems: Problems) -> None:
    """Resolve the actions whose definition is a PlanDefinition (`known`: every compiled plan, `plans`:
    those loaded), find nesting cycles, and give each plan the prefetch keys and quiet policies of
    the plans it nests (nested ones first)."""
    edges: dict[str, list[tuple[ActionDef, PlanDef]]] = {}
    for plan in plans.values():
        edges[plan.url] = []
        for a in walk(plan.actions):
            if not a.definition or a.definition not in known:
                continue
            where = Source(plan.source.file, f"{a.path}.definitionCanonical")
            target = plans.get(a.definition)
            if target is None:
                problems.error(where, f"PlanDefinition {a.definition} is not loaded (see its own issue): "
                                      "its rules cannot be applied here")
                continue
            a.plan = target
            edges[plan.url].append((a, target))
            if plan.url not in target.nested_in:
                target.nested_in.append(plan.url)
    done: set[str] = set()

    def visit(plan: PlanDef, stack: tuple[str, ...]) -> None:
        if plan.url in done:
            return
        for action, target in edges.get(plan.url, []):
            if target.url in stack + (plan.url,):
                cycle = " -> ".join(stack + (plan.url, target.url))
                problems.error(Source(plan.source.file, f"{action.path}.definitionCanonical"),
                               f"PlanDefinition nesting cycle: {cycle}")
                action.plan = None
                continue
            visit(target, stack + (plan.url,))
            for key, dr in target.data_requirements.items():
                if key in plan.data_requirements and plan.data_requirements[key].raw != dr.raw:
                    problems.error(dr.source, f"prefetch key {key!r} is defined differently at "
                                              f"{plan.data_requirements[key].source}")
                plan.data_requirements.setdefault(key, dr)
            for code, policy in target.quiet.items():
                plan.quiet.setdefault(code, policy)
        done.add(plan.url)

    for plan in plans.values():
        visit(plan, ())


def endpoint_service_id(plan: Element) -> str | None:
    """The service id a PlanDefinition names with cqf-cdsHooksEndpoint (valueUri): the URI's last
    path segment; None without the extension or with an empty value."""
    uri = next((e.get("valueUri") for e in plan.get("extension", []) if e.get("url") == EXT_CDS_HOOKS_ENDPOINT), None)
    if not isinstance(uri, str):
        return None
    return uri.rstrip("/").rsplit("/", 1)[-1] or None


def services(plans: dict[str, PlanDef], problems: Problems) -> dict[str, ServiceDef]:
    """`<plan id>-<hook>` per hook; a plan naming its service (cqf-cdsHooksEndpoint) serves all its
    hooks under that id; a plan only nested in others, without one, serves nothing."""
    out: dict[str, ServiceDef] = {}
    for plan in plans.values():
        custom = endpoint_service_id(plan.raw)
        if custom is None and plan.nested_in:
            continue
        wanted = [(custom, tuple(plan.hooks))] if custom else [(f"{plan.id}-{h}", (h,)) for h in plan.hooks]
        for sid, hooks in wanted:
            if not hooks:
                continue
            if sid in out:
                problems.error(plan.source, f"CDS service id {sid!r} is also produced by {out[sid].plan.source.file}")
                continue
            out[sid] = ServiceDef(sid, hooks, plan)
    return out
