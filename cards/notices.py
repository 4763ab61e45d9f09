"""Notice cards: what the service could not check, said on a card (fail visible).

Rules (content matrix Amendment A2 and the service's fail-visible rule):
- When card actions of a plan could not be evaluated (an expression or a value it reads
  failed), one card lists them by their clinician-facing rule names and asks the clinician
  to review them; its indicator is the most urgent of the rules it lists, so a critical rule
  that could not be checked is announced as critical, never dropped.
- When prefetch data was cut short (a search had more pages than the service reads), one
  warning card says which data, because any card may then be missing.
- When cards were withheld because they broke the CDS Hooks card rules (service.hooks.call), one
  card names their rules and asks the clinician to review them; its indicator is the most urgent of
  the cards withheld, so a withheld critical card is announced as critical.
- The words here are about the service, not clinical advice; rule names come from the content
  (`action.code.coding.display`, else the action's title).  Technical reasons stay in the trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cards.schema import SEVERITY
from service.engine import ApplyResult, NotEvaluated, stable_id

NOTICE_SYSTEM = "http://example.org/fhir/CodeSystem/cds-service-notice"
_PRIORITY = {"stat": ("critical", 0), "urgent": ("warning", 1), "asap": ("warning", 1), "routine": ("info", 2)}


def _rule_name(item: NotEvaluated) -> str:
    for concept in item.code:
        for coding in concept.get("coding", []) if isinstance(concept, dict) else []:
            display = coding.get("display") if isinstance(coding, dict) else None
            if isinstance(display, str):
                return display
    return str(item.definition.raw.get("title") or item.definition.id)


def _source(result: ApplyResult, code: str, display: str) -> dict[str, Any]:
    plan = result.plan.raw
    return {"label": plan.get("publisher") or plan.get("title") or result.plan.id,
            "topic": {"system": NOTICE_SYSTEM, "code": code, "display": display}}


def not_evaluated(result: ApplyResult, scope: tuple[str, str],
                  link_for: Callable[[list[dict[str, Any]]], dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """`link_for(code)`: the rule page link of a rule's code, so each rule listed can be read."""
    items = result.not_evaluated
    indicator = min((_PRIORITY.get(i.priority or "routine", _PRIORITY["routine"]) for i in items),
                    key=lambda p: p[1])[0]
    names = list(dict.fromkeys(_rule_name(i) for i in items))
    detail = ("These recommendations could not be checked for this patient because a value in the record "
              "could not be used, so their cards may be missing:\n\n"
              + "\n".join(f"- {name}" for name in names)
              + "\n\nReview them yourself; correcting the record (for example a value in an unknown unit) lets "
                "them be checked again.")
    card: dict[str, Any] = {
        "uuid": stable_id(*scope, result.plan.url, "not-evaluated"),
        "summary": "Not all guidance could be checked for this patient: review it yourself",
        "indicator": indicator,
        "source": _source(result, "not-evaluated", "Guidance not checked"),
        "detail": detail,
    }
    links: dict[str, dict[str, Any]] = {}
    if link_for is not None:
        for item in items:
            link = link_for(item.code)
            if link is not None and link["url"] not in links:
                links[link["url"]] = dict(link, label=f"{_rule_name(item)}: why this recommendation")
    if links:
        card["links"] = list(links.values())
    return card


def withheld(result: ApplyResult, scope: tuple[str, str], cards: list[dict[str, Any]]) -> dict[str, Any]:
    """The notice for `cards`, withheld from the answer (each named by its rule's display)."""
    indicators = [str(c.get("indicator")) for c in cards]
    indicator = min((i if i in SEVERITY else "info" for i in indicators), key=lambda i: SEVERITY[i])
    names = list(dict.fromkeys(str(((c.get("source") or {}).get("topic") or {}).get("display")
                                   or "a recommendation of this service") for c in cards))
    return {
        "uuid": stable_id(*scope, result.plan.url, "withheld"),
        "summary": "A recommendation could not be shown: review the guidance yourself",
        "indicator": indicator,
        "source": _source(result, "withheld", "Recommendation not shown"),
        "detail": ("These recommendations applied to this patient but could not be shown because of a fault in "
                   "this service, reported to its maintainers:\n\n" + "\n".join(f"- {name}" for name in names)
                   + "\n\nReview them yourself."),
    }


def data_incomplete(result: ApplyResult, scope: tuple[str, str], keys: list[str] | tuple[str, ...]) -> dict[str, Any]:
    named = ", ".join(sorted(keys))
    return {
        "uuid": stable_id(*scope, result.plan.url, "data-incomplete"),
        "summary": "Patient data was cut short: guidance may be incomplete",
        "indicator": "warning",
        "source": _source(result, "data-incomplete", "Patient data incomplete"),
        "detail": (f"Only part of the patient's {named} could be read (the FHIR server returned more pages than "
                   "this service reads). Cards that depend on the missing records may be absent or wrong; "
                   "review the record."),
    }
