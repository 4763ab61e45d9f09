"""PlanDefinition and ActivityDefinition `$apply` (FHIR R4 §12.18, §12.21), without I/O.

Rules:
- Time is an argument (`ApplyContext.now`), never the clock.
- The request's data is indexed once; each variable (plan, then its Libraries) is
  evaluated at most once per call, lazily, in dependency order.
- An action applies when its trigger matches the hook (or it has none, or inherits one)
  and its applicability conditions hold (all of them, or any with cqf-applicabilityBehavior
  `any`).  `start` and `stop` conditions describe when a proposed activity begins or ends;
  a CDS call proposes activities now, so they are recorded in the trace and not evaluated.
- Fail closed: an expression error, or an error in any variable it uses, makes the
  condition false and the action not fire; a `dynamicValue` that yields nothing for a
  path of the created resource drops that resource (never a default dose).  Every such
  event is an issue in the trace.
- Fail visible: a card action (one with a `title`) whose applicability could not be decided
  because of an error (an expression or a variable it reads failed, its cds-for-each
  collection failed) is listed in `ApplyResult.not_evaluated`, so the caller can tell the
  clinician which guidance was not checked instead of leaving it out silently.
- A dynamicValue whose expression is the empty-collection literal `{}` removes the element
  at its path (R4 `PlanDefinition.action.dynamicValue.path` holds the expression's result,
  here nothing):
  an `update` drops what the changed resource no longer says, e.g. a draft's free-text
  dose instructions.  Only the literal removes; an expression that happens to yield
  nothing still fails closed.
- dynamicValue paths starting with `action.` customise the RequestGroup action (title,
  description, priority, textEquivalent, documentation...); all others apply to the
  created resource.
- Every proposed resource gets a generated narrative from its final structured content
  (`narrative.with_narrative`), and ids derive from hookInstance, subject and action, so
  one hookInstance reused for two patients never yields the same ids.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.engine import narrative
from service.engine.activity import activity_resource
from service.engine.fhirpath import Evaluation, Expression, as_boolean, to_python
from service.engine.index import DataIndex
from service.engine.model import EXT_OVERRIDE_REASON, ActionDef, ActivityDef, ContentSet, PlanDef
from service.engine.paths import EMPTY_LITERAL, remove_path, set_path
from service.engine.terminology import canonical
from service.errors import ExpressionError

_NAMESPACE = uuid.UUID("6f1c7f0e-3d8a-5b7e-9a51-2f4c8d0b9e11")


@dataclass
class ApplyContext:
    """Inputs of one $apply: who, when, which hook, and the data keyed by prefetch key."""

    now: datetime
    subject: str  # "Patient/<id>"
    data: dict[str, Any] = field(default_factory=dict)
    hook: str | None = None
    hook_instance: str = ""
    encounter: str | None = None
    practitioner: str | None = None
    draft_orders: dict | None = None
    selections: list[str] = field(default_factory=list)
    # Explain the result (asked for by a trace): every condition's operands with their results,
    # and every variable of the plan's scope with its value.  Off, nothing extra is evaluated.
    explain: bool = False


@dataclass
class AppliedAction:
    """One RequestGroup.action produced by $apply."""

    definition: ActionDef
    key: str  # stable identity: plan url + action path
    title: str | None
    description: str | None
    priority: str | None
    text_equivalent: str | None
    selection_behavior: str | None
    grouping_behavior: str | None
    type: str | None
    documentation: list[dict]
    code: list[dict]
    is_recommended: bool
    override_reasons: list[dict]
    resource: dict | None
    children: list[AppliedAction]

    @property
    def id(self) -> str:
        return self.definition.id


@dataclass(frozen=True)
class NotEvaluated:
    """A card action whose applicability could not be decided (fail closed, but visible)."""

    definition: ActionDef
    reason: str

    @property
    def priority(self) -> str | None:
        return self.definition.raw.get("priority")

    @property
    def code(self) -> list[dict]:
        return self.definition.raw.get("code", [])


@dataclass
class ApplyResult:
    plan: PlanDef
    context: ApplyContext
    actions: list[AppliedAction]
    trace: list[dict]
    issues: list[dict]
    not_evaluated: list[NotEvaluated] = field(default_factory=list)
    # With `ApplyContext.explain`: each variable of the plan's scope by name, as
    # {"value": JSON-ready value} or {"error": why it could not be computed}.
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)


class _VariableFailed(ExpressionError):
    """A variable an expression reads could not be computed (the cause is already an issue)."""

    def __init__(self, name: str):
        super().__init__("%" + name, f"variable %{name} failed")
        self.name = name


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


class _Run:
    """State of one plan application."""

    def __init__(self, content: ContentSet, plan: PlanDef, ctx: ApplyContext):
        self.content = content
        self.plan = plan
        self.ctx = ctx
        self.bindings: dict[str, Any] = {}  # %item inside a cds-for-each subtree
        self.trace: list[dict] = []
        self.issues: list[dict] = []
        self.failed: set[str] = set()
        self.not_evaluated: dict[str, NotEvaluated] = {}  # by action id: once per action, not per item
        self.values: dict[str, Any] = {
            "hook": ctx.hook,
            "selections": list(ctx.selections),
            "draftOrders": ctx.draft_orders if ctx.draft_orders is not None else [],
            "subject": ctx.subject,
            "userId": ctx.practitioner,
            "encounterId": ctx.encounter,
        }
        for key in plan.data_requirements:
            value = ctx.data.get(key)
            self.values[key] = [] if value is None else value
        # The call's data, indexed once, with its time and terminology: passed to every evaluation.
        self.evaluation = Evaluation(ctx.now, DataIndex(content.terminology), content.terminology)
        for value in [*ctx.data.values(), ctx.draft_orders]:
            self.evaluation.index.add(value)
        # Results of expressions that do not read %item, by text: several rules often share one
        # condition or collection (they depend only on variables, each fixed for the run).
        self.memo: dict[str, list] = {}
        self.focus = next(
            (v for v in ctx.data.values() if isinstance(v, dict) and v.get("resourceType") == "Patient"),
            {"resourceType": "Patient", "id": ctx.subject.rsplit("/", 1)[-1]},
        )

    # ---- expressions ----------------------------------------------------------------

    # The run is the lazy variable source of its evaluations (`fhirpath.Variables`): each variable
    # is computed on first read, at most once.  (Itself, not a helper pointing back at it: a
    # reference cycle would keep the call's data index alive until the next full collection.)

    def has(self, name: str) -> bool:
        return name in self.bindings or name in self.values or name in self.plan.variables

    def get(self, name: str) -> Any:
        if name in self.bindings:
            return self.bindings[name]
        return self.variable(name)

    def variable(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.failed:
            raise _VariableFailed(name)
        var = self.plan.variables[name]
        try:
            value = var.expression.evaluate(self.evaluation, self.focus, {}, self)
        except _VariableFailed:
            self.failed.add(name)
            raise
        except ExpressionError as exc:
            self.failed.add(name)
            self.issue(str(var.source), f"variable %{name}: {exc.message}")
            raise _VariableFailed(name) from None
        self.values[name] = value
        return value

    def evaluate(self, expr: Expression, where: str, focus: Any = None) -> list | None:
        """Evaluate, or record why not and return None (fail closed)."""
        shared = focus is None and "item" not in expr.variables
        if shared and expr.text in self.memo:
            return self.memo[expr.text]
        try:
            values = expr.evaluate(self.evaluation, self.focus if focus is None else focus, {}, self)
            if shared:
                self.memo[expr.text] = values
            return values
        except _VariableFailed as exc:
            self.issue(where, f"not evaluated: variable %{exc.name} failed")
        except ExpressionError as exc:
            self.issue(where, exc.message)
        return None

    def holds(self, expr: Expression, where: str) -> tuple[bool, str | None]:
        """A condition's verdict, and the reason when it could not be decided (fail closed)."""
        try:
            return expr.holds(self.evaluation, self.focus, {}, self), None
        except _VariableFailed as exc:
            message = f"not evaluated: variable %{exc.name} failed"
        except ExpressionError as exc:
            message = exc.message
        self.issue(where, message)
        return False, message

    def issue(self, where: str, message: str, severity: str = "error") -> None:
        self.issues.append({"severity": severity, "location": where, "message": message})

    def not_decided(self, action: ActionDef, reason: str) -> None:
        """A card action that could not be evaluated: remember it (the first reason) if it is a card."""
        if action.raw.get("title") and action.id not in self.not_evaluated:
            self.not_evaluated[action.id] = NotEvaluated(action, reason)

    # ---- actions --------------------------------------------------------------------

    def applicable(self, action: ActionDef) -> tuple[bool, list[dict]]:
        results = []
        verdicts = []
        for cond in action.conditions:
            entry: dict[str, Any] = {"kind": cond.kind, "expression": cond.expression.text}
            if cond.kind != "applicability":
                entry["result"] = "not evaluated (start/stop conditions time the proposed activity)"
                results.append(entry)
                continue
            verdict, error = self.holds(cond.expression, str(cond.source))
            entry["result"] = verdict
            if error:
                entry["error"] = error
            if self.ctx.explain:
                entry["operands"] = self.operands(cond.expression)
            verdicts.append(verdict)
            used = self.resources_used(cond.expression)
            if used:
                entry["resources"] = used
            results.append(entry)
        if not verdicts:
            return True, results
        ok = any(verdicts) if action.applicability_behavior == "any" else all(verdicts)
        return ok, results

    def operands(self, expr: Expression) -> list[dict[str, Any]]:
        """Each operand of a condition's `and` chain with its result (explain only)."""
        out: list[dict[str, Any]] = []
        for text, result in expr.operands(self.evaluation, self.focus, {}, self):
            if isinstance(result, ExpressionError):
                out.append({"expression": text, "error": result.message})
            else:
                out.append({"expression": text, "result": to_python(result)})
        return out

    def explained_variables(self) -> dict[str, dict[str, Any]]:
        """Every variable of the plan's scope with its value or why it failed (explain only)."""
        out: dict[str, dict[str, Any]] = {}
        for name in self.plan.variables:
            try:
                out[name] = {"value": to_python(self.variable(name))}
            except _VariableFailed as exc:
                cause = next((i["message"] for i in self.issues if i["message"].startswith(f"variable %{name}:")),
                             None)
                out[name] = {"error": cause or f"variable %{exc.name} failed"}
        return out

    def resources_used(self, expr: Expression) -> list[str]:
        """References of the resources behind a condition: its variables' values, followed
        through the variables they are computed from."""
        refs: list[str] = []
        seen: set[str] = set()
        stack = sorted(expr.variables)
        while stack and len(refs) < 20:
            name = stack.pop(0)
            if name in seen:
                continue
            seen.add(name)
            value = self.values.get(name)
            for item in value if isinstance(value, list) else [value]:
                data = getattr(item, "data", item)
                if isinstance(data, dict) and data.get("resourceType") and data.get("id"):
                    ref = f"{data['resourceType']}/{data['id']}"
                    if ref not in refs:
                        refs.append(ref)
            if name in self.plan.variables:
                stack.extend(sorted(self.plan.variables[name].expression.variables - seen))
        return refs[:20]

    def apply_action(self, action: ActionDef, inherited: frozenset[str] | None) -> list[AppliedAction]:
        """Apply one action: once, or once per item of its cds-for-each collection."""
        triggers = action.triggers if action.triggers is not None else inherited
        if self.ctx.hook and triggers is not None and self.ctx.hook not in triggers:
            return []
        if action.for_each is None:
            applied = self.apply_one(action, triggers, "")
            return [applied] if applied is not None else []
        items = self.evaluate(action.for_each, f"{action.source} (cds-for-each)")
        if items is None:
            self.not_decided(action, "the orders it checks could not be selected")
        out = []
        outer = self.bindings.get("item")
        try:
            for n, item in enumerate(items or []):
                data = getattr(item, "data", item)
                suffix = f"/{data['resourceType']}/{data['id']}" if isinstance(data, dict) and data.get("id") else f"/{n}"
                self.bindings["item"] = [item]
                applied = self.apply_one(action, triggers, suffix)
                if applied is not None:
                    out.append(applied)
        finally:
            if outer is None:
                self.bindings.pop("item", None)
            else:
                self.bindings["item"] = outer
        return out

    def apply_one(self, action: ActionDef, triggers: frozenset[str] | None, suffix: str) -> AppliedAction | None:
        ok, conditions = self.applicable(action)
        entry = {"action": action.id + suffix, "path": action.path, "conditions": conditions, "applied": ok}
        self.trace.append(entry)
        if not ok:
            failed = next((c["error"] for c in conditions if "error" in c), None)
            if failed is not None:
                self.not_decided(action, failed)
            return None
        raw = dict(action.raw)  # dynamicValues on `action.*` customise this copy only
        resource_values = []
        for dv in action.dynamic_values:
            values = self.evaluate(dv.expression, str(dv.source))
            if values is None:
                entry.update(applied=False, reason=f"dynamicValue {dv.path} failed")
                self.not_decided(action, f"dynamicValue {dv.path} failed")
                return None
            if dv.path.startswith("action."):
                value = _value(values) if values else None
                if value is not None:
                    top = dv.path[len("action."):].split(".")[0].split("[")[0]
                    if top in raw:
                        raw[top] = _copy(raw[top])
                    try:
                        set_path(raw, dv.path[len("action."):], value)
                    except ValueError as exc:
                        self.issue(str(dv.source), str(exc))
            else:
                resource_values.append((dv, values))
        resource = None
        if action.target is not None:
            resource = self.apply_target(action, resource_values)
        elif action.definition:
            resource = self.apply_definition(action, resource_values, suffix)
        if resource is None and (action.target is not None or action.definition):
            entry.update(applied=False, reason="no resource to propose")
            return None
        children = [c for ch in action.children for c in self.apply_action(ch, triggers)]
        return AppliedAction(
            definition=action,
            key=f"{self.plan.url}#{action.path}{suffix}",
            title=_str(raw.get("title")),
            description=_str(raw.get("description")),
            priority=raw.get("priority"),
            text_equivalent=_str(raw.get("textEquivalent")),
            selection_behavior=raw.get("selectionBehavior"),
            grouping_behavior=raw.get("groupingBehavior"),
            type=((raw.get("type") or {}).get("coding") or [{}])[0].get("code"),
            documentation=raw.get("documentation", []),
            code=raw.get("code", []),
            is_recommended=self.is_recommended(action),
            override_reasons=[e["valueCoding"] for e in raw.get("extension", [])
                              if e.get("url") == EXT_OVERRIDE_REASON and "valueCoding" in e],
            resource=resource,
            children=children,
        )

    def apply_target(self, action: ActionDef, resource_values) -> dict | None:
        """update/remove: a copy of the existing resource, with the action's dynamicValues applied."""
        values = self.evaluate(action.target, f"{action.source} (cds-target)")
        if not values or len(values) != 1:
            if values is not None:
                self.issue(str(action.source), f"cds-target must select exactly one resource, got {len(values)}")
            return None
        target = to_python(values[0])
        if not isinstance(target, dict) or not target.get("resourceType") or not target.get("id"):
            self.issue(str(action.source), "cds-target is not a resource with an id")
            return None
        resource = _copy(target)
        return self.apply_values(resource, resource_values)

    def apply_values(self, resource: dict, pairs) -> dict | None:
        for dv, values in pairs:
            if dv.expression.text.strip() == EMPTY_LITERAL:
                try:
                    remove_path(resource, dv.path)
                except ValueError as exc:
                    self.issue(str(dv.source), str(exc))
                    return None
                continue
            if values is None:
                return None
            if not values:
                self.issue(str(dv.source), f"dynamicValue {dv.path} is empty: resource not proposed", "warning")
                return None
            try:
                set_path(resource, dv.path, _value(values))
            except ValueError as exc:
                self.issue(str(dv.source), str(exc))
                return None
        return narrative.with_narrative(resource)

    def is_recommended(self, action: ActionDef) -> bool:
        rec = action.is_recommended
        if not isinstance(rec, Expression):
            return bool(rec)
        values = self.evaluate(rec, f"{action.source} (cds-is-recommended)")
        try:
            return values is not None and as_boolean(values, rec.text)
        except ExpressionError:
            return False

    def apply_definition(self, action: ActionDef, action_values, suffix: str = "") -> dict | None:
        activity = self.content.activities.get(canonical(action.definition))
        if activity is None:
            self.issue(str(action.source), f"definition {action.definition} is not an ActivityDefinition")
            return None
        resource = _proposed(activity, self.ctx, stable_id(self.ctx.hook_instance, self.ctx.subject,
                                                           self.plan.url, action.path + suffix))
        pairs = [(dv, self.evaluate(dv.expression, str(dv.source))) for dv in activity.dynamic_values]
        return self.apply_values(resource, pairs + action_values)


def _str(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def _value(values: list) -> Any:
    py = to_python(values)
    return py[0] if len(py) == 1 else py


def _copy(value: Any) -> Any:
    return copy.deepcopy(value)


def _proposed(activity: ActivityDef, ctx: ApplyContext, resource_id: str) -> dict:
    return activity_resource(activity, resource_id, ctx.subject, ctx.encounter, ctx.practitioner)


# ---- entry points -------------------------------------------------------------------------


def apply_plan(content: ContentSet, plan: PlanDef, ctx: ApplyContext) -> ApplyResult:
    """PlanDefinition $apply for one hook call (or for all hooks when ctx.hook is None)."""
    run = _Run(content, plan, ctx)
    actions = [a for x in plan.actions for a in run.apply_action(x, None)]
    issues = list(run.issues)  # explaining reads variables the rules did not: their issues are not the call's
    variables = run.explained_variables() if ctx.explain else {}
    return ApplyResult(plan, ctx, actions, run.trace, issues, list(run.not_evaluated.values()), variables)


def apply_activity(content: ContentSet, activity: ActivityDef, ctx: ApplyContext) -> tuple[dict | None, list[dict]]:
    """ActivityDefinition $apply on its own (its Library variables): the resource, or None and why."""
    scope = PlanDef(activity.url, {}, activity.source, [], dict(activity.variables), dict(activity.data_requirements))
    run = _Run(content, scope, ctx)
    resource = _proposed(activity, ctx, stable_id(ctx.hook_instance, ctx.subject, activity.url))
    pairs = [(dv, run.evaluate(dv.expression, str(dv.source))) for dv in activity.dynamic_values]
    resource = run.apply_values(resource, pairs)
    return resource, run.issues
