"""FHIR `$apply` operations without Flask: the typed ApplyRequest, the operations, the CarePlan output."""

from service.operations.apply import activity_apply, plan_apply
from service.operations.careplan import TRACE_EXTENSION, care_plan
from service.operations.request import ApplyRequest, parameters_from_query, parse_apply_request

__all__ = ["TRACE_EXTENSION", "ApplyRequest", "activity_apply", "care_plan", "parameters_from_query",
           "parse_apply_request", "plan_apply"]
