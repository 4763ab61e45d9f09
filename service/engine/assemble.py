"""One applied action as an R4 `RequestGroup.action` (PlanDefinition/$apply, §12.18.3.3: the
action's elements carried over, as customised by its `action.*` dynamicValues).

Rules:
- title, description, priority, textEquivalent, selection and grouping behaviour, documentation and
  code are the (customised) action's; `type` is its first coding's code.
- isRecommended is the project's cds-is-recommended extension: a boolean, or an expression that is
  true (one that cannot be evaluated, or is not a boolean, is false).
- Override reasons are the project's cds-override-reason extensions' codings.
"""

from __future__ import annotations

from typing import Any

from service.engine.applymodel import AppliedAction
from service.engine.extensions import EXT_OVERRIDE_REASON
from service.engine.fhirpath import Expression, as_boolean
from service.engine.model import ActionDef
from service.engine.scope import Scope
from service.errors import ExpressionError


def applied_action(action: ActionDef, raw: dict[str, Any], key: str, resource: dict[str, Any] | None,
                   children: list[AppliedAction], is_recommended: bool) -> AppliedAction:
    """`raw` is the action as customised for this call; `key` its identity in the result."""
    return AppliedAction(
        definition=action,
        key=key,
        title=_text(raw.get("title")),
        description=_text(raw.get("description")),
        priority=raw.get("priority"),
        text_equivalent=_text(raw.get("textEquivalent")),
        selection_behavior=raw.get("selectionBehavior"),
        grouping_behavior=raw.get("groupingBehavior"),
        type=((raw.get("type") or {}).get("coding") or [{}])[0].get("code"),
        documentation=raw.get("documentation", []),
        code=raw.get("code", []),
        is_recommended=is_recommended,
        override_reasons=[e["valueCoding"] for e in raw.get("extension", [])
                          if e.get("url") == EXT_OVERRIDE_REASON and "valueCoding" in e],
        resource=resource,
        children=children,
    )


def recommended(scope: Scope, action: ActionDef) -> bool:
    rec = action.is_recommended
    if not isinstance(rec, Expression):
        return bool(rec)
    values = scope.evaluate(rec, f"{action.source} (cds-is-recommended)")
    try:
        return values is not None and as_boolean(values, rec.text)
    except ExpressionError:
        return False


def _text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)
