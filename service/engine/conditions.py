"""Which actions apply to a call: the trigger selects, the applicability conditions decide
(R4 PlanDefinition.action.trigger and .condition, §12.18.3.3).

Rules:
- An action is considered for a hook when its `named-event` triggers name the hook, when it has none
  and inherits none, or when the call names no hook (all hooks); an action without triggers
  inherits its parent's.
- It applies when its `applicability` conditions hold: all of them, or any of them with
  cqf-applicabilityBehavior `any`; none means it applies.
- `start` and `stop` conditions say when a proposed activity begins or ends; a CDS call proposes
  activities now, so they are recorded in the trace and not evaluated.
- A condition that cannot be decided is false (fail closed); its reason is kept in its trace entry.
"""

from __future__ import annotations

from typing import Any

from service.engine.model import ActionDef
from service.engine.scope import Scope

START_STOP = "not evaluated (start/stop conditions time the proposed activity)"


def triggers(action: ActionDef, inherited: frozenset[str] | None) -> frozenset[str] | None:
    """The hooks an action answers: its own triggers, else its parent's (None: any)."""
    return action.triggers if action.triggers is not None else inherited


def selected(hook: str | None, hooks: frozenset[str] | None) -> bool:
    return not hook or hooks is None or hook in hooks


def applicable(scope: Scope, action: ActionDef) -> tuple[bool, list[dict[str, Any]]]:
    """The action's verdict and one trace entry per condition."""
    entries: list[dict[str, Any]] = []
    verdicts: list[bool] = []
    for cond in action.conditions:
        entry: dict[str, Any] = {"kind": cond.kind, "expression": cond.expression.text}
        if cond.kind != "applicability":
            entry["result"] = START_STOP
            entries.append(entry)
            continue
        verdict, error = scope.holds(cond.expression, str(cond.source))
        entry["result"] = verdict
        if error:
            entry["error"] = error
        verdicts.append(verdict)
        used = scope.resources_behind(cond.expression)
        if used:
            entry["resources"] = used
        entries.append(entry)
    if not verdicts:
        return True, entries
    ok = any(verdicts) if action.applicability_behavior == "any" else all(verdicts)
    return ok, entries


def first_error(entries: list[dict[str, Any]]) -> str | None:
    """Why the conditions could not be decided, if one could not."""
    return next((str(e["error"]) for e in entries if "error" in e), None)
