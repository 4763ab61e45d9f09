"""Lint linked content: what compiles and links may still be wrong, and must fail at load.

Rules:
- `%variables` must be defined: the engine's own (ENGINE_VARIABLES), FHIRPath's, the scope's
  and the prefetch keys; `%item` only under a cds-for-each action, never in a variable.  An
  activity's expressions are checked against its own Libraries and against every plan using it.
- Variable dependencies must not form a cycle.
- A ValueSet URL quoted in an expression must be in the content; every ValueSet must expand.
- The unit a string literal names in `inUnit('...')`, `dose('...')` or `dailyDose('...')`
  must be valid UCUM in its usual spelling ('mg', not 'MG', which UCUM reads as megagauss):
  conversions of patient data fail quietly, so a typo in the content must fail loudly.
- ConceptMaps: every strength property is "<decimal> <UCUM unit>" and every dose form a product
  map uses is listed in a dose-form -> route map (`service.engine.products`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TypeAlias

from service.engine import ucum, units
from service.engine.fhirjson import Resource
from service.engine.fhirpath import STANDARD_VARIABLES, Expression
from service.engine.link import Aliased, walk
from service.engine.model import ActionDef, ActivityDef, PlanDef, Source, Variable
from service.engine.problems import Problems
from service.engine.terminology import Terminology, TerminologyError

# Variables the engine binds for every evaluation (see service.engine.apply and .scope).
ENGINE_VARIABLES = frozenset({"now", "hook", "selections", "draftOrders", "subject", "userId", "encounterId"})
ITEM = "item"  # bound by cds-for-each inside the action's subtree
UNIT_FUNCTIONS = ("inUnit", "dose", "dailyDose")  # their first argument is a UCUM unit
_VALUESET_URL = re.compile(r"'(https?://[^']*/ValueSet/[^']*)'")

Located: TypeAlias = tuple[Expression, Source]  # an expression and where it is authored


def lint_terminology(terminology: Terminology, valuesets: dict[str, Resource], file_of: Callable[[Resource], str],
                     problems: Problems) -> None:
    for url, vs in valuesets.items():
        try:
            terminology.expand(url)
        except TerminologyError as exc:
            problems.error(Source(file_of(vs), "ValueSet.compose"), str(exc))
    for file, path, message in terminology.medications.lint():
        problems.error(Source(file, path), message)


def lint_activity(act: ActivityDef, terminology: Terminology, problems: Problems) -> None:
    if act.raw.get("library"):
        known = ENGINE_VARIABLES | STANDARD_VARIABLES | set(act.variables) | set(act.data_requirements)
        for dv in act.dynamic_values:
            missing = sorted(dv.expression.variables - known)
            if missing:
                problems.error(dv.source, "undefined variable(s): " + ", ".join("%" + m for m in missing))
    _check_valuesets(((dv.expression, dv.source) for dv in act.dynamic_values), terminology, problems)
    _check_units(((dv.expression, dv.source) for dv in act.dynamic_values), problems)


def lint_plan(plan: PlanDef, activities: Aliased[ActivityDef], terminology: Terminology, problems: Problems) -> None:
    known = ENGINE_VARIABLES | STANDARD_VARIABLES | set(plan.variables) | set(plan.data_requirements)
    for var in plan.variables.values():
        if ITEM in var.expression.variables:
            problems.error(var.source, "%item exists only inside a cds-for-each action; a variable cannot use it")
    for expr, src, item_bound in _scoped_expressions(plan):
        missing = sorted(expr.variables - known - ({ITEM} if item_bound else set()))
        if missing:
            problems.error(src, "undefined variable(s): " + ", ".join("%" + m for m in missing)
                           + (" (%item exists only under a cds-for-each action)" if ITEM in missing else ""))
    _check_valuesets(_expressions(plan), terminology, problems)
    _check_units(_expressions(plan), problems)
    _check_cycles(plan.variables, problems)
    # The same activities' expressions see the plan's variables: check them too.
    for a in walk(plan.actions):
        act = activities.resolve(a.definition)
        for dv in act.dynamic_values if act else ():
            missing = sorted(dv.expression.variables - known)
            if missing:
                problems.error(dv.source, f"undefined variable(s) when applied from {plan.url}: "
                               + ", ".join("%" + m for m in missing))


def _expressions(plan: PlanDef) -> Iterator[Located]:
    for v in plan.variables.values():
        yield v.expression, v.source
    for a in walk(plan.actions):
        for c in a.conditions:
            yield c.expression, c.source
        for dv in a.dynamic_values:
            yield dv.expression, dv.source
        if isinstance(a.is_recommended, Expression):
            yield a.is_recommended, a.source
        for extra in (a.for_each, a.target):
            if extra is not None:
                yield extra, a.source


def _scoped_expressions(plan: PlanDef) -> Iterator[tuple[Expression, Source, bool]]:
    """(expression, source, whether %item is bound there) for every expression of the plan."""
    for v in plan.variables.values():
        yield v.expression, v.source, False

    def visit(actions: list[ActionDef], bound: bool) -> Iterator[tuple[Expression, Source, bool]]:
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
            yield from visit(a.children, inner)

    yield from visit(plan.actions, False)


def _check_valuesets(exprs: Iterable[Located], terminology: Terminology, problems: Problems) -> None:
    for expr, src in exprs:
        for url in _VALUESET_URL.findall(expr.text):
            if url not in terminology:
                problems.error(src, f"ValueSet {url} is not in the content")


def _check_units(exprs: Iterable[Located], problems: Problems) -> None:
    for expr, src in exprs:
        for name, args in expr.calls():
            unit = args[0] if name in UNIT_FUNCTIONS and args else None
            if unit is None:
                continue
            usual = units.spelling(unit)
            if not ucum.is_unit(unit):
                problems.error(src, f"{name}({unit!r}): {unit!r} is not a UCUM unit (http://unitsofmeasure.org)"
                               + (f"; write {usual!r}" if usual else ""))
            elif units.usual_ucum(unit) is None:
                problems.error(src, f"{name}({unit!r}): write {usual!r} ({unit!r} is another UCUM unit, or a "
                                    "variant spelling)")


def _check_cycles(scope: dict[str, Variable], problems: Problems) -> None:
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = stack[stack.index(name):] + [name]
            problems.error(scope[name].source, "variable dependency cycle: " + " -> ".join("%" + c for c in cycle))
            return
        state[name] = 1
        for dep in sorted(scope[name].expression.variables & scope.keys()):
            visit(dep, stack + [name])
        state[name] = 2

    for name in scope:
        visit(name, [])
