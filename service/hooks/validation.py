"""CDS Hooks 2.0 request and feedback validation; no Flask.

Rule: a service call is checked against `schemas/request.schema.json` (§Calling a CDS Service >
HTTP Request), then - when its `hook` is the service's hook - against
`schemas/context-<hook>.schema.json` (the hook definitions), then its `selections` against its
`draftOrders`.  Every violation found becomes one OperationOutcome issue of a single `InvalidRequest`
(expression = path in the body, e.g. `context.selections[0]`); the first MAX_ISSUES are listed,
then how many more there are.  A value shown in a message is cut to 80 characters, and values
under `fhirAuthorization` or `fhirServer` are never shown.  FHIR resources inside the request
are not validated: EHRs send non-conformant drafts and the engine copes with them, and the patient
data in `prefetch` is left to the lenient reader (only each key's value is checked to be an
object or null).

Cost: each schema is also compiled into a plain validity check (service.hooks.schemacheck); a
valid body passes with that alone (microseconds), and jsonschema is asked for the violations and
their paths only when a body is not valid.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from service.errors import InvalidRequest, Issue
from service.hooks.schemacheck import Check, compile_check

SUPPORTED_HOOKS = ("patient-view", "order-select", "order-sign")

_SCHEMAS = Path(__file__).resolve().parent / "schemas"

_JSON_TYPE = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
              float: "a number", type(None): "null"}
# Values under these keys are never echoed: the token, and URLs that may carry user:password@.
_SECRET_PARTS = ("fhirAuthorization", "fhirServer")


def _compile(path: Path) -> tuple[Draft202012Validator, Check]:
    """The schema's validator (the violations and their paths) and its compiled validity check."""
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema), compile_check(schema)


_REQUEST, _REQUEST_VALID = _compile(_SCHEMAS / "request.schema.json")
_CONTEXTS = {hook: _compile(_SCHEMAS / f"context-{hook}.schema.json") for hook in SUPPORTED_HOOKS}
_CONTEXT = {hook: validator for hook, (validator, _) in _CONTEXTS.items()}
_CONTEXT_VALID = {hook: valid for hook, (_, valid) in _CONTEXTS.items()}
_FEEDBACK, _FEEDBACK_VALID = _compile(_SCHEMAS / "feedback.schema.json")


# ---- public API -------------------------------------------------------------------------------


def validate_request(body: object, hook: str, *, service: str | None = None) -> None:
    """Raise one InvalidRequest listing every protocol violation of a call to a `hook` service."""
    if hook not in SUPPORTED_HOOKS:
        raise InvalidRequest(
            f"hook {hook!r} is not supported (supported: {', '.join(SUPPORTED_HOOKS)})",
            issues=[Issue("not-supported", f"hook {hook!r} is not supported", expression=("hook",))],
        )
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"the request body must be a JSON object, got {_json_type(body)}",
            issues=[Issue("structure", f"the request body must be a JSON object, got {_json_type(body)}")],
        )
    if (_REQUEST_VALID(body) and body["hook"] == hook and _CONTEXT_VALID[hook](body["context"])
            and not _selection_issues(body["context"])):
        return  # valid: nothing to list
    issues = schema_issues(_REQUEST, body)
    sent = body.get("hook")
    if isinstance(sent, str) and sent and sent != hook:
        who = f"service {service!r}" if service else "this service"
        issues.append(Issue("value", f"{who} answers hook {hook!r}, not {_shown(sent, ('hook',))}",
                            expression=("hook",)))
    elif isinstance(body.get("context"), dict):
        context = body["context"]
        issues += schema_issues(_CONTEXT[hook], context, prefix=("context",))
        issues += _selection_issues(context)
    _raise(issues)


def validate_feedback(body: object) -> list[dict]:
    """The feedback items of a §Feedback POST body, or one InvalidRequest listing every violation."""
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"the feedback body must be a JSON object, got {_json_type(body)}",
            issues=[Issue("structure", f"the feedback body must be a JSON object, got {_json_type(body)}")],
        )
    issues = [] if _FEEDBACK_VALID(body) else schema_issues(_FEEDBACK, body)
    if not issues:
        for i, item in enumerate(body["feedback"]):
            try:  # the pattern admits 2021-02-30; the calendar does not
                datetime.fromisoformat(item["outcomeTimestamp"].upper().replace("Z", "+00:00"))
            except ValueError:
                where = f"feedback[{i}].outcomeTimestamp"
                issues.append(Issue("value", f"{where} {item['outcomeTimestamp']!r} is not a valid date-time",
                                    expression=(where,)))
    _raise(issues)
    return body["feedback"]


# ---- JSON Schema errors -> OperationOutcome issues -------------------------------------------


def path_expression(parts: Iterable[Any]) -> str:
    """('context', 'selections', 0) -> 'context.selections[0]'."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def schema_issues(validator: Draft202012Validator, instance: Any, prefix: tuple = ()) -> list[Issue]:
    """One Issue per JSON Schema violation (all of them), in document order, without duplicates."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: [(0, p, "") if isinstance(p, int) else (1, 0, str(p))
                                                                    for p in e.absolute_path])
    issues: list[Issue] = []
    for error in errors:
        for issue in _issues_of(error, prefix):
            if issue not in issues:
                issues.append(issue)
    return issues


def _issues_of(error: ValidationError, prefix: tuple) -> list[Issue]:
    path = prefix + tuple(error.absolute_path)
    where = path_expression(path) or "the body"
    kind, value, instance = error.validator, error.validator_value, error.instance
    shown = _shown(instance, path)
    if kind == "required":  # one error per missing property: report each at its own path
        return [Issue("required", f"{path_expression(path + (p,))} is required",
                      expression=(path_expression(path + (p,)),))
                for p in value if isinstance(instance, dict) and p not in instance]
    if kind == "dependentRequired":
        return [Issue("required",
                      f"{path_expression(path + (d,))} is required when {path_expression(path + (k,))} is given",
                      expression=(path_expression(path + (d,)),))
                for k, deps in value.items() if isinstance(instance, dict) and k in instance
                for d in deps if d not in instance]
    if kind == "type":
        kinds = value if isinstance(value, list) else [value]
        code = "structure" if {"object", "array"} & set(kinds) else "value"
        wanted = " or ".join(kinds)
        return [_issue(code, f"{where} must be {_article(wanted)}, got {_json_type(instance)}", path)]
    if kind == "const":
        return [_issue("value", f"{where} must be {value!r}, got {shown}", path)]
    if kind == "enum":
        return [_issue("value", f"{where} must be one of {', '.join(map(repr, value))}, got {shown}", path)]
    if kind == "pattern":
        rule = error.schema.get("description") or f"must match {value}"
        return [_issue("value", f"{where} {rule}, got {shown}", path)]
    if kind == "minLength":
        return [_issue("value", f"{where} must not be empty" if value == 1 else f"{where} is too short", path)]
    if kind == "maxLength":
        return [_issue("value", f"{where} has {len(instance)} characters, at most {value} allowed", path)]
    if kind == "minItems":
        return [_issue("required", f"{where} must have at least {value} item(s)", path)]
    if kind in ("additionalProperties", "unevaluatedProperties", "maxItems"):
        return [_issue("structure", f"{where}: {error.message}", path)]
    return [_issue("invalid", f"{where}: {error.message}", path)]


def _issue(code: str, diagnostics: str, path: tuple) -> Issue:
    return Issue(code, diagnostics, expression=(path_expression(path),) if path else ())


def _shown(instance: Any, path: tuple) -> str:
    if any(part in _SECRET_PARTS for part in path):
        return "a value not shown"
    text = json.dumps(instance, ensure_ascii=False) if not isinstance(instance, str) else repr(instance)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_type(value: Any) -> str:
    return _JSON_TYPE.get(type(value), type(value).__name__)


def _article(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


MAX_ISSUES = 20  # listed in one OperationOutcome; a body with thousands of faults gets a bounded answer


def _raise(issues: list[Issue]) -> None:
    if issues:
        more = f" (and {len(issues) - 1} more issue(s))" if len(issues) > 1 else ""
        listed = issues[:MAX_ISSUES]
        if len(issues) > MAX_ISSUES:
            listed.append(Issue("too-costly", f"{len(issues) - MAX_ISSUES} more issue(s) not listed",
                                severity="information"))
        raise InvalidRequest(issues[0].diagnostics + more, issues=listed)


# ---- hook-specific checks a schema cannot express ----------------------------------------------


def _entry_resources(bundle: dict) -> list[tuple[int, dict]]:
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return []
    return [(i, e["resource"]) for i, e in enumerate(entries)
            if isinstance(e, dict) and isinstance(e.get("resource"), dict)]


def _selection_issues(context: dict) -> list[Issue]:
    """order-select: every `selections` item references an entry of `draftOrders` by Type/id."""
    selections, drafts = context.get("selections"), context.get("draftOrders")
    if not isinstance(selections, list) or not isinstance(drafts, dict):
        return []
    present = {f"{r.get('resourceType')}/{r.get('id')}" for _, r in _entry_resources(drafts)}
    return [Issue("value", f"context.selections[{i}] {_shown(sel, ())} is not an entry of context.draftOrders",
                  expression=(f"context.selections[{i}]",))
            for i, sel in enumerate(selections) if isinstance(sel, str) and sel not in present]
