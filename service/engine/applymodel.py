"""What goes into one `$apply` and what comes out (FHIR R4 PlanDefinition/$apply, §12.18.4.1).

Rules:
- `ApplyContext` holds everything a call depends on: who, when, which hook, the data by prefetch key
  and, when the caller already built it, the call's data index (the draft orders and the data are
  then indexed once per call, by whoever reads them first).
- The result is a model of the applied actions, shaped as R4 `RequestGroup.action` (title,
  description, priority, selection and grouping behaviour, the proposed resource, sub-actions),
  with the trace of every action considered and the issues met.  It is returned, never edited.
- Ids derive from hookInstance, subject and action (`stable_id`), so a retried call gives the same
  ids and one hookInstance reused for two patients never does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.engine.index import DataIndex
from service.engine.model import ActionDef, PlanDef

_NAMESPACE = uuid.UUID("6f1c7f0e-3d8a-5b7e-9a51-2f4c8d0b9e11")

Json = dict[str, Any]


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


@dataclass
class ApplyContext:
    """Inputs of one $apply: who, when, which hook, and the data keyed by prefetch key.

    `index`: the call's data index when the caller built one (service.data indexes the draft orders
    for its prefetch tokens); it must be made with the content's terminology.  The engine adds
    `data` and `draft_orders` to it; without one it makes its own."""

    now: datetime
    subject: str  # "Patient/<id>"
    data: dict[str, Any] = field(default_factory=dict)
    hook: str | None = None
    hook_instance: str = ""
    encounter: str | None = None
    practitioner: str | None = None
    draft_orders: Json | None = None
    selections: list[str] = field(default_factory=list)
    index: DataIndex | None = None


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
    documentation: list[Json]
    code: list[Json]
    is_recommended: bool
    override_reasons: list[Json]
    resource: Json | None
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
        priority = self.definition.raw.get("priority")
        return priority if isinstance(priority, str) else None

    @property
    def code(self) -> list[Json]:
        code = self.definition.raw.get("code", [])
        return code if isinstance(code, list) else []


@dataclass
class ApplyResult:
    plan: PlanDef
    context: ApplyContext
    actions: list[AppliedAction]
    trace: list[Json]
    issues: list[Json]
    not_evaluated: list[NotEvaluated] = field(default_factory=list)
