"""The loaded, compiled form of authored content (what `build.build_content` builds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from service.engine.fhirjson import Element, Resource
from service.engine.fhirpath import Expression
from service.engine.terminology import Terminology


@dataclass(frozen=True)
class Source:
    """Where a piece of content was authored: file and FHIRPath-like path inside it."""

    file: str
    path: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}"


@dataclass
class Variable:
    name: str
    expression: Expression
    source: Source


@dataclass
class DataRequirementDef:
    """A DataRequirement with a prefetch key (its element id or the cds-prefetch-key extension)."""

    key: str
    type: str
    raw: Element
    source: Source
    query: str | None = None  # cqf-fhirQueryPattern, used verbatim


@dataclass
class DynamicValue:
    path: str
    expression: Expression
    source: Source


@dataclass
class Condition:
    kind: str
    expression: Expression
    source: Source


@dataclass(frozen=True)
class QuietPolicy:
    """When a rule's card stays quiet.  `override_reasons` empty: any override (with or without a reason)."""

    after_override: timedelta | None = None
    override_reasons: frozenset[str] = frozenset()
    after_accept: timedelta | None = None
    scope: str = "patient"
    once_per_draft: bool = False

    @property
    def longest(self) -> timedelta:
        """The longest window: how far back the call-time lookup reads."""
        return max(self.after_override or timedelta(0), self.after_accept or timedelta(0))


@dataclass
class ActionDef:
    raw: Element
    path: str
    source: Source
    triggers: frozenset[str] | None  # hook names from trigger(named-event); None = inherits
    conditions: list[Condition]
    dynamic_values: list[DynamicValue]
    definition: str | None
    children: list[ActionDef]
    applicability_behavior: str = "all"
    is_recommended: bool | Expression = False  # cds-is-recommended: valueBoolean or valueExpression
    for_each: Expression | None = None
    target: Expression | None = None
    quiet: QuietPolicy | None = None  # cds-quiet-* (service.engine.quiet); None: always shown
    # definitionCanonical naming a PlanDefinition: the plan applied in this action's place, its
    # actions nested (R4 §12.18.3.3); set when content is linked (service.engine.link.nest).
    plan: PlanDef | None = None

    @property
    def id(self) -> str:
        return self.raw.get("id") or self.path


@dataclass
class ActivityDef:
    url: str
    raw: Resource
    source: Source
    dynamic_values: list[DynamicValue]
    # From ActivityDefinition.library, for $apply of the activity on its own.
    variables: dict[str, Variable] = field(default_factory=dict)
    data_requirements: dict[str, DataRequirementDef] = field(default_factory=dict)


@dataclass
class LibraryDef:
    url: str
    raw: Resource
    source: Source
    variables: list[Variable]
    data_requirements: list[DataRequirementDef]
    depends_on: list[str]


@dataclass
class PlanDef:
    url: str
    raw: Resource
    source: Source
    actions: list[ActionDef]
    variables: dict[str, Variable] = field(default_factory=dict)  # own + libraries, by name
    data_requirements: dict[str, DataRequirementDef] = field(default_factory=dict)
    hooks: list[str] = field(default_factory=list)
    quiet: dict[str, QuietPolicy] = field(default_factory=dict)  # rule code -> its quiet policy (engine.quiet)
    nested_in: list[str] = field(default_factory=list)  # urls of the plans whose actions apply this one

    @property
    def id(self) -> str:
        return self.raw.get("id") or self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ServiceDef:
    """One CDS Hooks service: a PlanDefinition answering one hook, or several hooks under one id
    when the content names the id (cqf-cdsHooksEndpoint; CDS Hooks 3.0 ballot §Discovery)."""

    id: str
    hooks: tuple[str, ...]
    plan: PlanDef

    @property
    def hook(self) -> str:
        return self.hooks[0]

    @property
    def title(self) -> str | None:
        return self.plan.raw.get("title")

    @property
    def description(self) -> str:
        return self.plan.raw.get("description") or self.plan.raw.get("title") or self.id


@dataclass(frozen=True)
class ContentIssue:
    """A non-fatal problem found at load (e.g. a CQL-only PlanDefinition, skipped)."""

    source: Source
    message: str
    severity: str = "warning"

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


@dataclass
class ContentSet:
    plans: dict[str, PlanDef]
    activities: dict[str, ActivityDef]
    libraries: dict[str, LibraryDef]
    terminology: Terminology
    services: dict[str, ServiceDef]
    issues: list[ContentIssue]
    resources: dict[str, Resource]  # every loaded resource by canonical URL (for publishing)

    def plan(self, ref: str) -> PlanDef | None:
        """A plan by canonical URL or by id."""
        if ref in self.plans:
            return self.plans[ref]
        return next((p for p in self.plans.values() if p.id == ref), None)

    def activity(self, ref: str) -> ActivityDef | None:
        if ref in self.activities:
            return self.activities[ref]
        return next((a for a in self.activities.values() if a.raw.get("id") == ref), None)
