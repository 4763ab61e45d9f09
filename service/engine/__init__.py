"""Pure PlanDefinition/ActivityDefinition $apply: no Flask, no requests, no clock."""

from service.engine.apply import ApplyContext, ApplyResult, AppliedAction, apply_activity, apply_plan
from service.engine.content import build_content, load_content
from service.engine.model import ContentSet, ServiceDef

__all__ = [
    "ApplyContext", "ApplyResult", "AppliedAction", "ContentSet", "ServiceDef",
    "apply_activity", "apply_plan", "build_content", "load_content",
]
