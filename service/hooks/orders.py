"""Orders for quiet cards after an accepted suggestion: what identifies the order a suggestion proposes,
and whether the call's data holds that order, active (plandefinitions/README.md, "Quiet cards").

Rules:
- A suggestion proposes an order with each of its `create` actions (CDS Hooks 2.0 §Action): the order
  is identified by its resourceType and its code groups, read through the engine's data index: for a
  medication-bearing resource its medication identity (DataIndex.medication), one group per
  ingredient of its product (the ingredient's code and the codes the content's ConceptMaps map it
  to, a salt's base), or, without a known product, one group of its codes (its own codes and the
  ingredients they map to); for any other resource one group, its primary code (DataIndex.codes).
  Suggestions that only update or delete propose no order.
- The call's data holds the order when a resource of the same type, in any prefetch value or in the
  draft orders, is the same order and its status is one of ACTIVE (FHIR R4 request-status and
  medicationrequest-status: `draft`, `active`, `on-hold`; `completed`, `stopped`, `cancelled`,
  `revoked`, `entered-in-error` and `unknown` are not active, and no status is not active either).
- The same order: every group of one shares a code with a group of the other, both ways.  So an
  order written with a product code is the suggestion written with the code of its ingredient, and
  the reverse; a product of two ingredients is not an order of one of them; for other resources, a
  shared code.
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
    """(resourceType, code groups) of a resource, None without a type or codes."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return None
    groups = _groups(resource, index)
    return (resource["resourceType"], groups) if groups else None


def _groups(resource: dict[str, Any], index: DataIndex) -> tuple[tuple[str, ...], ...]:
    identity = index.medication(resource)  # empty for a resource that bears no medication
    if identity.product is not None and identity.product.ingredients:
        return tuple(sorted(tuple(sorted(i.covers | {i.token})) for i in identity.product.ingredients))
    if identity.tokens:
        return (tuple(sorted(identity.tokens)),)
    codes = index.codes(resource)
    return (tuple(sorted(codes)),) if codes else ()


def same_order(one: tuple[tuple[str, ...], ...], other: tuple[tuple[str, ...], ...]) -> bool:
    """Whether two orders' code groups name the same thing (the module's rule)."""
    a, b = [frozenset(g) for g in one], [frozenset(g) for g in other]
    return bool(a and b) and all(any(g & h for h in b) for g in a) and all(any(h & g for g in a) for h in b)


class CallOrders:
    """The active orders of one call's data, by type, gathered on first use (most calls never ask)."""

    def __init__(self, data: Mapping[str, Any], draft_orders: dict[str, Any] | None, index: DataIndex) -> None:
        self._values = [*data.values(), draft_orders]
        self._index = index
        self._active: dict[str, list[tuple[tuple[str, ...], ...]]] | None = None

    def holds(self, key: OrderKey) -> bool:
        """Whether an active order of the key's type is the same order."""
        rtype, groups = key
        return any(same_order(groups, found) for found in self._by_type().get(rtype, ()))

    def _by_type(self) -> dict[str, list[tuple[tuple[str, ...], ...]]]:
        if self._active is None:
            self._active = {}
            seen: set[int] = set()
            for value in self._values:
                for resource in self._resources(value):
                    if id(resource) in seen or resource.get("status") not in ACTIVE:
                        continue
                    seen.add(id(resource))
                    groups = _groups(resource, self._index)
                    if groups:
                        self._active.setdefault(resource["resourceType"], []).append(groups)
        return self._active

    def _resources(self, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            return []
        if value["resourceType"] == "Bundle":
            return [r for rs in self._index.bundle_resources(value).values() for r in rs]
        return [value]
