"""Quiet cards at call time: which of a call's cards the clinician already decided on (the content's
quiet policies, service.engine QuietPolicy; plandefinitions/README.md, "Quiet cards").

Rules:
- Only a card whose rule (`source.topic.code`) has a policy can be quiet; the store is read only
  when the call has such a card, in one query for the patient (`QuietHistory.quiet_history`).
- Overridden: feedback `overridden` (with one of the listed reason codes, when the policy lists
  some) on a card of the rule, within the policy's scope, less than `after_override` ago.  Never
  for a card whose indicator is critical (CDS Hooks 2.0 §Card Attributes `indicator`), whatever
  the content says.
- Accepted: feedback `accepted` on a card of the rule, within scope, less than `after_accept` ago,
  and, when the accepted suggestions proposed orders (service.hooks.orders, recorded with the card),
  only while the call's data (prefetch and draft orders) holds one of those orders, active: the order
  completed, stopped, cancelled, entered in error or absent, the card is shown again.  The Duration is
  the upper bound.  A suggestion that proposes no order (or a card issued before its orders were
  recorded) keeps the plain window.  Accepting may quiet a critical card (the clinician acted on it),
  for as long as its order is active.
- Repeat (`once_per_draft`): at order-sign, the same non-critical card was shown at order-select
  for the same patient and draft-orders key less than REPEAT_WINDOW ago.  The same card: of the
  rule, and saying the same (service.feedback.cardkey, recorded with the card), so a rule's card
  about another draft order (one card per draft, `cds-for-each`) is no repeat of the one shown; a
  card recorded without the key never makes a repeat.
- A window starts at the earlier of the feedback's outcomeTimestamp and its receipt, so a late or
  lost post can only let a card show.  Any store error: every card is shown (fail open) and the
  call's issues say so.
- A quiet card stays visible: its trace entry (`Quiet.to_trace`) carries the reason, until when, the
  override reason and the link to its rule page the card itself carried (cards.render.guidance_link).
- Scope: `patient` matches every card of the patient; `encounter` also the encounter, `draft` also
  the draft-orders key; a call without an encounter (or drafts) matches nothing in those scopes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cards.render import GUIDANCE_LINK_LABEL
from service.engine import PlanDef, QuietPolicy
from service.feedback.cardkey import RESOURCE_VOLATILE, card_key
from service.feedback.store import CallScope, OrderKey, PastCard, scope_key

log = logging.getLogger("service.calls")

REPEAT_WINDOW = timedelta(hours=24)
# Fields of a draft order that EHRs change between order-select and order-sign without changing the order
# (the draft's id too: the draft-orders key is about what is ordered, a card key about which draft).
VOLATILE_FIELDS = RESOURCE_VOLATILE | {"id"}


class QuietHistory(Protocol):
    """What this module reads of the feedback store."""

    def quiet_history(self, patient_id: str, rule_ids: Sequence[str], since: datetime) -> list[PastCard]: ...


class ActiveOrders(Protocol):
    """What this module asks of the call's data (service.hooks.orders.CallOrders)."""

    def holds(self, key: OrderKey) -> bool: ...


@dataclass(frozen=True)
class Quiet:
    """One card left out: the card, why, and until when."""

    card: dict[str, Any]
    rule: str
    reason: str  # overridden | accepted | repeat
    until: datetime
    override_reason: str | None = None

    def to_trace(self) -> dict[str, Any]:
        out = {"uuid": self.card.get("uuid"), "rule": self.rule, "summary": self.card.get("summary"),
               "indicator": self.card.get("indicator"), "reason": self.reason, "until": self.until.isoformat()}
        if self.override_reason:
            out["overrideReason"] = self.override_reason
        page = next((link for link in self.card.get("links") or []
                     if isinstance(link, dict) and link.get("label") == GUIDANCE_LINK_LABEL), None)
        if page is not None:
            out["link"] = page
        return out


def draft_key(draft_orders: dict[str, Any] | None) -> str | None:
    """A hash of the call's draft orders, each without the fields that change between order-select and
    order-sign (VOLATILE_FIELDS): equal keys mean the same unchanged orders.  None without drafts."""
    entries = (draft_orders or {}).get("entry")
    if not isinstance(entries, list) or not entries:
        return None
    orders = sorted(json.dumps({k: v for k, v in e["resource"].items() if k not in VOLATILE_FIELDS},
                               sort_keys=True, ensure_ascii=False)
                    for e in entries if isinstance(e, dict) and isinstance(e.get("resource"), dict))
    if not orders:
        return None
    return hashlib.sha256("\n".join(orders).encode("utf-8", "surrogatepass")).hexdigest()


def policies(plan: PlanDef) -> dict[str, QuietPolicy]:
    """The quiet policy of each rule code of the plan's card actions (made at load: PlanDef.quiet)."""
    return plan.quiet


def rule_of(card: dict[str, Any]) -> str | None:
    code = ((card.get("source") or {}).get("topic") or {}).get("code")
    return code if isinstance(code, str) else None


def leave_out_quiet(cards: list[dict[str, Any]], plan_policies: dict[str, QuietPolicy], scope: CallScope,
                    history: QuietHistory, now: datetime, orders: ActiveOrders | None = None,
                    ) -> tuple[list[dict[str, Any]], list[Quiet], list[dict]]:
    """The cards to show, the cards left out, and the issues met (a store error: all shown).  `orders`:
    the call's active orders (None: the call holds none)."""
    ruled = {rule: plan_policies[rule] for c in cards if (rule := rule_of(c)) in plan_policies}
    if not ruled:
        return cards, [], []
    longest = max([p.longest for p in ruled.values()] + [REPEAT_WINDOW if any(p.once_per_draft for p in
                                                                               ruled.values()) else timedelta(0)])
    try:
        past = history.quiet_history(scope.patient_id, sorted(ruled), now - longest)
    except Exception as exc:  # fail open: a card may show that should be quiet, never the reverse
        log.warning("quiet cards not applied, the feedback store cannot be read: %s", type(exc).__name__)
        return cards, [], [{"severity": "warning", "location": "quiet cards",
                            "message": "feedback store unavailable: every card is shown"}]
    by_rule: dict[str, list[PastCard]] = {}
    for row in past:
        if row.rule_id is not None:
            by_rule.setdefault(row.rule_id, []).append(row)
    kept: list[dict[str, Any]] = []
    quiet: list[Quiet] = []
    for card in cards:
        rule = rule_of(card)
        reason = _quiet(card, ruled[rule], scope, by_rule.get(rule, []), now, orders) if rule in ruled else None
        if reason is None:
            kept.append(card)
        else:
            quiet.append(reason)
    return kept, quiet, []


def _quiet(card: dict[str, Any], policy: QuietPolicy, scope: CallScope, past: list[PastCard],
           now: datetime, orders: ActiveOrders | None) -> Quiet | None:
    """Why `card` is quiet now (the latest-ending window), or None."""
    rule = rule_of(card) or ""
    critical = card.get("indicator") == "critical"
    encounter = scope_key(scope.encounter_id)
    said: str | None = None  # the card's key, computed only when a row may be its repeat
    found: Quiet | None = None
    for row in past:
        candidates: list[Quiet] = []
        if (policy.once_per_draft and not critical and scope.hook == "order-sign" and row.hook == "order-select"
                and scope.draft_key is not None and row.draft_key == scope.draft_key
                and row.card_key is not None and row.card_key == (said := said or card_key(card))):
            candidates.append(Quiet(card, rule, "repeat", row.issued_at + REPEAT_WINDOW))
        if row.outcome is not None and _in_scope(policy.scope, row, encounter, scope.draft_key):
            start = _started(row)
            if row.outcome == "overridden" and policy.after_override is not None and not critical:
                code = _reason_code(row.override_reason)
                if not policy.override_reasons or code in policy.override_reasons:
                    candidates.append(Quiet(card, rule, "overridden", start + policy.after_override, code))
            elif row.outcome == "accepted" and policy.after_accept is not None \
                    and _order_still_active(row, orders):
                candidates.append(Quiet(card, rule, "accepted", start + policy.after_accept))
        for candidate in candidates:
            if candidate.until > now and (found is None or candidate.until > found.until):
                found = candidate
    return found


def _order_still_active(row: PastCard, orders: ActiveOrders | None) -> bool:
    """Whether the accepted suggestion's order is active in the call's data (True when it proposed none)."""
    if not row.accepted_orders:
        return True
    return orders is not None and any(orders.holds(key) for key in row.accepted_orders)


def _in_scope(kind: str, row: PastCard, encounter: str | None, draft: str | None) -> bool:
    if kind == "encounter":
        return encounter is not None and row.encounter_key == encounter
    if kind == "draft":
        return draft is not None and row.draft_key == draft
    return True  # patient: the query read this patient's cards only


def _started(row: PastCard) -> datetime:
    """When the clinician decided: outcomeTimestamp, but never later than the service received it."""
    received = row.received_at or row.issued_at
    try:
        stamp = datetime.fromisoformat(str(row.outcome_timestamp))
    except ValueError:
        return received
    stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    return min(stamp, received)


def _reason_code(reason: dict | None) -> str | None:
    coding = reason.get("reason") if isinstance(reason, dict) else None
    code = coding.get("code") if isinstance(coding, dict) else None
    return code if isinstance(code, str) else None
