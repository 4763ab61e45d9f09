"""Orders for quiet cards after an accepted suggestion: what identifies the order a suggestion proposes,
and whether the call's data holds that order, active (plandefinitions/README.md, "Quiet cards").

Rules:
- A suggestion proposes an order with each of its `create` actions (CDS Hooks 2.0 §Action): the order
  is identified by its resourceType and its codes as the engine's data index reads them
  (DataIndex.codes: the primary code; for a medication-bearing resource its medication identity, the
  product's codes and the ingredient codes the content's ConceptMaps map them to).  Suggestions that
  only update or delete propose no order.
- The call's data holds the order when a resource of the same type, in any prefetch value or in the
  draft orders, shares a code with it and its status is one of ACTIVE (FHIR R4 request-status and
  medicationrequest-status: `draft`, `active`, `on-hold`; `completed`, `stopped`, `cancelled`,
  `revoked`, `entered-in-error` and `unknown` are not active, and no status is not active either).
  So an order written with a product code matches a suggestion written with an ingredient code of
  that product, and the reverse.
- Nothing here knows a code: the codes come from the content and the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from service.engine import DataIndex
from service.feedback.store import OrderKey

ACTIVE = frozenset({"draft", "active", "on-hold"})


def suggestion_orders(cards: Iterable[dict[str, Any]], index: DataIndex) -> dict[tuple[str, str], list[OrderKey]]:
    """The orders each suggestion of `cards` proposes, by (card uuid, suggestion uuid); suggestions
    that propose none are left out."""
    out: dict[tuple[str, str], list[OrderKey]] = {}
    for card in cards:
        for suggestion in card.get("suggestions") or []:
            keys = [key for action in suggestion.get("actions") or []
                    if action.get("type") == "create" and (key := order_key(action.get("resource"), index))]
            if keys and isinstance(card.get("uuid"), str) and isinstance(suggestion.get("uuid"), str):
                out[card["uuid"], suggestion["uuid"]] = keys
    return out


def order_key(resource: Any, index: DataIndex) -> OrderKey | None:
    """(resourceType, sorted codes) of a resource, None without a type or codes."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return None
    codes = index.codes(resource)
    return (resource["resourceType"], tuple(sorted(codes))) if codes else None


class CallOrders:
    """The active orders of one call's data, by type, gathered on first use (most calls never ask)."""

    def __init__(self, data: Mapping[str, Any], draft_orders: dict[str, Any] | None, index: DataIndex) -> None:
        self._values = [*data.values(), draft_orders]
        self._index = index
        self._active: dict[str, list[frozenset[str]]] | None = None

    def holds(self, key: OrderKey) -> bool:
        """Whether an active order of the key's type shares a code with it."""
        rtype, codes = key
        wanted = frozenset(codes)
        return any(codes_of & wanted for codes_of in self._by_type().get(rtype, ()))

    def _by_type(self) -> dict[str, list[frozenset[str]]]:
        if self._active is None:
            self._active = {}
            seen: set[int] = set()
            for value in self._values:
                for resource in self._resources(value):
                    if id(resource) in seen or resource.get("status") not in ACTIVE:
                        continue
                    seen.add(id(resource))
                    self._active.setdefault(resource["resourceType"], []).append(self._index.codes(resource))
        return self._active

    def _resources(self, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            return []
        if value["resourceType"] == "Bundle":
            return [r for rs in self._index.bundle_resources(value).values() for r in rs]
        return [value]
