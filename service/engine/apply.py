"""PlanDefinition and ActivityDefinition `$apply` (FHIR R4 §12.18.4.1, §12.21.4.1), without I/O.

The steps of applying a PlanDefinition (R4 plandefinition.html §12.18.3.3), each in its own module:
1. the call's values and the Library variables computed from them (`scope`);
2. for each action, in content order and depth first: select it by its trigger, decide its
   applicability conditions (`conditions`); a cds-for-each action does so once per item of its
   collection, as `%item`;
3. evaluate its dynamicValues: the `action.*` ones customise the action, the others are for its
   resource (`dynamic`);
4. apply its definition (an ActivityDefinition) or change its target resource (`propose`); a
   definition that is a PlanDefinition is applied in its own scope (its Libraries' and its own
   variables), its applied actions nested under the action, only those answering the hooks the
   action answers (its triggers intersected with theirs);
5. its sub-actions, then the RequestGroup action it becomes (`assemble`); the result holds the
   applied actions, the trace of every action considered and the issues met (`applymodel`); asked
   to explain (`ApplyContext.explain`), the trace gives each condition's operands (`conditions`) and
   the result every variable's value (`scope`), computed only then.

Rules:
- Time is an argument (`ApplyContext.now`), never the clock; the result is a function of the inputs.
- The call's data is indexed once (`ApplyContext.index`, or an index made here): the data and the
  draft orders are added to it, a value it already holds is not indexed again.
- Fail closed: an expression error, or an error in any variable it uses, makes the condition false
  and the action not fire; a dynamicValue that cannot be evaluated, or yields nothing for a path of
  the resource, drops the action's resource and so the action (never a default dose).  Every such
  event is an issue.
- Fail visible: a card action (one with a `title`) whose applicability could not be decided because
  of an error (a condition, a variable it reads, its cds-for-each collection, or a dynamicValue
  failed) is listed once in `ApplyResult.not_evaluated`, so the caller can tell the clinician which
  guidance was not checked instead of leaving it out silently.
- An action's identity is plan url + action path (+ `/<type>/<id>` of its cds-for-each item), so one
  hookInstance reused for two patients never yields the same ids.
"""

from __future__ import annotations

from typing import Any

from service.engine import conditions, dynamic, propose
from service.engine.applymodel import AppliedAction, ApplyContext, ApplyResult, NotEvaluated, stable_id
from service.engine.assemble import applied_action, recommended
from service.engine.fhirpath import Evaluation
from service.engine.index import DataIndex
from service.engine.model import ActionDef, ActivityDef, ContentSet, PlanDef
from service.engine.scope import Scope


def apply_plan(content: ContentSet, plan: PlanDef, ctx: ApplyContext) -> ApplyResult:
    """PlanDefinition $apply for one hook call (or for all hooks when ctx.hook is None)."""
    call = _Call(content, ctx)
    run = _Walk(call, plan, None)
    actions = [a for x in plan.actions for a in run.action(x, None)]
    scopes = list(call.scopes.values())
    variables: dict[str, Any] = {}
    for scope in scopes if ctx.explain else ():
        for name, value in scope.explained_variables().items():
            variables.setdefault(name, value)
    issues = scopes[0].issues if len(scopes) == 1 else [i for scope in scopes for i in scope.issues]
    return ApplyResult(plan, ctx, actions, call.trace, issues, list(call.not_evaluated.values()), variables)


def apply_activity(content: ContentSet, activity: ActivityDef,
                   ctx: ApplyContext) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """ActivityDefinition $apply on its own (its Library variables): the resource, or None and why."""
    scope = _scope(content, dict(activity.variables), list(activity.data_requirements), ctx)
    resource_id = stable_id(ctx.hook_instance, ctx.subject, activity.url)
    return propose.from_activity(scope, ctx, activity, resource_id, []), scope.issues


def _scope(content: ContentSet, variables: dict[str, Any], keys: list[str], ctx: ApplyContext,
           index: DataIndex | None = None, evaluation: Evaluation | None = None) -> Scope:
    """The call's values (§12.18.3.3 "the context"), its data indexed once, and the Patient in focus."""
    values: dict[str, Any] = {
        "hook": ctx.hook,
        "selections": list(ctx.selections),
        "draftOrders": ctx.draft_orders if ctx.draft_orders is not None else [],
        "subject": ctx.subject,
        "userId": ctx.practitioner,
        "encounterId": ctx.encounter,
    }
    for key in keys:
        value = ctx.data.get(key)
        values[key] = [] if value is None else value
    index = index if index is not None else _index(content, ctx)
    focus = next(
        (v for v in ctx.data.values() if isinstance(v, dict) and v.get("resourceType") == "Patient"),
        {"resourceType": "Patient", "id": ctx.subject.rsplit("/", 1)[-1]},
    )
    if evaluation is None:
        evaluation = Evaluation(ctx.now, index, content.terminology)
    return Scope(evaluation, variables, values, focus)


def _index(content: ContentSet, ctx: ApplyContext) -> DataIndex:
    """The caller's index of this call's data, or a new one; the data and the draft orders added."""
    index = ctx.index if ctx.index is not None else DataIndex(content.terminology)
    if index.terminology is not content.terminology:
        raise ValueError("ApplyContext.index was made with another terminology than the content's")
    for value in [*ctx.data.values(), ctx.draft_orders]:
        index.add(value)
    return index


class _Call:
    """What the plans applied in one call share: the data index, the trace, the card actions not
    evaluated, and one scope per plan (a nested plan's actions read its own variables)."""

    def __init__(self, content: ContentSet, ctx: ApplyContext):
        self.content = content
        self.ctx = ctx
        self.index = _index(content, ctx)
        self.trace: list[dict[str, Any]] = []
        self.not_evaluated: dict[str, NotEvaluated] = {}  # by plan url and action id: once per action
        self.scopes: dict[str, Scope] = {}  # by plan url, made when the plan is first applied
        # One Evaluation (the call's time, index, terminology and caches) for every plan of the call.
        self.evaluation = Evaluation(ctx.now, self.index, content.terminology)

    def scope(self, plan: PlanDef) -> Scope:
        if plan.url not in self.scopes:
            self.scopes[plan.url] = _scope(self.content, plan.variables, list(plan.data_requirements), self.ctx,
                                           self.index, self.evaluation)
        return self.scopes[plan.url]


class _Walk:
    """The actions of one plan, applied depth first (§12.18.3.3), with the trace of each.  A plan
    nested by an action (`ActionDef.plan`) is walked in its own scope, its actions limited to the
    hooks the nesting action answers (`within`)."""

    def __init__(self, call: _Call, plan: PlanDef, within: frozenset[str] | None, nested: bool = False):
        self.call = call
        self.nested = nested
        self.content = call.content
        self.plan = plan
        self.ctx = call.ctx
        self.within = within
        self.scope = call.scope(plan)
        self.trace = call.trace
        self.not_evaluated = call.not_evaluated

    def not_decided(self, action: ActionDef, reason: str) -> None:
        """A card action that could not be evaluated: remembered (its first reason) if it is a card."""
        key = f"{self.plan.url}#{action.id}"
        if action.raw.get("title") and key not in self.not_evaluated:
            self.not_evaluated[key] = NotEvaluated(action, reason)

    def action(self, action: ActionDef, inherited: frozenset[str] | None, within: str = "") -> list[AppliedAction]:
        """Apply one action: once, or once per item of its cds-for-each collection.  `within` is the
        suffix of the application of the parent it is a sub-action of (`/MedicationRequest/<id>` for
        one item of a cds-for-each parent): the action's own ids extend it, so that the sub-actions of
        each item get ids of their own (the ids of cards, suggestions and proposed resources derive
        from them, and must differ from one item to the next)."""
        hooks = conditions.triggers(action, inherited)
        if self.within is not None:  # a nested plan's action: only for the hooks its nesting action answers
            hooks = self.within if hooks is None else hooks & self.within
            if not hooks:
                return []
        if not conditions.selected(self.ctx.hook, hooks):
            return []
        if action.for_each is None:
            applied = self.once(action, hooks, within)
            return [applied] if applied is not None else []
        items = self.scope.evaluate(action.for_each, f"{action.source} (cds-for-each)")
        if items is None:
            self.not_decided(action, "the orders it checks could not be selected")
        out = []
        for n, item in enumerate(items or []):
            data = getattr(item, "data", item)
            suffix = within + (f"/{data['resourceType']}/{data['id']}" if isinstance(data, dict) and data.get("id")
                               else f"/{n}")
            with self.scope.item(item):
                applied = self.once(action, hooks, suffix)
            if applied is not None:
                out.append(applied)
        return out

    def once(self, action: ActionDef, hooks: frozenset[str] | None, suffix: str) -> AppliedAction | None:
        """One application of an action: conditions, dynamicValues, resource, sub-actions."""
        ok, checked = conditions.applicable(self.scope, action, self.ctx.explain)
        entry: dict[str, Any] = {"action": action.id + suffix, "path": action.path, "conditions": checked,
                                 "applied": ok}
        if self.nested:
            entry["plan"] = self.plan.id  # the path is in that plan
        self.trace.append(entry)
        if not ok:
            error = conditions.first_error(checked)
            if error is not None:
                self.not_decided(action, error)
            return None
        values = dynamic.action_values(self.scope, action.raw, action.dynamic_values)
        if values.failed is not None:
            entry.update(applied=False, reason=f"dynamicValue {values.failed} failed")
            self.not_decided(action, f"dynamicValue {values.failed} failed")
            return None
        resource = None
        if action.target is not None:
            resource = propose.from_target(self.scope, action, action.target, values.for_resource)
        elif action.definition and action.plan is None:
            resource_id = stable_id(self.ctx.hook_instance, self.ctx.subject, self.plan.url, action.path + suffix)
            resource = propose.from_definition(self.scope, self.content, self.ctx, action, resource_id,
                                               values.for_resource)
        if resource is None and (action.target is not None or (action.definition and action.plan is None)):
            entry.update(applied=False, reason="no resource to propose")
            return None
        children = [c for child in action.children for c in self.action(child, hooks, suffix)]
        if action.plan is not None:  # its rules plan, applied for the hooks this action answers
            nested = _Walk(self.call, action.plan, hooks, nested=True)
            children = [c for x in action.plan.actions for c in nested.action(x, None)] + children
        return applied_action(action, values.raw, f"{self.plan.url}#{action.path}{suffix}", resource, children,
                              recommended(self.scope, action))
