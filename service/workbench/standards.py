"""What a card needs that FHIR does not check: the invariants of the cards the content produces.

Rules (CDS Hooks 2.0 §Card Attributes; plandefinitions/README.md, card conventions):
- A card action is an action with a `title` reached through untitled actions only (what
  `cards.render` makes a card of); its children are its suggestions.
- A card's summary is its title: shorter than 140 characters (CDS Hooks: "<140-character
  summary message"), the static title and any dynamicValue on `action.title` that is text alone.
- A card carries its rule code (`action.code[].coding[].code`, shown as `source.topic`): a card
  without one cannot be told apart in feedback, the trace or the scenario goldens.
- A static element the action states (title, description, priority...) is shadowed when a
  dynamicValue on the same path is a constant (text with no variable, no data read): the static
  text is never shown, yet a reviewer reads it as the card's.  A dynamicValue that reads the
  patient's data may yield nothing, and the static element is then its fallback: no problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

SUMMARY_LIMIT = 140
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
_LITERAL_REST = re.compile(r"^[\s&+()]*$|^\s*(true|false|-?\d+(\.\d+)?)\s*$")


@dataclass(frozen=True)
class Finding:
    file: str
    path: str  # FHIRPath-like path inside the resource, as the engine's errors give it
    message: str


def check_resources(raws: list[tuple[str, dict]]) -> list[Finding]:
    """The card invariants of every PlanDefinition among (file, resource) pairs."""
    out: list[Finding] = []
    for file, raw in raws:
        if raw.get("resourceType") == "PlanDefinition":
            out += list(_plan(file, raw))
    return out


def _plan(file: str, plan: dict) -> Iterator[Finding]:
    def visit(actions: list, path: str, in_card: bool) -> Iterator[Finding]:
        for i, action in enumerate(actions if isinstance(actions, list) else []):
            if not isinstance(action, dict):
                continue
            where = f"{path}.action[{i}]"
            card = bool(action.get("title")) and not in_card
            if card:
                yield from _card(file, action, where)
            yield from _shadowed(file, action, where)
            yield from visit(action.get("action", []), where, in_card or card)

    yield from visit(plan.get("action", []), "PlanDefinition", False)


def _card(file: str, action: dict, where: str) -> Iterator[Finding]:
    title = action.get("title")
    if isinstance(title, str) and len(title) >= SUMMARY_LIMIT:
        yield Finding(file, f"{where}.title", f"card summary (title) is {len(title)} characters; "
                                              f"CDS Hooks wants fewer than {SUMMARY_LIMIT}")
    for i, dv in enumerate(action.get("dynamicValue", [])):
        text = _constant_text(dv)
        if dv.get("path") == "action.title" and text is not None and len(text) >= SUMMARY_LIMIT:
            yield Finding(file, f"{where}.dynamicValue[{i}].expression",
                          f"card summary (dynamic title) is {len(text)} characters; "
                          f"CDS Hooks wants fewer than {SUMMARY_LIMIT}")
    codes = [c.get("code") for cc in action.get("code", []) if isinstance(cc, dict)
             for c in cc.get("coding", []) if isinstance(c, dict)]
    if not any(codes):
        yield Finding(file, f"{where}.code", "card action has no rule code (action.code.coding.code, "
                                             "shown as source.topic)")


def _shadowed(file: str, action: dict, where: str) -> Iterator[Finding]:
    for i, dv in enumerate(action.get("dynamicValue", [])):
        path = dv.get("path") or ""
        element = path[len("action."):] if path.startswith("action.") else None
        if element is None or "." in element or "[" in element or element not in action:
            continue
        if _constant_text(dv) is not None:
            yield Finding(file, f"{where}.dynamicValue[{i}].path",
                          f"the static {element} is never shown: this dynamicValue on {path} is a constant "
                          "and always replaces it (edit the static value, or make the dynamicValue read data)")


def _constant_text(dv: dict) -> str | None:
    """The text a dynamicValue always gives when its expression is literals alone, else None."""
    expression = (dv.get("expression") or {}).get("expression")
    if not isinstance(expression, str) or "%" in expression:
        return None
    literals = _STRING.findall(expression)
    if not _LITERAL_REST.match(_STRING.sub("", expression)):
        return None
    return "".join(s[1:-1] for s in literals) if literals else expression.strip()
