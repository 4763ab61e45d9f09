"""What a card says, as one key: two cards with the same key tell the clinician the same thing.

Rule: the key is the sha256 of the canonical JSON (sorted keys, no spaces) of the card's `summary`,
`detail` and `indicator`, and of each suggestion's `label`, `isRecommended` and actions (`type`,
`description`, `resourceId`, `resource`), in the card's order (CDS Hooks 2.0 §Card Attributes,
§Suggestion, §Action).  Left out, because they change from call to call while the card says the same:
the card and suggestion uuids (they follow the hookInstance), the card's extensions (the trace), its
links (the rule page's URL follows the host the call came through), its source and override reasons
(fixed by the rule), and, in a suggested resource, the fields of a draft order EHRs change between
order-select and order-sign without changing the order (RESOURCE_VOLATILE).  A resource's `id` and an
action's `resourceId` are kept: they say which draft order the card is about.

Used by quiet cards: a card shown at order-select is a repeat at order-sign only if it had the same key
(service.hooks.suppression; recorded with the card by service.feedback.store).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

CARD_FIELDS = ("summary", "detail", "indicator")
SUGGESTION_FIELDS = ("label", "isRecommended")
ACTION_FIELDS = ("type", "description", "resourceId")
# The draft order's fields copied into an `update` suggestion that EHRs change between the two order steps.
RESOURCE_VOLATILE = frozenset({"meta", "status", "intent", "authoredOn", "text"})


def card_key(card: dict[str, Any]) -> str:
    """The key of what `card` says (64 hex characters)."""
    said: dict[str, Any] = {k: card[k] for k in CARD_FIELDS if k in card}
    said["suggestions"] = [_suggestion(s) for s in card.get("suggestions") or [] if isinstance(s, dict)]
    text = json.dumps(said, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _suggestion(suggestion: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: suggestion[k] for k in SUGGESTION_FIELDS if k in suggestion}
    out["actions"] = [_action(a) for a in suggestion.get("actions") or [] if isinstance(a, dict)]
    return out


def _action(action: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: action[k] for k in ACTION_FIELDS if k in action}
    resource = action.get("resource")
    if isinstance(resource, dict):
        out["resource"] = {k: v for k, v in resource.items() if k not in RESOURCE_VOLATILE}
    elif resource is not None:
        out["resource"] = resource
    return out
