"""RequestGroup-shaped $apply results -> CDS Hooks 2.0 cards.

Mapping (CDS Hooks 2.0 §Card Attributes; cds-hooks-clinical-reasoning IG):
- every applied action with a `title` is a card; an untitled action only groups: its
  applied children are considered for cards in its place;
- summary <- title, detail <- description, indicator <- priority (J-41: routine -> info,
  urgent/asap -> warning, stat -> critical), source <- the first `citation` documentation
  (label, url) with topic <- action.code, links <- other documentation with a url, then, when a
  public base URL is given, "Why this recommendation" -> <base>/guidance/<rule id> (the rule page,
  service.guidance) for every card that names its rule;
- suggestions: the card action's own resource, then one suggestion per child action that
  (with its descendants) proposes resources; action.type create/update/remove -> CDS
  create/update/delete; `selectionBehavior` is always sent with suggestions, FHIR codes
  mapped to the two CDS values;
- a suggestion's actions are ordered create -> update -> delete, so a client that acts on the
  first action alone never removes an order without placing its replacement;
- uuids are stable for the same hookInstance, patient and action, so retries and feedback match
  and a hookInstance reused for another patient never repeats a card id;
- fail visible: card actions the engine could not evaluate, and prefetch data that was cut short,
  become one notice card each (`notices.py`), never silence;
- cards are sorted critical -> warning -> info (J-29), otherwise in content order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cards import notices
from cards.schema import SEVERITY
from service.engine import EXT_APP_CONTEXT, EXT_LINK_TYPE, AppliedAction, ApplyResult, stable_id
from service.guidance.rules import page_path

INDICATOR = {"routine": "info", "urgent": "warning", "asap": "warning", "stat": "critical"}
# FHIR action-selection-behavior -> CDS Hooks selectionBehavior.
SELECTION = {
    "exactly-one": "at-most-one",
    "at-most-one": "at-most-one",
    "any": "any",
    "all": "any",
    "all-or-none": "any",
    "one-or-more": "any",
}
ACTION_TYPE = {"create": "create", "update": "update", "remove": "delete", None: "create"}
ACTION_ORDER = {"create": 0, "update": 1, "delete": 2}
SUMMARY_LIMIT = 139  # CDS Hooks 2.0: summary "<140 characters"


TRACE_EXTENSION = "http://example.org/fhir/cds-hooks/extension/trace"
GUIDANCE_LINK_LABEL = "Why this recommendation"


def render_cards(results: list[ApplyResult], hook_instance: str, trace: bool = False,
                 incomplete: list[str] | tuple[str, ...] = (),
                 guidance_base: str | None = None) -> list[dict[str, Any]]:
    """Cards of the applied plans.  `incomplete` names the prefetch keys whose data was cut short;
    `guidance_base` is the service's public root URL: with it, every card whose action has a code
    links to its rule page."""
    cards: list[dict[str, Any]] = []
    for result in results:
        scope = (hook_instance, result.context.subject)
        for action in _card_actions(result.actions):
            card = _card(result, action, scope, guidance_base)
            if trace:  # why this card fired: its action's and sub-actions' conditions and resources
                path = action.definition.path
                card["extension"] = {TRACE_EXTENSION: [
                    e for e in result.trace if e["path"] == path or e["path"].startswith(path + ".")]}
            cards.append(card)
        if result.not_evaluated:
            link_for = (lambda code: guidance_link(code, guidance_base)) if guidance_base else None
            cards.append(notices.not_evaluated(result, scope, link_for))
        if incomplete:
            cards.append(notices.data_incomplete(result, scope, incomplete))
    cards.sort(key=lambda c: SEVERITY[c["indicator"]])
    return cards


def _card_actions(actions: list[AppliedAction]) -> Iterator[AppliedAction]:
    for action in actions:
        if action.title:
            yield action
        else:
            yield from _card_actions(action.children)


def _source(result: ApplyResult, action: AppliedAction) -> dict[str, Any]:
    docs = action.documentation
    citation = next((d for d in docs if d.get("type") == "citation"), docs[0] if docs else None)
    plan = result.plan.raw
    source: dict[str, Any] = {"label": (citation or {}).get("display") or (citation or {}).get("label")
                              or plan.get("publisher") or plan.get("title") or result.plan.id}
    if citation and citation.get("url"):
        source["url"] = citation["url"]
    coding = next((c for cc in action.code for c in cc.get("coding", [])), None)
    if coding:
        source["topic"] = {k: coding[k] for k in ("system", "code", "display") if k in coding}
    return source


def _links(action: AppliedAction) -> list[dict[str, Any]]:
    """Documentation with a url -> links; `smart` (a SMART app launch URL) when the content says so,
    with its appContext (CDS Hooks 2.0 §Link: appContext only on smart links)."""
    links: list[dict[str, Any]] = []
    for doc in action.documentation:
        if doc.get("type") == "citation" or not doc.get("url"):
            continue
        ext = {e.get("url"): e for e in doc.get("extension", [])}
        kind = (ext.get(EXT_LINK_TYPE) or {}).get("valueCode", "absolute")
        link = {"label": doc.get("display") or doc.get("label") or doc["url"], "url": doc["url"],
                "type": "smart" if kind == "smart" else "absolute"}
        if link["type"] == "smart" and EXT_APP_CONTEXT in ext:
            link["appContext"] = ext[EXT_APP_CONTEXT].get("valueString")
        links.append(link)
    return links


def _resources(action: AppliedAction) -> list[tuple[AppliedAction, dict[str, Any]]]:
    found = [(action, action.resource)] if action.resource is not None else []
    for child in action.children:
        found.extend(_resources(child))
    return found


def _cds_action(owner: AppliedAction, resource: dict[str, Any]) -> dict[str, Any]:
    kind = ACTION_TYPE.get(owner.type, "create")
    out: dict[str, Any] = {"type": kind, "description": owner.text_equivalent or owner.title or owner.description
                           or f"{resource['resourceType']} proposal"}
    if kind == "delete":
        # CDS Hooks 2.0.1 §Action: resourceId is a relative reference (a string)
        out["resourceId"] = f"{resource['resourceType']}/{resource['id']}"
    elif kind == "update":
        out["resource"] = resource
    else:
        out["resource"] = {k: v for k, v in resource.items() if k != "id"}
    return out


def _ordered(children: list[AppliedAction]) -> list[AppliedAction]:
    """Content order, adjusted by relatedAction (FHIR R4 action-relationship-type): an action
    related `after*` another comes after it, `before*` comes before it."""
    ids = {c.id for c in children}
    after: dict[str, set[str]] = {c.id: set() for c in children}  # id -> ids that must come first
    for c in children:
        for rel in c.definition.raw.get("relatedAction", []):
            other, kind = rel.get("actionId"), rel.get("relationship", "")
            if other not in ids or other == c.id:
                continue
            if kind.startswith("after") or kind == "concurrent-with-end":
                after[c.id].add(other)
            elif kind.startswith("before"):
                after[other].add(c.id)
    ordered: list[AppliedAction] = []
    placed: set[str] = set()
    while len(ordered) < len(children):
        ready = [c for c in children if c.id not in placed and after[c.id] <= placed]
        if not ready:  # a cycle in relatedAction: keep content order for the rest
            ready = [c for c in children if c.id not in placed]
        ordered.append(ready[0])
        placed.add(ready[0].id)
    return ordered


def _suggestions(action: AppliedAction, scope: tuple[str, str]) -> list[dict[str, Any]]:
    groups: list[tuple[AppliedAction, list[tuple[AppliedAction, dict[str, Any]]]]] = []
    if action.resource is not None:
        groups.append((action, [(action, action.resource)]))
    for child in _ordered(action.children):
        items = _resources(child)
        if items:
            groups.append((child, items))
    suggestions: list[dict[str, Any]] = []
    for owner, items in groups:
        suggestion: dict[str, Any] = {
            "label": owner.text_equivalent or owner.title or items[0][0].title or "Proposed order",
            "uuid": stable_id(*scope, owner.key, "suggestion"),
            "actions": sorted((_cds_action(o, r) for o, r in items), key=lambda a: ACTION_ORDER[a["type"]]),
        }
        if owner.is_recommended:
            suggestion["isRecommended"] = True
        suggestions.append(suggestion)
    return suggestions


def guidance_link(code: list[dict[str, Any]], base: str) -> dict[str, Any] | None:
    """The "Why this recommendation" link to the rule page of the first coding of `code`."""
    coding = next((c for cc in code for c in cc.get("coding", [])), None)
    if not coding or not coding.get("code"):
        return None
    return {"label": GUIDANCE_LINK_LABEL, "url": base.rstrip("/") + page_path(coding["code"]), "type": "absolute"}


def _card(result: ApplyResult, action: AppliedAction, scope: tuple[str, str],
          guidance_base: str | None = None) -> dict[str, Any]:
    summary = action.title or ""  # a card action has a title (_card_actions)
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 1] + "…"
    card: dict[str, Any] = {
        "uuid": stable_id(*scope, action.key),
        "summary": summary,
        "indicator": INDICATOR.get(action.priority or "routine", "info"),
        "source": _source(result, action),
    }
    if action.description:
        card["detail"] = action.description
    suggestions = _suggestions(action, scope)
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = SELECTION.get(action.selection_behavior or "", "at-most-one")
    if action.override_reasons:
        card["overrideReasons"] = action.override_reasons
    links = _links(action)
    guidance = guidance_link(action.code, guidance_base) if guidance_base else None
    if guidance:
        links.append(guidance)
    if links:
        card["links"] = links
    return card
