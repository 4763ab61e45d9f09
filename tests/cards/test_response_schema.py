"""Response conformance (cards.schema.response_errors): the published service responses under
../shared/external/cds-hooks-examples (skipped when absent), and one synthetic violation per rule."""

from __future__ import annotations

import copy
import json

import pytest

from cards.schema import response_errors
from tests.conftest import shared_path


def example(name: str):
    return json.loads(shared_path("external", "cds-hooks-examples", *name.split("/")).read_text(encoding="utf-8"))


VALID_EXAMPLES = [
    "spec-2.0.1/12-service-response.json",
    "spec-2.0.1/18-service-response-with-systemActions.json",
    "spec-2.0.1/19-service-response.json",
    "spec-3.0.0-ballot/15-service-response.json",
    "spec-3.0.0-ballot/21-service-response-with-systemActions.json",
    "spec-3.0.0-ballot/22-service-response.json",
    "crd-test-kit/crd_authorization_hook_response.json",
]


@pytest.mark.parametrize("name", VALID_EXAMPLES)
def test_published_response_is_valid(name):
    assert response_errors(example(name)) == []


@pytest.mark.parametrize("name", ["spec-2.0.1/20-service-response.json", "spec-3.0.0-ballot/23-service-response.json"])
def test_published_card_without_indicator_is_rejected(name):
    """The §Card Attributes example for `autolaunchable` has no `indicator`, which the card
    table makes REQUIRED: invalid per the spec."""
    response = example(name)
    assert response_errors(response) == ["cards[0].indicator is required"]
    response["cards"][0]["indicator"] = "info"
    assert response_errors(response) == []


def test_system_actions_may_omit_description():
    """spec-2.0.1/18 has a systemAction without `description`; 3.0.0-ballot states it is
    optional there, while a suggestion's action REQUIRES one (§Action)."""
    response = example("spec-2.0.1/18-service-response-with-systemActions.json")
    assert "description" not in response["systemActions"][0]
    assert response_errors(response) == []


def test_crd_valid_cards_reuse_card_uuids():
    """crd-test-kit/valid_cards.json (a bare array of cards) gives two pairs of cards the same
    `uuid`; a card uuid identifies one card (feedback names it), so the set is rejected for that
    reason only, and accepted once the uuids are distinct."""
    cards = example("crd-test-kit/valid_cards.json")
    assert sorted(response_errors({"cards": cards})) == [
        "card uuid 'jksfghisldlrldsse' is used 2 times; it must identify one item",
        "card uuid 'jksfjuisldklsior' is used 2 times; it must identify one item",
    ]
    for i, card in enumerate(cards):
        card["uuid"] = f"{card['uuid']}-{i}"
    assert response_errors({"cards": cards}) == []


def test_spec_action_fragments_are_valid_in_a_suggestion():
    actions = [example(f"spec-2.0.1/{n}") for n in ("14-action-create.json", "15-action-update.json",
                                                    "16-action-delete-resourceId.json")]
    response = card(suggestions=[{"label": "Do it", "actions": actions}], selectionBehavior="any")
    assert response_errors(response) == []


def test_spec_source_and_override_reason_fragments_are_valid():
    response = card(source=example("spec-2.0.1/13-card-source-fragment.json")["source"],
                    overrideReasons=example("spec-2.0.1/17-overrideReasons-fragment.json")["overrideReasons"])
    assert response_errors(response) == []


# ---- synthetic responses ----------------------------------------------------------------------

CREATE = {
    "type": "create",
    "description": "Order it",
    "resource": {"resourceType": "ServiceRequest", "status": "draft"},
}


def card(**fields) -> dict:
    base = {"uuid": "c1", "summary": "Check hemoglobin", "indicator": "warning", "source": {"label": "DAH guidance"}}
    return {"cards": [base | fields]}


def suggestion(uuid: str = "s1", **fields) -> dict:
    return {"label": "Order", "uuid": uuid, "actions": [copy.deepcopy(CREATE)]} | fields


def test_a_full_valid_card():
    response = card(
        detail="**Markdown** detail",
        source={"label": "Guideline", "url": "https://example.org/g", "icon": "https://example.org/i.png",
                "topic": {"system": "http://example.org/rules", "code": "DAH-01", "display": "DAH 01"}},
        suggestions=[suggestion("s1", isRecommended=True), suggestion("s2")],
        selectionBehavior="at-most-one",
        overrideReasons=[{"system": "http://example.org/or", "code": "refused", "display": "Patient refused"}],
        links=[{"label": "App", "url": "https://app.example.org/launch", "type": "smart", "appContext": "{}"},
               {"label": "Read", "url": "https://example.org/read", "type": "absolute", "autolaunchable": False}],
    )
    response["systemActions"] = [{"type": "update", "resource": {"resourceType": "Task", "id": "t1"}}]
    response["extension"] = {"http://example.org/trace": {}}
    assert response_errors(response) == []


def test_empty_cards_is_valid():
    assert response_errors({"cards": []}) == []


@pytest.mark.parametrize("response,expected", [
    ([], "the response must be a JSON object with a cards array"),
    ({}, "cards is required"),
    ({"cards": {}}, "cards: {} is not of type 'array'"),
])
def test_response_envelope(response, expected):
    assert response_errors(response) == [expected]


@pytest.mark.parametrize("field", ["summary", "indicator", "source"])
def test_required_card_field(field):
    response = card()
    del response["cards"][0][field]
    assert response_errors(response) == [f"cards[0].{field} is required"]


def test_summary_must_be_shorter_than_140_characters():
    assert response_errors(card(summary="x" * 139)) == []
    assert response_errors(card(summary="x" * 140)) == ["cards[0].summary has 140 characters, at most 139 allowed"]


@pytest.mark.parametrize("fields,fragment", [
    ({"indicator": "hard-stop"}, "cards[0].indicator: 'hard-stop' is not one of"),
    ({"source": {}}, "cards[0].source.label is required"),
    ({"source": {"label": "x", "url": "example.org"}}, "cards[0].source.url must be an absolute URL"),
    ({"source": {"label": "x", "topic": {"code": "t"}}}, "cards[0].source.topic.system is required"),
    ({"selectionBehavior": "all", "suggestions": [suggestion()]}, "cards[0].selectionBehavior: 'all' is not one of"),
    ({"suggestions": [{"uuid": "s1"}], "selectionBehavior": "any"}, "cards[0].suggestions[0].label is required"),
    ({"suggestions": [suggestion(isRecommended="yes")], "selectionBehavior": "any"}, "is not of type 'boolean'"),
    ({"links": [{"label": "x", "url": "https://e.org"}]}, "cards[0].links[0].type is required"),
    ({"links": [{"label": "x", "url": "https://e.org", "type": "relative"}]}, "'relative' is not one of"),
])
def test_schema_violations(fields, fragment):
    errors = response_errors(card(**fields))
    assert any(fragment in e for e in errors), errors


def test_suggestion_action_needs_a_description_and_a_known_type():
    action = {"type": "patch", "resource": {"resourceType": "Task"}}
    errors = response_errors(card(suggestions=[suggestion(actions=[action])], selectionBehavior="any"))
    assert "cards[0].suggestions[0].actions[0].description is required" in errors
    assert any(e.startswith("cards[0].suggestions[0].actions[0].type: 'patch' is not one of") for e in errors)


# ---- invariants stated in prose -----------------------------------------------------------------


def test_selection_behavior_is_required_with_suggestions():
    assert response_errors(card(suggestions=[suggestion()])) == [
        "cards[0].selectionBehavior is required when suggestions are present"]


def test_at_most_one_recommended_suggestion_with_at_most_one():
    suggestions = [suggestion("s1", isRecommended=True), suggestion("s2", isRecommended=True)]
    assert response_errors(card(suggestions=suggestions, selectionBehavior="at-most-one")) == [
        "cards[0]: 2 suggestions are isRecommended but selectionBehavior is at-most-one"]
    assert response_errors(card(suggestions=suggestions, selectionBehavior="any")) == []


def test_delete_action_needs_resource_id():
    action = {"type": "delete", "description": "Remove", "resource": "ServiceRequest/sr1"}
    errors = response_errors(card(suggestions=[suggestion(actions=[action])], selectionBehavior="any"))
    assert "cards[0].suggestions[0].actions[0]: a delete action needs a resourceId" in errors


def test_resource_id_is_one_relative_reference():
    """§Action: `resourceId` is a *string* holding a relative reference, not an array."""
    for value, ok in (("ServiceRequest/sr1", True), (["ServiceRequest/sr1"], False), ("sr1", False)):
        action = {"type": "delete", "description": "Remove", "resourceId": value}
        errors = response_errors(card(suggestions=[suggestion(actions=[action])], selectionBehavior="any"))
        assert (errors == []) is ok, (value, errors)


def test_create_action_needs_a_resource():
    action = {"type": "create", "description": "Order"}
    errors = response_errors(card(suggestions=[suggestion(actions=[action])], selectionBehavior="any"))
    assert errors == ["cards[0].suggestions[0].actions[0]: a create action needs a FHIR resource (with resourceType)"]


def test_update_action_needs_a_resource_with_an_id():
    action = {"type": "update", "description": "Fix", "resource": {"resourceType": "ServiceRequest"}}
    errors = response_errors(card(suggestions=[suggestion(actions=[action])], selectionBehavior="any"))
    assert errors == ["cards[0].suggestions[0].actions[0]: an update action needs a resource with an id"]


def test_system_actions_follow_the_action_rules():
    response = {"cards": [], "systemActions": [{"type": "update", "resource": {"resourceType": "Task"}},
                                               {"type": "delete"}]}
    assert response_errors(response) == ["systemActions[0]: an update action needs a resource with an id",
                                         "systemActions[1]: a delete action needs a resourceId"]


def test_app_context_only_on_smart_links():
    links = [{"label": "x", "url": "https://e.org", "type": "absolute", "appContext": "abc"}]
    assert response_errors(card(links=links)) == [
        "cards[0].links[0].appContext is only valid on a smart link, not 'absolute'"]


def test_override_reasons_need_a_display():
    reasons = [{"system": "http://e.org", "code": "a", "display": "A"}, {"system": "http://e.org", "code": "b"}]
    assert response_errors(card(overrideReasons=reasons)) == ["cards[0].overrideReasons[1].display is required"]


def test_card_and_suggestion_uuids_are_unique():
    response = card(suggestions=[suggestion("s1"), suggestion("s1")], selectionBehavior="any")
    response["cards"].append(copy.deepcopy(response["cards"][0]) | {"suggestions": [suggestion("s2")]})
    assert response_errors(response) == ["card uuid 'c1' is used 2 times; it must identify one item",
                                         "suggestion uuid 's1' is used 2 times; it must identify one item"]
