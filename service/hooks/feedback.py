"""CDS Hooks 2.0 §Feedback: one feedback post, checked and stored all or nothing.  No Flask.

Rules, in order, each failure answered before anything is stored:
1. at most `max_items` feedback items in one post (TooLarge);
2. the body follows `schemas/feedback.schema.json` (InvalidRequest; service.hooks.validation), which also
   bounds the length of card and suggestion ids and of override-reason texts;
3. every item's `card` is a card this service issued through the same service id (Unprocessable
   naming `feedback[i].card`);
4. every `acceptedSuggestions[j].id` is the uuid of a suggestion of that card (§Feedback:
   "The suggestions that were accepted", Unprocessable naming `feedback[i].acceptedSuggestions[j].id`);
5. the items are stored in one transaction; an item already stored (a retry) is counted as a
   duplicate, not stored twice.  Only the fields §Feedback defines are stored (`card`, `outcome`,
   `outcomeTimestamp`, the ids of `acceptedSuggestions`, `overrideReason.reason` and
   `.userComment`): whatever else a client adds is not kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.errors import TooLarge, Unprocessable
from service.feedback import FeedbackStore
from service.hooks.validation import validate_feedback
from service.logtext import shown


def accept_feedback(store: FeedbackStore, service_id: str, body: Any, max_items: int,
                    received_at: datetime | None = None) -> dict:
    """{"stored": n, "duplicates": m} for a feedback post to service `service_id`, received at `received_at`
    (the service's clock; default now)."""
    if isinstance(body, dict) and isinstance(body.get("feedback"), list) and len(body["feedback"]) > max_items:
        raise TooLarge(f"{len(body['feedback'])} feedback items in one post; at most {max_items} are accepted",
                              expression="feedback")
    items = validate_feedback(body)
    cards = store.issued_cards([item["card"] for item in items])
    for i, item in enumerate(items):
        card = cards.get(item["card"])
        if card is None or card["service_id"] != service_id:
            raise Unprocessable(f"card '{shown(item['card'], 64)}' was not issued by service "
                                f"'{shown(service_id, 100)}'", expression=f"feedback[{i}].card")
        for j, accepted in enumerate(item.get("acceptedSuggestions") or []):
            if accepted["id"] not in card["suggestions"]:
                raise Unprocessable(f"suggestion '{shown(accepted['id'], 64)}' is not a suggestion of card "
                                    f"'{shown(item['card'], 64)}'",
                                    expression=f"feedback[{i}].acceptedSuggestions[{j}].id")
    stored = store.add_feedback(service_id, [_defined_fields(item) for item in items], cards, received_at)
    return {"stored": stored, "duplicates": len(items) - stored}


def _defined_fields(item: dict) -> dict:
    out = {"card": item["card"], "outcome": item["outcome"], "outcomeTimestamp": item["outcomeTimestamp"]}
    if item.get("acceptedSuggestions"):
        out["acceptedSuggestions"] = [{"id": s["id"]} for s in item["acceptedSuggestions"]]
    reason = item.get("overrideReason")
    if isinstance(reason, dict):
        kept = {}
        if isinstance(reason.get("reason"), dict):
            kept["reason"] = {k: reason["reason"][k] for k in ("code", "system", "display") if k in reason["reason"]}
        if isinstance(reason.get("userComment"), str):
            kept["userComment"] = reason["userComment"]
        out["overrideReason"] = kept
    return out
