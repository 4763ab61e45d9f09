"""Conformance check of a CDS Hooks 2.0 service response (§CDS Service Response); no Flask.

Rule: `response_errors(response)` lists every violation of `schema/cds-hooks-response.schema.json`
plus the invariants the spec states in prose:
- `selectionBehavior` is given whenever `suggestions` are (§Card Attributes);
- with `at-most-one`, at most one suggestion `isRecommended` (§Suggestion);
- create actions carry a resource, update actions a resource with an id, delete actions a
  `resourceId` (§Action; `resource` as a delete target is deprecated);
- `appContext` only on `smart` links (§Link);
- card uuids, and suggestion uuids, are unique in the response (they identify them in §Feedback).
Summary length (<140 characters) and override reason `display` are in the schema.
An empty list means the response conforms.

`card_errors(card)` is the cheap check of one card for the request path: the same invariants read
field by field, without the JSON Schema (what a card the service renders can get wrong).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

_SCHEMA = json.loads((Path(__file__).resolve().parent / "schema" / "cds-hooks-response.schema.json").read_text("utf-8"))
Draft202012Validator.check_schema(_SCHEMA)
_VALIDATOR = Draft202012Validator(_SCHEMA)


def response_errors(response: Any) -> list[str]:
    if not isinstance(response, dict):
        return ["the response must be a JSON object with a cards array"]
    errors = [_message(e) for e in sorted(_VALIDATOR.iter_errors(response), key=_order)]
    cards = response["cards"] if isinstance(response.get("cards"), list) else []
    for i, card in enumerate(cards):
        if isinstance(card, dict):
            errors += _card_errors(card, f"cards[{i}]")
    for i, action in enumerate(_dicts(response.get("systemActions"))):
        errors += _action_errors(action, f"systemActions[{i}]")
    errors += _duplicates("card uuid", [c.get("uuid") for c in _dicts(cards)])
    errors += _duplicates("suggestion uuid",
                          [s.get("uuid") for c in _dicts(cards) for s in _dicts(c.get("suggestions"))])
    return list(dict.fromkeys(errors))


def _card_errors(card: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    suggestions = _dicts(card.get("suggestions"))
    if suggestions and "selectionBehavior" not in card:
        errors.append(f"{where}.selectionBehavior is required when suggestions are present")
    recommended = [j for j, s in enumerate(suggestions) if s.get("isRecommended") is True]
    if card.get("selectionBehavior") == "at-most-one" and len(recommended) > 1:
        errors.append(f"{where}: {len(recommended)} suggestions are isRecommended but selectionBehavior is at-most-one")
    for j, suggestion in enumerate(suggestions):
        for k, action in enumerate(_dicts(suggestion.get("actions"))):
            errors += _action_errors(action, f"{where}.suggestions[{j}].actions[{k}]")
    for j, link in enumerate(_dicts(card.get("links"))):
        if "appContext" in link and link.get("type") != "smart":
            errors.append(f"{where}.links[{j}].appContext is only valid on a smart link, not {link.get('type')!r}")
    return errors


def _action_errors(action: dict[str, Any], where: str) -> list[str]:
    kind = action.get("type")
    resource: Any = action.get("resource")
    if kind == "delete" and not action.get("resourceId"):
        return [f"{where}: a delete action needs a resourceId"]
    if kind in ("create", "update") and not (isinstance(resource, dict)
                                             and isinstance(resource.get("resourceType"), str)):
        return [f"{where}: a {kind} action needs a FHIR resource (with resourceType)"]
    if kind == "update" and not resource.get("id"):
        return [f"{where}: an update action needs a resource with an id"]
    return []


def _duplicates(what: str, values: list[Any]) -> list[str]:
    counts = Counter(v for v in values if isinstance(v, str))
    return [f"{what} {v!r} is used {n} times; it must identify one item" for v, n in counts.items() if n > 1]


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _path(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _order(error: ValidationError) -> list[tuple[int, int, str]]:
    return [(0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.absolute_path]


def _message(error: ValidationError) -> str:
    where = _path(error.absolute_path) or "the response"
    if error.validator == "required":
        missing = [p for p in error.validator_value if isinstance(error.instance, dict) and p not in error.instance]
        return "; ".join(f"{_path([*error.absolute_path, p])} is required" for p in missing)
    if error.validator == "maxLength":
        return f"{where} has {len(error.instance)} characters, at most {error.validator_value} allowed"
    if error.validator == "pattern" and error.schema.get("description"):
        return f"{where} {error.schema['description']}, got {error.instance!r}"
    return f"{where}: {error.message}"


# ---- the cheap check: the card invariants, read directly (no JSON Schema) ----------------------

# CDS Hooks 2.0 §Card Attributes `indicator`, from the most urgent (the order cards are shown in, J-29).
SEVERITY = {"critical": 0, "warning": 1, "info": 2}
INDICATORS = frozenset(SEVERITY)
SELECTION_BEHAVIORS = frozenset({"at-most-one", "any"})
ACTION_TYPES = frozenset({"create", "update", "delete"})
LINK_TYPES = frozenset({"absolute", "smart"})
SUMMARY_MAX = 139  # §Card Attributes: "<140 characters"
_ABSOLUTE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_RESOURCE_ID = re.compile(r"[A-Za-z]+/[^/\s]+")


def card_errors(card: Any, where: str = "card") -> list[str]:
    """The violations of one card of the CDS Hooks 2.0 invariants, read field by field (tens of
    microseconds a card, where the JSON Schema pass takes about half a millisecond): §Card
    Attributes (summary a string of fewer than 140 characters, indicator info | warning | critical,
    detail a string, source with a label, its url and icon absolute, its topic a Coding), §Suggestion
    (label, uuid a string, isRecommended a boolean, actions each with a known type and a description
    and what the type needs, selectionBehavior with suggestions, at most one isRecommended with
    at-most-one), §Reasons for rejecting a card (overrideReasons Codings with a display) and §Link
    (label, absolute url, type absolute | smart, appContext only on smart links).  Every card the
    service sends passes it; `response_errors` checks the whole schema (it is what the tests use)."""
    if not isinstance(card, dict):
        return [f"{where} must be an object"]
    errors: list[str] = []
    _optional_text(card, "uuid", where, errors)
    summary = card.get("summary")
    if not isinstance(summary, str) or not summary:
        errors.append(f"{where}.summary is required")
    elif len(summary) > SUMMARY_MAX:
        errors.append(f"{where}.summary has {len(summary)} characters, at most {SUMMARY_MAX} allowed")
    if "detail" in card and not isinstance(card["detail"], str):
        errors.append(f"{where}.detail must be a string")
    if card.get("indicator") not in INDICATORS:
        errors.append(f"{where}.indicator must be one of {sorted(INDICATORS)}, got {card.get('indicator')!r}")
    _source_errors(card.get("source"), f"{where}.source", errors)
    if "selectionBehavior" in card and card["selectionBehavior"] not in SELECTION_BEHAVIORS:
        errors.append(f"{where}.selectionBehavior must be one of {sorted(SELECTION_BEHAVIORS)}")
    for j, suggestion in enumerate(_listed(card, "suggestions", where, errors)):
        _suggestion_errors(suggestion, f"{where}.suggestions[{j}]", errors)
    for j, reason in enumerate(_listed(card, "overrideReasons", where, errors)):
        _coding_errors(reason, f"{where}.overrideReasons[{j}]", errors, display=True)
    for j, link in enumerate(_listed(card, "links", where, errors)):
        _link_errors(link, f"{where}.links[{j}]", errors)
    errors += _card_errors(card, where)  # the prose invariants, shared with response_errors
    return list(dict.fromkeys(errors))


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _optional_text(obj: dict[str, Any], key: str, where: str, errors: list[str]) -> None:
    if key in obj and not _text(obj[key]):
        errors.append(f"{where}.{key} must be a non-empty string")


def _listed(obj: dict[str, Any], key: str, where: str, errors: list[str]) -> list[Any]:
    value = obj.get(key)
    if value is None and key not in obj:
        return []
    if not isinstance(value, list):
        errors.append(f"{where}.{key} must be an array")
        return []
    return value


def _absolute(obj: dict[str, Any], key: str, where: str, errors: list[str], required: bool = False) -> None:
    value = obj.get(key)
    if value is None and not required and key not in obj:
        return
    if not isinstance(value, str) or not _ABSOLUTE_URL.fullmatch(value):
        errors.append(f"{where}.{key} must be an absolute URL, got {value!r}")


def _source_errors(source: Any, where: str, errors: list[str]) -> None:
    if not isinstance(source, dict):
        errors.append(f"{where} is required")
        return
    if not _text(source.get("label")):
        errors.append(f"{where}.label is required")
    _absolute(source, "url", where, errors)
    _absolute(source, "icon", where, errors)
    if "topic" in source:
        _coding_errors(source["topic"], f"{where}.topic", errors)


def _coding_errors(coding: Any, where: str, errors: list[str], display: bool = False) -> None:
    if not isinstance(coding, dict):
        errors.append(f"{where} must be a Coding")
        return
    for key in ("code", "system", "display") if display else ("code", "system"):
        if not _text(coding.get(key)):
            errors.append(f"{where}.{key} is required")


def _suggestion_errors(suggestion: Any, where: str, errors: list[str]) -> None:
    if not isinstance(suggestion, dict):
        errors.append(f"{where} must be an object")
        return
    if not _text(suggestion.get("label")):
        errors.append(f"{where}.label is required")
    _optional_text(suggestion, "uuid", where, errors)
    if "isRecommended" in suggestion and not isinstance(suggestion["isRecommended"], bool):
        errors.append(f"{where}.isRecommended must be a boolean")
    for k, action in enumerate(_listed(suggestion, "actions", where, errors)):
        at = f"{where}.actions[{k}]"
        if not isinstance(action, dict):
            errors.append(f"{at} must be an object")
            continue
        if action.get("type") not in ACTION_TYPES:
            errors.append(f"{at}.type must be one of {sorted(ACTION_TYPES)}, got {action.get('type')!r}")
        if not isinstance(action.get("description"), str):
            errors.append(f"{at}.description is required")
        if "resource" in action and not isinstance(action["resource"], dict):
            errors.append(f"{at}.resource must be a FHIR resource")
        if "resourceId" in action and not (isinstance(action["resourceId"], str)
                                           and _RESOURCE_ID.fullmatch(action["resourceId"])):
            errors.append(f"{at}.resourceId must be a relative reference [ResourceType]/[id]")


def _link_errors(link: Any, where: str, errors: list[str]) -> None:
    if not isinstance(link, dict):
        errors.append(f"{where} must be an object")
        return
    if not _text(link.get("label")):
        errors.append(f"{where}.label is required")
    _absolute(link, "url", where, errors, required=True)
    if link.get("type") not in LINK_TYPES:
        errors.append(f"{where}.type must be one of {sorted(LINK_TYPES)}, got {link.get('type')!r}")
    if "appContext" in link and not isinstance(link["appContext"], str):
        errors.append(f"{where}.appContext must be a string")
    if "autolaunchable" in link and not isinstance(link["autolaunchable"], bool):
        errors.append(f"{where}.autolaunchable must be a boolean")
