"""Dynamic values (R4 PlanDefinition.action.dynamicValue and ActivityDefinition.dynamicValue,
§12.18.3.3 and §12.21.4.4): an expression's result set at a path.

Rules:
- Paths starting with `action.` customise the RequestGroup action (title, description, priority,
  textEquivalent, documentation...); all others apply to the proposed resource.
- An action's dynamicValues are evaluated in order; the first that cannot be evaluated stops the
  action (fail closed).  An `action.*` value that is empty leaves the element as authored.
- On the resource: the empty-collection literal `{}` removes the element at its path (the path then
  holds the expression's result, nothing), e.g. an `update` drops a draft's free-text dose
  instructions.  Only the literal removes: an expression that happens to yield nothing drops the
  resource (never a default dose), as does one that could not be evaluated.
- A path the engine cannot set is an issue; on the resource it drops the resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.engine.fhirjson import json_copy
from service.engine.fhirpath import to_python
from service.engine.model import DynamicValue
from service.engine.paths import EMPTY_LITERAL, remove_path, set_path
from service.engine.scope import Scope

ACTION_PREFIX = "action."


@dataclass(frozen=True)
class Evaluated:
    """A dynamicValue with its result (None: it could not be evaluated)."""

    dynamic_value: DynamicValue
    values: list[Any] | None


def evaluated(scope: Scope, dynamic_values: list[DynamicValue]) -> list[Evaluated]:
    """Each dynamicValue evaluated, failures included (an ActivityDefinition's)."""
    return [Evaluated(dv, scope.evaluate(dv.expression, str(dv.source))) for dv in dynamic_values]


@dataclass
class ActionValues:
    """An action's dynamicValues, evaluated: its customised copy and the values for its resource;
    `failed` names the path of the first one that could not be evaluated."""

    raw: dict[str, Any]
    for_resource: list[Evaluated]
    failed: str | None = None


def action_values(scope: Scope, raw: dict[str, Any], dynamic_values: list[DynamicValue]) -> ActionValues:
    """Evaluate an action's dynamicValues in order, applying the `action.*` ones to a copy of `raw`."""
    out = ActionValues(dict(raw), [])
    for dv in dynamic_values:
        values = scope.evaluate(dv.expression, str(dv.source))
        if values is None:
            out.failed = dv.path
            return out
        if dv.path.startswith(ACTION_PREFIX):
            _customise(scope, out.raw, dv, values)
        else:
            out.for_resource.append(Evaluated(dv, values))
    return out


def _customise(scope: Scope, raw: dict[str, Any], dv: DynamicValue, values: list[Any]) -> None:
    value = single(values) if values else None
    if value is None:
        return
    path = dv.path[len(ACTION_PREFIX):]
    top = path.split(".")[0].split("[")[0]
    if top in raw:  # the copy is shallow: what the path changes is copied first
        raw[top] = json_copy(raw[top])
    try:
        set_path(raw, path, value)
    except ValueError as exc:
        scope.issue(str(dv.source), str(exc))


def apply_to_resource(scope: Scope, resource: dict[str, Any], values: list[Evaluated]) -> dict[str, Any] | None:
    """The resource with the values set (or removed) at their paths, in order; None drops it."""
    for item in values:
        dv = item.dynamic_value
        if dv.expression.text.strip() == EMPTY_LITERAL:
            try:
                remove_path(resource, dv.path)
            except ValueError as exc:
                scope.issue(str(dv.source), str(exc))
                return None
            continue
        if item.values is None:
            return None
        if not item.values:
            scope.issue(str(dv.source), f"dynamicValue {dv.path} is empty: resource not proposed", "warning")
            return None
        try:
            set_path(resource, dv.path, single(item.values))
        except ValueError as exc:
            scope.issue(str(dv.source), str(exc))
            return None
    return resource


def single(values: list[Any]) -> Any:
    """A collection as one value: its only item, or the list."""
    py = to_python(values)
    return py[0] if isinstance(py, list) and len(py) == 1 else py
