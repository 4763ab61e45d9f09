"""The cheap check of the card invariants (cards.schema.card_errors), used on the request path:
each invariant broken once is caught, and by the full schema check too; what the full schema
accepts it accepts; it costs a small fraction of a millisecond for five cards."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest

from cards.schema import card_errors, response_errors
from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parents[2]


def full_card(n: int = 0) -> dict:
    """A card using every part the service sends: source with topic, two suggestions with actions,
    override reasons, links."""
    return {
        "uuid": f"c{n}", "summary": "Check the oxygen saturation", "detail": "Because of the hemoglobin.",
        "indicator": "warning",
        "source": {"label": "Local guidance", "url": "https://guide.example.org/x",
                   "topic": {"system": "http://example.org/rules", "code": f"R-{n}"}},
        "selectionBehavior": "at-most-one",
        "suggestions": [
            {"uuid": f"s{n}a", "label": "Order it", "isRecommended": True, "actions": [
                {"type": "create", "description": "Order", "resource": {"resourceType": "ServiceRequest",
                                                                        "status": "draft"}}]},
            {"uuid": f"s{n}b", "label": "Replace it", "actions": [
                {"type": "update", "description": "Change", "resource": {"resourceType": "MedicationRequest",
                                                                         "id": "m1"}},
                {"type": "delete", "description": "Stop", "resourceId": "MedicationRequest/m2"}]},
        ],
        "overrideReasons": [{"system": "http://example.org/reasons", "code": "na", "display": "Not applicable"}],
        "links": [{"label": "Why this recommendation", "url": "https://cds.example.org/guidance/x",
                   "type": "absolute"},
                  {"label": "App", "url": "https://app.example.org/launch", "type": "smart", "appContext": "x"}],
    }


def broken(path: str, value: object) -> dict:
    """full_card() with `value` at `path` (dotted, list indexes as numbers); `...` deletes."""
    card = full_card()
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: object = card
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return card


def test_a_card_the_service_sends_passes_both_checks():
    assert card_errors(full_card()) == []
    assert response_errors({"cards": [full_card()]}) == []


VIOLATIONS = [
    ("summary", ...), ("summary", ""), ("summary", "x" * 140), ("summary", 3),
    ("detail", ["x"]),
    ("indicator", ...), ("indicator", "hard-stop"),
    ("source", ...), ("source.label", ...), ("source.label", ""), ("source.url", "guide.example.org"),
    ("source.topic", {"code": "t"}),
    ("uuid", ""),
    ("selectionBehavior", "all"), ("selectionBehavior", ...),
    ("suggestions", {}), ("suggestions.0", "x"), ("suggestions.0.label", ...), ("suggestions.0.uuid", 7),
    ("suggestions.0.isRecommended", "yes"), ("suggestions.1.isRecommended", True),
    ("suggestions.0.actions", {}), ("suggestions.0.actions.0.type", "patch"),
    ("suggestions.0.actions.0.description", ...), ("suggestions.0.actions.0.resource", ...),
    ("suggestions.1.actions.0.resource", {"resourceType": "MedicationRequest"}),
    ("suggestions.1.actions.1.resourceId", ...), ("suggestions.1.actions.1.resourceId", ["MedicationRequest/m2"]),
    ("overrideReasons.0.display", ...), ("overrideReasons.0.display", ""), ("overrideReasons.0.system", ...),
    ("overrideReasons", "na"),
    ("links.0.type", ...), ("links.0.type", "relative"), ("links.0.url", "/guidance/x"), ("links.0.label", ...),
    ("links.0.appContext", "x"), ("links.1.autolaunchable", "yes"),
]


@pytest.mark.parametrize("path,value", VIOLATIONS, ids=[f"{p}={v!r}"[:40] for p, v in VIOLATIONS])
def test_each_invariant_broken_is_caught_by_the_cheap_check_and_by_the_schema(path, value):
    card = broken(path, value)
    assert card_errors(card), (path, value)
    assert response_errors({"cards": [card]}), (path, value)


def test_the_errors_say_where():
    assert card_errors(broken("summary", "x" * 140), "cards[2]") == [
        "cards[2].summary has 140 characters, at most 139 allowed"]
    assert card_errors(broken("suggestions.1.actions.0.resource", {"resourceType": "MedicationRequest"})) == [
        "card.suggestions[1].actions[0]: an update action needs a resource with an id"]
    assert card_errors("x") == ["card must be an object"]


VALID_EXAMPLES = [
    "spec-2.0.1/12-service-response.json",
    "spec-2.0.1/19-service-response.json",
    "spec-3.0.0-ballot/15-service-response.json",
    "spec-3.0.0-ballot/22-service-response.json",
    "crd-test-kit/crd_authorization_hook_response.json",
]


@pytest.mark.parametrize("name", VALID_EXAMPLES)
def test_published_cards_the_schema_accepts_pass_the_cheap_check(name):
    response = json.loads(shared_path("external", "cds-hooks-examples", *name.split("/")).read_text("utf-8"))
    assert response_errors(response) == []
    assert [card_errors(c) for c in response["cards"]] == [[] for _ in response["cards"]]


def test_every_card_of_the_scenario_goldens_passes_the_cheap_check():
    goldens = sorted((ROOT / "plandefinitions" / "tests").glob("*/*.response.json"))
    cards = [c for g in goldens for c in json.loads(g.read_text("utf-8")).get("cards", [])]
    assert cards
    assert [e for c in cards if (e := card_errors(c))] == []


def test_the_cheap_check_of_five_cards_costs_a_small_fraction_of_a_millisecond():
    """Measured as the best of many runs, so a busy machine does not fail it; on an idle one it is
    a few tens of microseconds for five cards, where the JSON Schema pass takes milliseconds."""
    cards = [copy.deepcopy(full_card(n)) for n in range(5)]
    best = float("inf")
    for _ in range(200):
        start = time.perf_counter()
        for card in cards:
            card_errors(card)
        best = min(best, time.perf_counter() - start)
    assert best < 0.0003, f"{best * 1e6:.0f} us for five cards"
