"""Pure PlanDefinition/ActivityDefinition $apply: no Flask, no requests, no clock, no files.

The public face: build a ContentSet from resources (`build_content`: compile, link, lint),
then `apply_plan` / `apply_activity` with an `ApplyContext`.  Reading content from a folder or
a FHIR server is `service.content`."""

from service.engine import functions  # noqa: F401  (registers the generic functions with the FHIRPath gateway)
from service.engine.apply import apply_activity, apply_plan
from service.engine.applymodel import AppliedAction, ApplyContext, ApplyResult, NotEvaluated, stable_id
from service.engine.build import build_content
from service.engine.compile import SUPPORTED_TYPES
from service.engine.extensions import EXT_APP_CONTEXT, EXT_APPLY_TRACE, EXT_LINK_TYPE
from service.engine.fhirpath import Evaluation, Expression, to_python
from service.engine.index import DataIndex
from service.engine.model import (
    ActionDef,
    ContentIssue,
    ContentSet,
    DataRequirementDef,
    PlanDef,
    QuietPolicy,
    ServiceDef,
    Source,
)
from service.engine.terminology import Terminology

__all__ = [
    "ApplyContext", "ApplyResult", "AppliedAction", "NotEvaluated", "apply_activity", "apply_plan", "stable_id",
    "build_content", "SUPPORTED_TYPES", "Evaluation", "Expression", "to_python", "DataIndex",
    "EXT_APP_CONTEXT", "EXT_APPLY_TRACE", "EXT_LINK_TYPE", "ActionDef", "ContentIssue", "ContentSet",
    "DataRequirementDef", "PlanDef", "QuietPolicy", "ServiceDef", "Source", "Terminology",
]
