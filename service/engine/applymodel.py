"""What goes into one `$apply` and what comes out (FHIR R4 PlanDefinition/$apply, §12.18.4.1).

Rules:
- `ApplyContext` holds everything a call depends on: who, when, which hook, the data by prefetch key
  and, when the caller already built it, the call's data index (the draft orders and the data are
  then indexed once per call, by whoever reads them first).
- The result is a model of the applied actions, shaped as R4 `RequestGroup.action` (title,
  description, priority, selection and grouping behaviour, the proposed resource, sub-actions),
  with the trace of every action considered and the issues met.  It is returned, never edited.
- Asked to explain (`ApplyContext.explain`, for a trace), the trace also gives each condition's
  resources (the resources behind its variables), its `and` operands with their results and the
  result every variable's value; the explanation adds no issue to the call and changes no verdict.
  Without it the trace holds each condition's expression and verdict only (no extra work per call).
- Ids derive from hookInstance, subject and action (`stable_id`), so a retried call gives the same
  ids and one hookInstance reused for two patients never does.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.engine.index import DataIndex
from service.engine.model import ActionDef, PlanDef

_NAMESPACE = uuid.UUID("6f1c7f0e-3d8a-5b7e-9a51-2f4c8d0b9e11")
_NAMESPACE_BYTES = _NAMESPACE.bytes

Json = dict[str, Any]


def stable_id(*parts: str) -> str:
    """str(uuid.uuid5(_NAMESPACE, "|".join(parts))) (RFC 4122 §4.3: SHA-1 of namespace and name, version 5,
    RFC 4122 variant), written out directly: a call makes one for each card, suggestion and resource."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "|".join(parts).encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
    # With `ApplyContext.explain`: each variable of the plan's scope by name, as
    # {"value": JSON-ready value} or {"error": why it could not be computed}.
    variables: dict[str, Json] = field(default_factory=dict)
