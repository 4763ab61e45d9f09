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
"""

from __future__ import annotations

import json
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
