"""Card rendering rules that are not visible in one scenario."""

from __future__ import annotations

import pytest

from cards.render import render_cards
from service.engine.extensions import PROJECT_EXTENSION_BASE
from tests.engine.helpers import action_type, project_ext
from tests.engine.test_apply import BASE, PV, observations, run


@pytest.mark.parametrize(
    "fhir,cds",
    [
        ("exactly-one", "at-most-one"),
        ("at-most-one", "at-most-one"),
        ("any", "any"),
        ("all", "any"),
        ("all-or-none", "any"),
        ("one-or-more", "any"),
        (None, "at-most-one"),
    ],
)
def test_fhir_selection_behavior_maps_to_the_two_cds_values(tmp_path, fhir, cds):
    """CDS Hooks 2.0 §Card attributes: selectionBehavior is `at-most-one` or `any`; the action's FHIR
    selectionBehavior picks one of the two (J-41), `at-most-one` when it states none."""
    order = {"id": "o", "title": "Order", "definitionCanonical": f"{BASE}/ActivityDefinition/dose"}
    card = {"id": "c", "title": "Card", "trigger": PV, "action": [order]}
    if fhir:
        card["selectionBehavior"] = fhir
    (rendered,) = render_cards([run(tmp_path, [card], data={"observations": observations(80)})], "hi")
    assert rendered["suggestions"] and rendered["selectionBehavior"] == cds


@pytest.mark.parametrize(
    "priority,indicator",
    [("routine", "info"), ("urgent", "warning"), ("asap", "warning"), ("stat", "critical"), (None, "info")],
)
def test_priority_maps_to_indicator_j41(tmp_path, priority, indicator):
    action = {"id": "a", "title": "A", "trigger": PV}
    if priority:
        action["priority"] = priority
    (card,) = render_cards([run(tmp_path, [action])], "hi")
    assert card["indicator"] == indicator


def test_cards_sort_critical_warning_info_and_truncate_long_summaries(tmp_path):
    result = run(
        tmp_path,
        [
            {"id": "i", "title": "Info", "priority": "routine", "trigger": PV},
            {"id": "c", "title": "x" * 200, "priority": "stat", "trigger": PV},
            {"id": "w", "title": "Warn", "priority": "urgent", "trigger": PV},
        ],
    )
    cards = render_cards([result], "hi")
    assert [c["indicator"] for c in cards] == ["critical", "warning", "info"]
    assert len(cards[0]["summary"]) == 139 and cards[0]["summary"].endswith("…")


def test_remove_action_becomes_delete_with_resource_id_after_the_replacement(tmp_path):
    """Authored delete-then-create; sent create first, so a client acting on the first action alone
    (the CDS Hooks sandbox does) places the new order instead of only removing the old one."""
    draft = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "MedicationRequest", "id": "m1", "status": "draft", "intent": "order"}}
        ],
    }
    target = project_ext("cds-target", "%draftOrders.resources('MedicationRequest').first()")
    remove = action_type("remove")
    result = run(
        tmp_path,
        [
            {
                "id": "c",
                "title": "Replace",
                "trigger": PV,
                "action": [
                    {
                        "id": "swap",
                        "title": "Replace the draft",
                        "action": [
                            {"id": "del", "title": "Remove draft", "type": remove, "extension": target},
                            {
                                "id": "new",
                                "title": "New order",
                                "definitionCanonical": f"{BASE}/ActivityDefinition/dose",
                            },
                        ],
                    }
                ],
            }
        ],
        data={"observations": observations(70)},
        draft=draft,
    )
    card = render_cards([result], "hi")[0]
    actions = card["suggestions"][0]["actions"]
    assert actions[0]["type"] == "create" and "id" not in actions[0]["resource"]
    assert actions[1] == {"type": "delete", "description": "Remove draft", "resourceId": "MedicationRequest/m1"}


def test_documentation_becomes_absolute_and_smart_links(tmp_path):
    ext = PROJECT_EXTENSION_BASE
    docs = [
        {"type": "citation", "display": "Guideline", "url": "https://example.org/g"},
        {"type": "documentation", "display": "Protocol", "url": "https://example.org/p"},
        {
            "type": "documentation",
            "display": "Dosing app",
            "url": "https://apps.example.org/launch",
            "extension": [
                {"url": ext + "cds-link-type", "valueCode": "smart"},
                {"url": ext + "cds-app-context", "valueString": "drug=cyclophosphamide"},
            ],
        },
    ]
    result = run(tmp_path, [{"id": "c", "title": "Card", "trigger": PV, "documentation": docs}])
    card = render_cards([result], "hi")[0]
    assert card["source"] == {"label": "Guideline", "url": "https://example.org/g"}
    assert card["links"] == [
        {"label": "Protocol", "url": "https://example.org/p", "type": "absolute"},
        {
            "label": "Dosing app",
            "url": "https://apps.example.org/launch",
            "type": "smart",
            "appContext": "drug=cyclophosphamide",
        },
    ]


def test_rule_page_link_follows_the_content_links_only_when_a_base_url_is_given(tmp_path):
    code = [{"coding": [{"system": "http://example.org/fhir/CodeSystem/rule", "code": "R 1/a"}]}]
    docs = [
        {"type": "citation", "display": "Guideline", "url": "https://example.org/g"},
        {"type": "documentation", "display": "Protocol", "url": "https://example.org/p"},
    ]
    result = run(
        tmp_path,
        [
            {"id": "c", "title": "Card", "trigger": PV, "code": code, "documentation": docs},
            {"id": "n", "title": "No rule", "trigger": PV},
        ],
    )
    with_rule, without_rule = render_cards([result], "hi", guidance_base="https://cds.example.org/svc/")
    assert with_rule["links"] == [
        {"label": "Protocol", "url": "https://example.org/p", "type": "absolute"},
        {
            "label": "Why this recommendation",
            "url": "https://cds.example.org/svc/guidance/R%201%2Fa",
            "type": "absolute",
        },
    ]
    assert "links" not in without_rule
    assert render_cards([result], "hi")[0]["links"] == with_rule["links"][:1]
