"""The clinical content's quiet policies (plandefinitions/README.md, "The clinical content's quiet
policies"): the TB-screening card of a prednisone order is shown once per ordering session, at
order-select, and not again at order-sign for the same unchanged draft; a changed draft shows it again;
a dose-check card is shown once too, but only the card about the draft it was shown for: the card of the
same rule about another draft, not selected at order-select, is shown at order-sign; a store that cannot
be read shows every card.  Through the real Flask app on plandefinitions/, with a temporary SQLite store
and the service's clock moved by the test; the patient and draft are the scenario case
SAFE-LTBI/order-select-prednisone-20-acute-dah (SLE with DAH, no IGRA in the record, prednisone 20 mg
daily drafted), with methylprednisolone 100 mg IV daily x3 drafted beside it where a test says so."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from service.app import create_app
from service.engine.quiet import QUIET_EXTENSIONS
from service.feedback.report import rule_report
from service.feedback.store import FeedbackStore
from tests.conftest import CONTENT, T0

CASE = CONTENT / "tests" / "SAFE-LTBI" / "order-select-prednisone-20-acute-dah.json"
TRACE = "http://example.org/fhir/cds-hooks/extension/trace"
ORDER_HOOKS = {"order-select", "order-sign"}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def database(tmp_path):
    return tmp_path / "feedback.sqlite3"


@pytest.fixture
def ehr(database, clock, content):
    app = create_app({"database_url": f"sqlite:///{database}"}, clock=clock, content=content)
    app.config.update(TESTING=True)
    return app.test_client()


def select_request() -> dict[str, Any]:
    case = json.loads(CASE.read_text(encoding="utf-8"))
    return case["request"]


def with_methylprednisolone(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with a second draft beside the prednisone: methylprednisolone 100 mg IV daily x3 (below a pulse:
    a card of the same dose-check rule as the prednisone's, about this draft), not selected."""
    body = copy.deepcopy(body)
    draft = copy.deepcopy(body["context"]["draftOrders"]["entry"][0]["resource"])
    draft.update(id="draft-mp", meta={"versionId": "1"}, medicationCodeableConcept={"coding": [
        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "6902", "display": "methylprednisolone"}]})
    dosage = draft["dosageInstruction"][0]
    dosage["doseAndRate"][0]["doseQuantity"]["value"] = 100
    dosage["timing"]["repeat"]["count"] = 3
    dosage["route"] = {"text": "intravenous"}
    body["context"]["draftOrders"]["entry"].append({"resource": draft})
    return body


def sign_request(dose: float = 20, select: dict[str, Any] | None = None) -> dict[str, Any]:
    """order-sign for the same drafts as `select` (default: the case's order-select), as an EHR sends it
    after order-select: no selections, each draft's version and authoring time moved on; `dose` changes the
    drafted prednisone dose (mg)."""
    body = copy.deepcopy(select or select_request())
    body["hook"] = "order-sign"
    del body["context"]["selections"]
    for entry in body["context"]["draftOrders"]["entry"]:
        entry["resource"]["meta"] = {"versionId": "2", "lastUpdated": "2026-03-01T12:02:00Z"}
        entry["resource"]["authoredOn"] = "2026-03-01T12:02:00Z"
    prednisone = body["context"]["draftOrders"]["entry"][0]["resource"]
    prednisone["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = dose
    return body


def call(client, service: str, body: dict[str, Any], trace: bool = False) -> dict[str, Any]:
    body = dict(body, hookInstance=str(uuid.uuid4()))  # every step is a new hook instance
    response = client.post(f"/cds-services/{service}" + ("?_trace=true" if trace else ""), json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def rules(body: dict[str, Any]) -> list[str]:
    return [card["source"]["topic"]["code"] for card in body["cards"]]


def without_ids(body: dict[str, Any]) -> dict[str, Any]:
    """The response with the per-call ids (card and suggestion uuids: they follow the hookInstance)
    blanked and the trace left out, so two calls' whole responses compare."""
    out = copy.deepcopy(body)
    out.pop("extension", None)
    for card in out["cards"]:
        card["uuid"] = "-"
        card.get("extension", {}).pop(TRACE, None)
        if card.get("extension") == {}:
            del card["extension"]
        for suggestion in card.get("suggestions") or []:
            suggestion["uuid"] = "-"
    return out


def test_the_tb_screening_card_is_shown_at_order_select_and_not_again_at_order_sign(ehr, clock, database):
    selected = call(ehr, "safety-order-select", select_request())
    assert rules(selected) == ["SAFE-LTBI"]
    [card] = selected["cards"]
    assert card["indicator"] == "warning" and card["summary"].startswith("No latent TB screen in 12 months")

    clock.now = T0 + timedelta(minutes=2)
    assert call(ehr, "safety-order-sign", sign_request()) == {"cards": []}

    clock.now = T0 + timedelta(minutes=3)
    traced = call(ehr, "safety-order-sign", sign_request(), trace=True)
    assert traced["cards"] == []
    [quiet] = traced["extension"][TRACE]["quiet"]
    assert quiet == {"uuid": quiet["uuid"], "rule": "SAFE-LTBI", "summary": card["summary"], "indicator": "warning",
                     "reason": "repeat", "until": "2026-03-02T12:00:00+00:00",
                     "link": {"label": "Why this recommendation", "type": "absolute",
                              "url": "http://localhost/guidance/SAFE-LTBI"}}
    assert "overrideReason" not in quiet
    [row] = [r for r in rule_report(FeedbackStore(f"sqlite:///{database}")) if r["rule"] == "SAFE-LTBI"]
    assert row["suppressed"] == 2


def test_a_changed_dose_shows_the_card_again_at_order_sign(ehr, clock):
    selected = call(ehr, "safety-order-select", select_request())
    clock.now = T0 + timedelta(minutes=2)
    changed = call(ehr, "safety-order-sign", sign_request(dose=40), trace=True)
    assert rules(changed) == ["SAFE-LTBI"]
    assert without_ids(changed) == without_ids(selected)
    assert "quiet" not in changed["extension"][TRACE]


def test_the_next_ordering_session_shows_the_card_again(ehr, clock):
    """A second order-sign (no order-select before it) and an order-sign a day after the order-select each
    show the card: only the order-select of the same session makes the repeat."""
    call(ehr, "safety-order-select", select_request())
    clock.now = T0 + timedelta(minutes=2)
    assert call(ehr, "safety-order-sign", sign_request()) == {"cards": []}
    clock.now = T0 + timedelta(hours=24, minutes=1)
    assert rules(call(ehr, "safety-order-sign", sign_request())) == ["SAFE-LTBI"]


def summaries(body: dict[str, Any]) -> list[str]:
    return [card["summary"] for card in body["cards"]]


def test_a_dose_check_card_is_shown_once_and_the_card_about_another_draft_at_order_sign(ehr, clock):
    """Prednisone selected at order-select, methylprednisolone drafted but not selected: the prednisone's dose
    card comes once, at order-select; at order-sign both drafts are checked, and the card of the same rule
    about the methylprednisolone, never shown, is shown, while the prednisone's card is quiet (`repeat`)."""
    select = with_methylprednisolone(select_request())
    selected = call(ehr, "dose-checks-order-select", select)
    assert rules(selected) == ["DC-MP-PULSE-LOW"]
    [prednisone_card] = summaries(selected)
    assert prednisone_card.startswith("Oral prednisone 20 mg/day drafted as the first glucocorticoid")
    clock.now = T0 + timedelta(minutes=2)
    signed = call(ehr, "dose-checks-order-sign", sign_request(select=select), trace=True)
    assert rules(signed) == ["DC-MP-PULSE-LOW"]
    [mp_card] = summaries(signed)
    assert mp_card.startswith("Inadequate corticosteroid dose for acute DAH: methylprednisolone 100 mg/day drafted")
    quiet = signed["extension"][TRACE]["quiet"]
    assert [(q["rule"], q["reason"], q["summary"]) for q in quiet] == [("DC-MP-PULSE-LOW", "repeat", prednisone_card)]


def test_dose_check_cards_of_unchanged_drafts_are_shown_once(ehr, clock):
    """Both drafts selected at order-select: both dose cards then, none again at order-sign for the same
    drafts (their versions and authoring times moved on, as EHRs send them), while the TB card is quiet too."""
    select = with_methylprednisolone(select_request())
    select["context"]["selections"] = ["MedicationRequest/draft-pred", "MedicationRequest/draft-mp"]
    selected = call(ehr, "dose-checks-order-select", select)
    assert rules(selected) == ["DC-MP-PULSE-LOW", "DC-MP-PULSE-LOW"]
    assert rules(call(ehr, "safety-order-select", select)) == ["SAFE-LTBI"]
    clock.now = T0 + timedelta(minutes=2)
    signed = call(ehr, "dose-checks-order-sign", sign_request(select=select), trace=True)
    assert signed["cards"] == []
    assert sorted(q["summary"] for q in signed["extension"][TRACE]["quiet"]) == sorted(summaries(selected))
    assert call(ehr, "safety-order-sign", sign_request(select=select)) == {"cards": []}


def test_a_changed_dose_shows_the_dose_check_card_again(ehr, clock):
    call(ehr, "dose-checks-order-select", select_request())
    clock.now = T0 + timedelta(minutes=2)
    changed = call(ehr, "dose-checks-order-sign", sign_request(dose=40), trace=True)
    assert rules(changed) == ["DC-MP-PULSE-LOW"]
    assert summaries(changed)[0].startswith("Oral prednisone 40 mg/day drafted as the first glucocorticoid")
    assert "quiet" not in changed["extension"][TRACE]


@pytest.mark.parametrize("service", ["safety", "dose-checks"])
def test_a_store_that_cannot_be_read_shows_the_card(ehr, clock, monkeypatch, service):
    selected = call(ehr, f"{service}-order-select", select_request())

    def broken(self, *args, **kwargs):
        raise ConnectionError("database unavailable")

    monkeypatch.setattr(FeedbackStore, "quiet_history", broken)
    clock.now = T0 + timedelta(minutes=2)
    signed = call(ehr, f"{service}-order-sign", sign_request(), trace=True)
    assert without_ids(signed) == without_ids(selected)
    trace = signed["extension"][TRACE]
    assert "quiet" not in trace
    assert {"severity": "warning", "location": "quiet cards",
            "message": "feedback store unavailable: every card is shown"} in trace["issues"]


def policy_actions(content) -> dict[str, tuple[str, frozenset[str]]]:
    """Action id -> (priority, hooks) of every action of the clinical content with a quiet policy."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for path in sorted(CONTENT.glob("PlanDefinition-*.json")):
        stack = list(json.loads(path.read_text(encoding="utf-8")).get("action", []))
        while stack:
            action = stack.pop()
            if any(e.get("url") in QUIET_EXTENSIONS for e in action.get("extension", [])):
                hooks = frozenset(t.get("name") for t in action.get("trigger", []))
                out[action["id"]] = (action.get("priority"), hooks)
            stack.extend(action.get("action", []))
    return out


def test_only_non_critical_safety_and_dose_check_cards_of_both_order_steps_are_once_per_draft(content):
    """The policies the content README states: once per draft, no override or accept window, never on a
    critical card, only on rules that answer both order-select and order-sign: the safety screening and
    prophylaxis cards, and every dose-check card."""
    actions = policy_actions(content)
    dose_checks = json.loads((CONTENT / "PlanDefinition-dose-checks.json").read_text(encoding="utf-8"))["action"]
    assert len(dose_checks) == 27
    assert sorted(actions) == sorted(["safe-hbv-rtx", "safe-ltbi", "safe-pcp-atovaquone", "safe-pcp-pediatric",
                                      "safe-pcp-tmp-smx", *(a["id"] for a in dose_checks)])
    for aid, (priority, hooks) in actions.items():
        assert priority != "stat" and ORDER_HOOKS <= hooks, aid
    quiet = content.services["safety-order-sign"].plan.quiet
    assert sorted(quiet) == ["SAFE-HBV-RTX", "SAFE-LTBI", "SAFE-PCP"]
    dose_quiet = content.services["dose-checks-order-sign"].plan.quiet
    assert sorted(dose_quiet) == sorted({c["code"] for a in dose_checks for cc in a["code"] for c in cc["coding"]})
    assert content.services["dose-checks-order-select"].plan.quiet == dose_quiet
    for rule, policy in {**quiet, **dose_quiet}.items():
        assert policy.once_per_draft and policy.after_override is None and policy.after_accept is None, rule
    assert content.services["dah-order-sign"].plan.quiet == {}


@pytest.mark.parametrize("shape", ["product_codes", "unit_spellings", "record_noise", "medication_reference"])
def test_ehr_shaped_drafts_are_quiet_at_order_sign_as_the_tidy_ones(ehr, clock, shape):
    """The same ordering session sent as EHRs send it (tests/scenarios/test_ehr_shaped.py: drafts coded by an
    RxNorm product and dosed in tablets, units without UCUM codes, entered-in-error and cancelled records): the
    cards shown at order-select are the tidy case's, and none of them is shown again at order-sign."""
    from tests.scenarios import test_ehr_shaped

    case = json.loads(CASE.read_text(encoding="utf-8"))
    shaped = getattr(test_ehr_shaped, shape)(case)["request"]
    signed_body = copy.deepcopy(shaped)
    signed_body["hook"] = "order-sign"
    del signed_body["context"]["selections"]
    for entry in signed_body["context"]["draftOrders"]["entry"]:
        entry["resource"]["meta"] = {"versionId": "2", "lastUpdated": "2026-03-01T12:02:00Z"}
    for service in ("safety", "dose-checks"):
        selected = call(ehr, f"{service}-order-select", shaped)
        assert rules(selected) and rules(selected) == rules(call(ehr, f"{service}-order-select", select_request()))
        clock.now = clock.now + timedelta(minutes=2)
        signed = call(ehr, f"{service}-order-sign", signed_body, trace=True)
        assert signed["cards"] == [], (service, rules(signed))
        assert sorted(q["rule"] for q in signed["extension"][TRACE]["quiet"]) == sorted(rules(selected))
