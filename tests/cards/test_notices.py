"""Fail visible: rules that could not be evaluated and data that was cut short appear on a card."""

from __future__ import annotations

from datetime import UTC, datetime

from cards.render import render_cards
from service.content import load_folder
from service.engine import ApplyContext, apply_plan
from tests.engine.helpers import BASE, cond, library, plan, var, write
from tests.engine.test_apply import PV, run

RULE = "http://example.org/fhir/CodeSystem/dah-cds-rule"


def coded(code: str, display: str | None = None) -> list[dict]:
    coding = {"system": RULE, "code": code}
    if display:
        coding["display"] = display
    return [{"coding": [coding]}]


def test_a_critical_rule_that_cannot_be_evaluated_is_announced_as_critical(tmp_path):
    # 'x' + 1 is a type error in FHIRPath: the condition cannot be decided
    result = run(tmp_path, [
        {"id": "crit", "title": "Start treatment now", "priority": "stat", "trigger": PV,
         "code": coded("R-1", "Induction therapy"), "condition": [cond("('x' + 1) > 0")]},
        {"id": "fine", "title": "Fine", "priority": "routine", "trigger": PV, "condition": [cond("false")]}])
    assert [n.definition.id for n in result.not_evaluated] == ["crit"]
    cards = render_cards([result], "hi")
    assert len(cards) == 1
    card = cards[0]
    assert card["indicator"] == "critical"
    assert card["source"]["topic"]["code"] == "not-evaluated"
    assert "- Induction therapy" in card["detail"]
    assert "Fine" not in card["detail"]
    assert "R-1" not in card["summary"] + card["detail"]  # rule ids stay out of clinician text


def test_a_rule_that_is_simply_false_gives_no_notice(tmp_path):
    result = run(tmp_path, [{"id": "a", "title": "A", "priority": "stat", "trigger": PV, "condition": [cond("1 > 2")]}])
    assert result.not_evaluated == [] and render_cards([result], "hi") == []


def test_failed_variable_reported_once_per_rule_named_by_title_without_display(tmp_path):
    """A variable that fails takes down every rule that reads it; each rule is listed once, the
    indicator is the most urgent of them, and for-each items do not repeat a rule."""
    actions = [
        {"id": "w", "title": "Weight-based warning", "priority": "urgent", "trigger": PV,
         "condition": [cond("%bad > 1")]},
        {"id": "i", "title": "Weight-based info", "priority": "routine", "trigger": PV,
         "condition": [cond("%bad > 2")]},
    ]
    result = run(tmp_path, actions, variables=[var("bad", "'kg' * 2")])
    assert sorted(n.definition.id for n in result.not_evaluated) == ["i", "w"]
    card = render_cards([result], "hi")[0]
    assert card["indicator"] == "warning"
    assert card["detail"].count("- Weight-based warning") == 1 and "- Weight-based info" in card["detail"]


def test_data_cut_short_is_a_warning_card_naming_the_data(tmp_path):
    result = run(tmp_path, [{"id": "a", "title": "A", "trigger": PV, "condition": [cond("false")]}])
    card = render_cards([result], "hi", incomplete=["observations"])[0]
    assert card["indicator"] == "warning" and card["source"]["topic"]["code"] == "data-incomplete"
    assert "observations" in card["detail"]


def test_card_and_suggestion_ids_depend_on_the_patient(tmp_path):
    """One hookInstance reused for two patients never yields the same card, suggestion or order ids."""
    content = load_folder(write(tmp_path, library("w", []), plan(
        [{"id": "c", "title": "Card", "trigger": PV, "action": [
            {"id": "s", "title": "Order", "definitionCanonical": f"{BASE}/ActivityDefinition/o"}]}],
        library=[f"{BASE}/Library/w"]), {
        "resourceType": "ActivityDefinition", "id": "o", "url": f"{BASE}/ActivityDefinition/o", "status": "active",
        "kind": "ServiceRequest", "code": {"text": "Chest X-ray"}}))
    now = datetime(2026, 3, 1, tzinfo=UTC)

    def card_for(patient):
        ctx = ApplyContext(now=now, subject=f"Patient/{patient}", hook="patient-view", hook_instance="same")
        return render_cards([apply_plan(content, content.plan("t"), ctx)], "same")[0]

    a, b = card_for("p1"), card_for("p2")
    assert a["uuid"] != b["uuid"]
    assert a["suggestions"][0]["uuid"] != b["suggestions"][0]["uuid"]
    assert card_for("p1") == a  # stable for the same patient


def test_notice_links_the_page_of_each_rule_it_lists(tmp_path):
    result = run(tmp_path, [
        {"id": "a", "title": "A", "priority": "stat", "trigger": PV, "code": coded("R-1", "Induction therapy"),
         "condition": [cond("('x' + 1) > 0")]},
        {"id": "b", "title": "B", "priority": "stat", "trigger": PV, "code": coded("R-1", "Induction therapy"),
         "condition": [cond("('y' + 1) > 0")]}])
    card = render_cards([result], "hi", guidance_base="https://cds.example.org/")[0]
    assert card["links"] == [{"label": "Induction therapy: why this recommendation",
                              "url": "https://cds.example.org/guidance/R-1", "type": "absolute"}]
