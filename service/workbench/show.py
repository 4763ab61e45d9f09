"""Dry-run answers as text: the cards as a clinician reads them, and the explanation a reviewer
reads (each rule's conditions with their operands, the first one that is not true marked, and
every variable's value).

Rules: a card shows its indicator, summary, detail, source, suggestions (each action with the
order's own text: the drug or test and the dose as written in the order), links and override
reasons, in the order the service answers; values are shown short (a resource by its reference, a
one-item collection as its item, long text cut with "...").
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from service.workbench.run import ServiceRun

_WIDTH = 110
_VALUE = 160


def cards_text(run: ServiceRun) -> list[str]:
    """The answer of one service, card by card."""
    cards = run.cards
    lines = [f"== {run.service} ({run.hook}) at {run.now.isoformat()}: {len(cards)} card(s)"]
    for card in cards:
        lines += [""] + card_text(card)
    return lines


def card_text(card: dict) -> list[str]:
    source = card.get("source") or {}
    topic = source.get("topic") or {}
    rule = f"  [rule {topic['code']}: {topic.get('display', '')}]" if topic.get("code") else ""
    lines = [f"[{str(card.get('indicator', '?')).upper()}] {card.get('summary', '')}{rule}"]
    if card.get("detail"):
        lines += _wrapped(card["detail"], "    ")
    if source:
        lines.append(f"    Source: {source.get('label', '')}" + (f" <{source['url']}>" if source.get("url") else ""))
    suggestions = card.get("suggestions") or []
    if suggestions:
        choose = card.get("selectionBehavior")
        lines.append("    Suggestions" + (f" (choose {choose.replace('-', ' ')}):" if choose else ":"))
        for suggestion in suggestions:
            recommended = " [recommended]" if suggestion.get("isRecommended") else ""
            lines.append(f"      * {suggestion.get('label', '')}{recommended}")
            for action in suggestion.get("actions", []):
                lines.append(f"          {action.get('type', '?')}: {action_text(action)}")
    for link in card.get("links") or []:
        lines.append(f"    Link: {link.get('label', '')} <{link.get('url', '')}>")
    reasons = [r.get("display") or r.get("code") for r in card.get("overrideReasons") or []]
    if reasons:
        lines.append("    Override reasons: " + "; ".join(str(r) for r in reasons))
    return lines


def action_text(action: dict) -> str:
    """What a suggestion's action proposes: the order's own words (drug or test, dose text)."""
    resource = action.get("resource") or {}
    parts = [str(resource.get("resourceType", action.get("resourceId", "")))]
    what = (resource.get("medicationCodeableConcept") or resource.get("code") or {}).get("text")
    if what:
        parts.append(what)
    doses = [d.get("text") for d in resource.get("dosageInstruction", []) if d.get("text")]
    if doses:
        parts.append("; ".join(doses))
    elif action.get("description"):
        parts.append(str(action["description"]))
    return " - ".join(parts)


def explanation_text(run: ServiceRun) -> list[str]:
    """Each rule's verdict with its conditions' operands, then every variable's value."""
    lines = [f"-- why: {run.service}"]
    for entry in run.trace:
        depth = entry.get("path", "").count(".action[")
        pad = "  " * (depth + 1)
        verdict = "applied" if entry.get("applied") else "not applied"
        reason = f" ({entry['reason']})" if entry.get("reason") else ""
        lines.append(f"{pad}{entry.get('action')}: {verdict}{reason}")
        for condition in entry.get("conditions", []):
            lines += _condition_lines(condition, pad + "    ")
    variables = run.variables
    if variables:
        lines.append(f"-- variables: {run.service}")
        for name in sorted(variables, key=str.lower):
            item = variables[name]
            shown = f"ERROR {item['error']}" if "error" in item else short(item.get("value"))
            lines.append(f"  %{name} = {shown}")
    for issue in run.issues:
        lines.append(f"  issue [{issue.get('severity')}] {issue.get('location')}: {issue.get('message')}")
    return lines


def _condition_lines(condition: dict, pad: str) -> list[str]:
    kind = condition.get("kind")
    result = condition.get("result")
    head = f"{pad}{kind}: {condition.get('expression')}"
    if kind != "applicability":
        return [f"{head}  ({result})"]
    lines = [f"{head}  -> {str(result).lower()}" + (f"  ERROR {condition['error']}" if condition.get("error") else "")]
    failing = False
    for operand in condition.get("operands", []):
        holds = operand.get("result") == [True]
        mark = "ok" if holds else ("FIRST FAILING" if not failing else "not true")
        failing = failing or not holds
        value = f"ERROR {operand['error']}" if "error" in operand else short(operand.get("result"))
        lines.append(f"{pad}    {'+' if holds else '-'} {operand.get('expression')} = {value}   [{mark}]")
    return lines


def short(value: Any) -> str:
    """A value in a line: a one-item collection as its item, resources by reference, cut when long."""
    if isinstance(value, list):
        if not value:
            return "{} (empty)"
        if len(value) == 1:
            return short(value[0])
        refs = [_ref(v) for v in value]
        if all(refs):
            return _cut(f"{len(value)} resources: " + ", ".join(str(r) for r in refs))
        return _cut("[" + ", ".join(short(v) for v in value) + "]")
    ref = _ref(value)
    if ref:
        return ref
    if isinstance(value, str):
        return _cut(repr(value))
    return _cut(json.dumps(value, ensure_ascii=False, default=str))


def _ref(value: Any) -> str | None:
    if isinstance(value, dict) and value.get("resourceType") and value.get("id"):
        return f"{value['resourceType']}/{value['id']}"
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        return f"Bundle of {len(value.get('entry', []))}"
    return None


def _cut(text: str) -> str:
    return text if len(text) <= _VALUE else text[: _VALUE - 3] + "..."


def _wrapped(text: str, pad: str) -> list[str]:
    out = []
    for paragraph in str(text).splitlines() or [""]:
        out += textwrap.wrap(paragraph, _WIDTH, initial_indent=pad, subsequent_indent=pad) or [pad]
    return out
