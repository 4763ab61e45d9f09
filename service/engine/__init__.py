"""Pure PlanDefinition/ActivityDefinition $apply: no Flask, no requests, no clock, no files.

The public face: build a ContentSet from resources (`build_content`: compile, link, lint),
then `apply_plan` / `apply_activity` with an `ApplyContext`.  Reading content from a folder or
a FHIR server is `service.content`."""

from service.engine.apply import ApplyContext, ApplyResult, AppliedAction, apply_activity, apply_plan
from service.engine.build import build_content
from service.engine.model import ContentSet, ServiceDef

__all__ = [
    "ApplyContext", "ApplyResult", "AppliedAction", "ContentSet", "ServiceDef",
    "apply_activity", "apply_plan", "build_content",
]
