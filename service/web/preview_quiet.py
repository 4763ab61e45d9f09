"""Quiet cards in the preview, without Flask: the decisions an informatician marks on the page's cards
("overridden" with a reason, "accepted" with a suggestion), and the history the preview's runs read.

Rules:
- A decision is marked on a card of a run and applies to later runs of the page, as the service's
  feedback would (service.hooks.suppression): it carries the card's rule, the run's patient,
  encounter, hook, draft-orders key and moment, the outcome, the override reason, and the orders
  the accepted suggestion proposes (service.hooks.orders).
- Decisions live in the page only (a hidden field posted back with the form, at most MAX_DECISIONS):
  the preview writes nothing to the feedback store, so nothing marked here quiets a card for a
  clinician, and every worker of the service sees the same page.
- A run reads the service's feedback store too (what clinicians decided for the patient) and the
  page's decisions; any store error shows every card, as a real call does.
- The form's values are untrusted: a decision that is not the shape written here is refused with
  the page's error, never half read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from service.errors import InvalidRequest
from service.feedback.store import FEEDBACK_AFTER_ISSUE, CallScope, OrderKey, PastCard, scope_key
from service.hooks.suppression import QuietHistory

MAX_DECISIONS = 50
OUTCOMES = ("overridden", "accepted")


def decision(rule: str, scope: CallScope, at: datetime, outcome: str, reason: dict | None = None,
             orders: Sequence[OrderKey] = ()) -> dict[str, Any]:
    """One decision on a card of a run, as the page carries it (JSON)."""
    out: dict[str, Any] = {"rule": rule, "outcome": outcome, "patient": scope.patient_id, "hook": scope.hook,
                           "at": at.astimezone(UTC).isoformat()}
    if scope.encounter_id:
        out["encounter"] = scope.encounter_id
    if scope.draft_key:
        out["draft"] = scope.draft_key
    if reason:
        out["reason"] = {k: reason[k] for k in ("system", "code", "display") if isinstance(reason.get(k), str)}
    if orders:
        out["orders"] = [[rtype, [list(g) for g in groups]] for rtype, groups in orders]
    return out


def parse_decisions(text: str) -> list[dict[str, Any]]:
    """The decisions of the page's hidden field (empty text: none)."""
    if not text.strip():
        return []
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidRequest("the decisions marked on this page are not readable; forget them") from None
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_DECISIONS:
        raise InvalidRequest(f"at most {MAX_DECISIONS} decisions can be marked on the page; forget some")
    for item in items:
        _past(item)  # refuse what is not a decision now, not at the next run
    return items


def _text(item: dict, key: str, required: bool = True) -> str | None:
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 200:
        raise InvalidRequest(f"a decision marked on the page has no valid {key!r}")
    return value


def _past(item: Any) -> tuple[str, PastCard]:
    """(patient id, the card as the store would give it back) of one decision."""
    if not isinstance(item, dict):
        raise InvalidRequest("a decision marked on the page is not an object")
    outcome = _text(item, "outcome")
    if outcome not in OUTCOMES:
        raise InvalidRequest(f"a decision's outcome is one of {', '.join(OUTCOMES)}")
    try:
        at = datetime.fromisoformat(str(_text(item, "at")))
    except ValueError:
        raise InvalidRequest("a decision marked on the page has no valid 'at'") from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    reason = item.get("reason")
    if reason is not None and not isinstance(reason, dict):
        raise InvalidRequest("a decision's reason is an object")
    orders = item.get("orders") or []
    if not (isinstance(orders, list) and all(
            isinstance(o, list) and len(o) == 2 and isinstance(o[0], str) and isinstance(o[1], list)
            and all(isinstance(g, list) and all(isinstance(c, str) for c in g) for g in o[1]) for o in orders)):
        raise InvalidRequest("a decision's orders are [resourceType, [[codes]]] pairs")
    patient = str(_text(item, "patient"))
    past = PastCard(_text(item, "rule"), str(_text(item, "hook")), scope_key(_text(item, "encounter", False)),
                    _text(item, "draft", False), at, outcome, {"reason": reason} if reason else None, at.isoformat(),
                    at, tuple((o[0], tuple(tuple(g) for g in o[1])) for o in orders))
    return patient, past


class PreviewHistory:
    """The service's store (when there is one) and the page's decisions, read as one history."""

    def __init__(self, decisions: list[dict[str, Any]], store: QuietHistory | None = None) -> None:
        self._decisions = [_past(item) for item in decisions]
        self._store = store

    def quiet_history(self, patient_id: str, rule_ids: Sequence[str], since: datetime) -> list[PastCard]:
        rules = set(rule_ids)
        rows = [past for patient, past in self._decisions
                if patient == patient_id and past.rule_id in rules and past.issued_at >= since - FEEDBACK_AFTER_ISSUE]
        if self._store is not None:
            rows.extend(self._store.quiet_history(patient_id, rule_ids, since))
        return rows
